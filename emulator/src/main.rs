//! `xstage`: serve the template's functions over the Lambda Invoke API, invoke one directly,
//! compile their components ahead, or run Databend-style SQL against stages.
//!
//! Exit status: 0 on success; 1 when an invocation returns a function error or a statement
//! fails; 2 when the command is misused or cannot start.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use xstage_emulator::EmulatorError;
use xstage_emulator::api::Api;
use xstage_emulator::functions::{self, LoadOptions};
use xstage_emulator::policy::{self, PolicyRequest};
use xstage_emulator::serve;
use xstage_emulator::sql::catalog::Store;
use xstage_emulator::sql::invoker::Invoker;
use xstage_emulator::sql::output::Format;
use xstage_emulator::sql::shell::Shell;
use xstage_emulator::sql::{Session, SqlError};
use xstage_emulator::template::Template;
use xstage_host::{Host, HostConfig};

#[derive(Parser)]
#[command(
    name = "xstage",
    version,
    about = "Run the xstage stage query function locally, as Lambda would."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the template's functions over the Lambda Invoke API.
    Serve {
        #[command(flatten)]
        functions: FunctionArgs,
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, short, default_value_t = serve::DEFAULT_PORT, env = "XSTAGE_PORT")]
        port: u16,
        /// Do not print each invocation's log on stderr.
        #[arg(long)]
        quiet: bool,
    },
    /// Compile the template's components into the compile cache, so that no later
    /// `serve`, `invoke` or `sql --local` waits for Cranelift.
    Compile {
        #[command(flatten)]
        functions: FunctionArgs,
    },
    /// Invoke one function once, without a server, and print its response.
    Invoke {
        /// The function's logical id or FunctionName.
        function: String,
        /// The event: a JSON file, or - for standard input. Default: {}.
        #[arg(long, short)]
        event: Option<PathBuf>,
        #[command(flatten)]
        functions: FunctionArgs,
    },
    /// Print the customer's IAM trust and permission policies for a stage, as JSON.
    Policy {
        /// The stage, s3://bucket/prefix/.
        #[arg(long)]
        stage_url: String,
        /// The platform's workload identity (the template's WorkloadIdentityRoleArn output).
        #[arg(long)]
        workload_role: String,
        /// The ExternalId the customer's role requires.
        #[arg(long)]
        external_id: String,
        /// Also grant s3:PutObject, s3:AbortMultipartUpload and s3:DeleteObject under the
        /// prefix, and s3:ListBucketMultipartUploads on the bucket, for COPY INTO (the
        /// function's session policy narrows them to each statement's own files).
        #[arg(long)]
        write: bool,
        /// Also write trust-policy.json and permission-policy.json into this directory.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Databend-style SQL: connections, stages, and queries on stages.
    Sql {
        /// A script file of statements separated by ';'.
        file: Option<PathBuf>,
        /// Statements to run (repeatable), instead of a file or the prompt.
        #[arg(long, short = 'e')]
        execute: Vec<String>,
        /// How rows are printed: table, json, csv, or arrow (an Arrow IPC stream).
        #[arg(long, short, default_value = "table")]
        format: Format,
        /// Write query results to FILE instead of stdout (whole, or not at all).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// The catalog file (default: $XSTAGE_CATALOG or ~/.local/share/xstage/catalog.json).
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// The emulator to send queries to.
        #[arg(long, default_value = "http://127.0.0.1:3001", env = "XSTAGE_ENDPOINT")]
        endpoint: String,
        /// The function that runs queries.
        #[arg(long, default_value = "StageQuery")]
        function: String,
        /// Run the function in this process instead of through `xstage serve`.
        #[arg(long)]
        local: bool,
        #[command(flatten)]
        functions: FunctionArgs,
    },
}

#[derive(Args, Clone)]
struct FunctionArgs {
    /// The SAM template.
    #[arg(long, short, default_value = "template.yaml", env = "XSTAGE_TEMPLATE")]
    template: PathBuf,
    /// A function's component, overriding its Metadata.XstageComponent (repeatable).
    #[arg(long, value_name = "FUNCTION=PATH")]
    component: Vec<String>,
    /// Where bare component file names are found.
    #[arg(long)]
    components_dir: Option<PathBuf>,
    /// Template parameter values (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    parameter_overrides: Vec<String>,
    /// An origin every invocation may reach besides the event's STS and S3 endpoints.
    #[arg(long, value_name = "URL")]
    allow: Vec<String>,
}

impl FunctionArgs {
    fn options(&self) -> anyhow::Result<LoadOptions> {
        let mut options = LoadOptions::from_env();
        options.components_dir = self.components_dir.clone();
        options.allow = self.allow.clone();
        options.components = self
            .component
            .iter()
            .map(|pair| {
                let (name, path) = pair
                    .split_once('=')
                    .with_context(|| format!("--component {pair}: expected FUNCTION=PATH"))?;
                Ok((name.to_string(), PathBuf::from(path)))
            })
            .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
        Ok(options)
    }

    fn template(&self, options: &LoadOptions) -> Result<Template, EmulatorError> {
        Ok(Template::load(
            &self.template_path(),
            &self.parameter_overrides,
            &options.region,
        )?)
    }

    /// `--template`; left at its default outside a directory holding a `template.yaml`, the
    /// template of the checkout this binary was built from, so `xstage` works from any
    /// directory.
    fn template_path(&self) -> PathBuf {
        if self.template == Path::new("template.yaml") && !self.template.exists() {
            let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
            if checkout.exists() {
                return checkout;
            }
        }
        self.template.clone()
    }
}

fn progress(line: String) {
    eprintln!("xstage: {line}");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("xstage: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xstage: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve {
            functions: args,
            host,
            port,
            quiet,
        } => {
            let mut options = args.options()?;
            let template = args.template(&options)?;
            let runtime = Host::new(HostConfig::default()).map_err(EmulatorError::Host)?;
            let listener = serve::bind(&host, port).await?;
            let served = listener.local_addr()?;
            // Fan-out workers are invoked here, through loopback when bound to all addresses.
            let reach = if served.ip().is_unspecified() {
                std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), served.port())
            } else {
                served
            };
            options.invoke_endpoint = Some(format!("http://{reach}"));
            let loaded = functions::load_all(&runtime, &template, &options, &progress).await?;
            let names: Vec<&str> = loaded.iter().map(|d| d.spec.name()).collect();
            let api = if quiet {
                Api::quiet(loaded.clone(), &options.region)
            } else {
                Api::new(loaded.clone(), &options.region)
            };
            let addr = listener.local_addr()?;
            progress(format!(
                "serving {} on http://{addr} (the Lambda Invoke API; Ctrl-C to stop)",
                names.join(", ")
            ));
            serve::run(api, listener, async {
                let signal = serve::signal().await;
                progress(format!("{signal}: finishing in-flight invocations"));
            })
            .await?;
            progress("stopped".into());
            Ok(ExitCode::SUCCESS)
        }
        Command::Compile { functions: args } => {
            let options = args.options()?;
            let template = args.template(&options)?;
            let runtime = Host::new(HostConfig::default()).map_err(EmulatorError::Host)?;
            functions::load_all(&runtime, &template, &options, &progress).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Invoke {
            function,
            event,
            functions: args,
        } => {
            let options = args.options()?;
            let template = args.template(&options)?;
            let spec = template
                .function(&function)
                .ok_or_else(|| unknown(&template, &function))?;
            let payload = match event {
                None => b"{}".to_vec(),
                Some(path) if path.as_os_str() == "-" => {
                    let mut buf = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut buf)
                        .context("reading the event from stdin")?;
                    buf
                }
                Some(path) => std::fs::read(&path)
                    .with_context(|| format!("cannot read the event {}", path.display()))?,
            };
            serde_json::from_slice::<serde::de::IgnoredAny>(&payload)
                .context("the event is not JSON")?;
            let runtime = Host::new(HostConfig::default()).map_err(EmulatorError::Host)?;
            let deployed = functions::load(&runtime, &template, spec, &options, &progress).await?;
            let invocation = deployed.function.invoke(&payload).await?;
            let mut err = std::io::stderr().lock();
            err.write_all(&invocation.logs)?;
            drop(err);
            let mut out = std::io::stdout().lock();
            out.write_all(&invocation.body())?;
            out.write_all(b"\n")?;
            Ok(if invocation.is_error() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Policy {
            stage_url,
            workload_role,
            external_id,
            write,
            out_dir,
        } => {
            let policies = policy::generate(&PolicyRequest {
                stage_url,
                workload_role,
                external_id,
                write,
            })?;
            let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).expect("JSON");
            if let Some(dir) = out_dir {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                for (name, doc) in [
                    ("trust-policy.json", &policies.trust),
                    ("permission-policy.json", &policies.permissions),
                ] {
                    let path = dir.join(name);
                    std::fs::write(&path, pretty(doc) + "\n")
                        .with_context(|| format!("writing {}", path.display()))?;
                    progress(format!("wrote {}", path.display()));
                }
            }
            println!(
                "{}",
                pretty(&serde_json::json!({
                    "TrustPolicy": policies.trust,
                    "PermissionPolicy": policies.permissions,
                }))
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Sql {
            file,
            execute,
            format,
            output,
            catalog,
            endpoint,
            function,
            local,
            functions: args,
        } => {
            let store = Store::new(catalog.unwrap_or_else(Store::default_path));
            let connect = move || -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Invoker, SqlError>>>> {
                Box::pin(async move {
                    if !local {
                        return Ok(Invoker::remote(&endpoint, &function));
                    }
                    let options = args
                        .options()
                        .map_err(|e| SqlError::Invalid(format!("{e:#}")))?;
                    let template = args.template(&options)?;
                    let spec = template
                        .function(&function)
                        .ok_or_else(|| unknown(&template, &function))?;
                    let runtime = Host::new(HostConfig::default()).map_err(EmulatorError::Host)?;
                    let deployed =
                        functions::load(&runtime, &template, spec, &options, &progress).await?;
                    Ok(Invoker::Local(std::sync::Arc::new(deployed)))
                })
            };
            let mut shell = Shell {
                session: Session::new(store, connect),
                format,
                output,
            };
            let script = if !execute.is_empty() {
                if file.is_some() {
                    bail!("give statements with -e or in a file, not both");
                }
                Some(execute.join(";\n"))
            } else if let Some(path) = &file {
                let text = if path.as_os_str() == "-" {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s)?;
                    s
                } else {
                    std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read the script {}", path.display()))?
                };
                Some(text)
            } else if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                Some(s)
            } else {
                None
            };
            match script {
                Some(text) => match shell.run_script(&text).await {
                    Ok(_) => Ok(ExitCode::SUCCESS),
                    Err(e) => {
                        eprintln!("error: {e}");
                        Ok(ExitCode::FAILURE)
                    }
                },
                None => {
                    let history = Store::default_path().with_file_name("history");
                    shell.interactive(Some(history)).await?;
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
    }
}

fn unknown(template: &Template, name: &str) -> EmulatorError {
    EmulatorError::UnknownFunction {
        name: name.to_string(),
        template: template.path.clone(),
        known: template
            .functions
            .iter()
            .map(|f| f.name().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}
