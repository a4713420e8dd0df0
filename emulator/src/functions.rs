//! The template's functions, each loaded into the wasmtime host with the settings the
//! template gives it.
//!
//! A function's component is, in order: `--component NAME=PATH`; its
//! `Metadata.XstageComponent` (a path relative to the template, or a bare file name in the
//! components directory). The components directory is `--components-dir`, else
//! `$CARGO_TARGET_DIR/wasm32-wasip2/wasm`, else `target/wasm32-wasip2/wasm` beside the
//! template: where `cargo build --profile wasm --target wasm32-wasip2` leaves them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use xstage_host::cache::CacheOutcome;
use xstage_host::{Allowlist, EgressPolicy, Function, FunctionConfig, FunctionCredentials, Host};

use crate::error::EmulatorError;
use crate::template::{ACCOUNT_ID, FunctionSpec, Template};

/// How functions are loaded.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--component NAME=PATH` overrides, by logical id or function name.
    pub components: BTreeMap<String, PathBuf>,
    pub components_dir: Option<PathBuf>,
    /// The functions' `AWS_REGION`.
    pub region: String,
    /// The functions' own credentials (their execution role's).
    pub credentials: Option<FunctionCredentials>,
    /// Origins every invocation may reach besides the event's STS and S3 endpoints.
    pub allow: Vec<String>,
    /// The Lambda Invoke API this process serves (`xstage serve`), where a function that
    /// fans out (`XSTAGE_FAN_OUT_FUNCTION` in its environment) sends its workers' invocations.
    /// Without it, such a function runs every query in one invocation.
    pub invoke_endpoint: Option<String>,
}

impl LoadOptions {
    /// Region and credentials from this process's environment, as the AWS CLI reads them.
    pub fn from_env() -> Self {
        let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| "us-east-1".to_string());
        Self {
            region,
            credentials: FunctionCredentials::from_env(),
            ..Self::default()
        }
    }
}

/// A function loaded into the host.
pub struct Deployed {
    pub spec: FunctionSpec,
    pub function: Function,
    pub arn: String,
}

/// The loaded functions, found by logical id or function name.
#[derive(Clone, Default)]
pub struct Functions(Vec<Arc<Deployed>>);

impl Functions {
    pub fn get(&self, name: &str) -> Option<&Arc<Deployed>> {
        self.0.iter().find(|d| d.spec.answers_to(name))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Deployed>> {
        self.0.iter()
    }

    pub fn push(&mut self, d: Deployed) {
        self.0.push(Arc::new(d));
    }
}

/// Where a function's component is.
pub fn component_path(
    template: &Template,
    spec: &FunctionSpec,
    options: &LoadOptions,
) -> Result<PathBuf, EmulatorError> {
    if let Some(path) = [
        Some(spec.logical_id.as_str()),
        spec.function_name.as_deref(),
    ]
    .into_iter()
    .flatten()
    .find_map(|n| options.components.get(n))
    {
        return Ok(path.clone());
    }
    let Some(component) = &spec.component else {
        return Err(EmulatorError::NoComponent {
            function: spec.logical_id.clone(),
        });
    };
    let path = Path::new(component);
    if path.is_absolute() || path.components().count() > 1 {
        return Ok(template.dir().join(path));
    }
    let dir = match &options.components_dir {
        Some(dir) => dir.clone(),
        None => component_dirs(template.dir())
            .into_iter()
            .find(|dir| dir.join(path).exists())
            .unwrap_or_else(|| component_dirs(template.dir()).remove(0)),
    };
    Ok(dir.join(path))
}

/// Where `build_components` leaves the components, in the order they are looked for:
/// `$CARGO_TARGET_DIR`, the template's own `target/`, and the scripts' target directory
/// (`$XSTAGE_CACHE/target`, else `~/.cache/xstage/target`), each under
/// `wasm32-wasip2/wasm`. The last lets plain `cargo run` and any working directory find
/// what the scripts built.
fn component_dirs(template_dir: &Path) -> Vec<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let scripts = var("XSTAGE_CACHE")
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("xstage")))
        .map(|cache| cache.join("target"));
    [
        var("CARGO_TARGET_DIR"),
        Some(template_dir.join("target")),
        scripts,
    ]
    .into_iter()
    .flatten()
    .map(|target| target.join("wasm32-wasip2").join("wasm"))
    .collect()
}

/// The host configuration of a function.
///
/// A function that fans out (`XSTAGE_FAN_OUT_FUNCTION`) gets `AWS_ENDPOINT_URL_LAMBDA` set to
/// the served Invoke API, and only then may its guest reach it; with no server to answer
/// its workers, the variable is left out and its queries run in one invocation.
pub fn config(spec: &FunctionSpec, options: &LoadOptions) -> FunctionConfig {
    let mut config = FunctionConfig::new(spec.name());
    config.memory_size_mb = spec.memory_size_mb;
    config.timeout = spec.timeout;
    config.environment = spec.variables.clone();
    config.region = options.region.clone();
    config.credentials = options.credentials.clone();
    config.reserved_concurrency = spec.reserved_concurrency;
    let mut allow = options.allow.clone();
    if config.environment.contains_key(FAN_OUT_FUNCTION) {
        match &options.invoke_endpoint {
            Some(endpoint) => {
                config
                    .environment
                    .entry(LAMBDA_ENDPOINT.to_string())
                    .or_insert_with(|| endpoint.clone());
                allow.push(config.environment[LAMBDA_ENDPOINT].clone());
            }
            None => {
                config.environment.remove(FAN_OUT_FUNCTION);
            }
        }
    }
    config.egress = EgressPolicy::stage_query().allowing(Allowlist::from_urls(&allow));
    config
}

/// The variable that makes a function fan out, naming the function its workers run in.
pub const FAN_OUT_FUNCTION: &str = "XSTAGE_FAN_OUT_FUNCTION";
/// The AWS SDKs' Lambda endpoint override.
pub const LAMBDA_ENDPOINT: &str = "AWS_ENDPOINT_URL_LAMBDA";

/// Loads one function. Compiling a large component the first time takes minutes; `progress`
/// hears about it before and after.
pub async fn load(
    host: &Host,
    template: &Template,
    spec: &FunctionSpec,
    options: &LoadOptions,
    progress: &dyn Fn(String),
) -> Result<Deployed, EmulatorError> {
    let path = component_path(template, spec, options)?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    progress(format!(
        "loading {} from {} ({:.1} MB)",
        spec.name(),
        path.display(),
        size as f64 / 1e6
    ));
    let function = host
        .load(&path, config(spec, options))
        .await
        .map_err(|source| EmulatorError::Load {
            function: spec.name().to_string(),
            source,
        })?;
    let (cache, compile, load) = function.load_stats();
    progress(format!(
        "{}: {} ({})",
        spec.name(),
        match cache {
            CacheOutcome::Hit => "loaded from the compile cache".to_string(),
            CacheOutcome::Compiled => "compiled and cached".to_string(),
            CacheOutcome::Recompiled { reason } => format!("recompiled ({reason})"),
        },
        seconds(compile.unwrap_or(Duration::ZERO) + load)
    ));
    Ok(Deployed {
        arn: arn(&options.region, spec.name()),
        spec: spec.clone(),
        function,
    })
}

/// Loads every function of the template, one after another.
pub async fn load_all(
    host: &Host,
    template: &Template,
    options: &LoadOptions,
    progress: &dyn Fn(String),
) -> Result<Functions, EmulatorError> {
    let mut functions = Functions::default();
    for spec in &template.functions {
        functions.push(load(host, template, spec, options, progress).await?);
    }
    Ok(functions)
}

pub fn arn(region: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}")
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}
