//! `xstage-host`: runs a function component once (or several times in one warm environment)
//! on the host, with the stage query function's egress policy, and prints the response.
//!
//! ```text
//! xstage-host COMPONENT.wasm EVENT.json [--memory-size MB] [--timeout SECONDS]
//!             [--region REGION] [--env NAME=VALUE]... [--allow URL]... [--repeat N]
//! ```
//!
//! The function's own credentials are this process's `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`; nothing else of its environment reaches
//! the guest. The response goes to stdout, the invocation log to stderr. Exit status: 0 on
//! success, 1 on a function error, 2 on misuse.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use xstage_host::{Allowlist, EgressPolicy, FunctionConfig, FunctionCredentials, Host, HostConfig};

const USAGE: &str = "usage: xstage-host COMPONENT.wasm EVENT.json [--memory-size MB] [--timeout SECONDS] [--region REGION] [--env NAME=VALUE]... [--allow URL]... [--repeat N]";

struct Args {
    component: PathBuf,
    event: PathBuf,
    config: FunctionConfig,
    repeat: u32,
}

fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
    let mut positional = Vec::new();
    let mut config = FunctionConfig::new("xstage-stage-query");
    config.credentials = FunctionCredentials::from_env();
    if let Ok(region) = std::env::var("AWS_REGION") {
        config.region = region;
    }
    let mut allow = Vec::new();
    let mut repeat = 1;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--memory-size" => {
                config.memory_size_mb = value(&arg)?.parse().context("--memory-size is in MB")?
            }
            "--timeout" => {
                config.timeout =
                    Duration::from_secs(value(&arg)?.parse().context("--timeout is in seconds")?)
            }
            "--region" => config.region = value(&arg)?,
            "--repeat" => repeat = value(&arg)?.parse().context("--repeat is a count")?,
            "--allow" => allow.push(value(&arg)?),
            "--env" => {
                let pair = value(&arg)?;
                let (k, v) = pair.split_once('=').context("--env takes NAME=VALUE")?;
                config.environment.insert(k.to_string(), v.to_string());
            }
            flag if flag.starts_with("--") => bail!("unknown option {flag}"),
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let [component, event] = <[PathBuf; 2]>::try_from(positional)
        .map_err(|_| anyhow::anyhow!("expected COMPONENT.wasm and EVENT.json"))?;
    config.egress = EgressPolicy::stage_query().allowing(Allowlist::from_urls(&allow));
    Ok(Args {
        component,
        event,
        config,
        repeat,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match parse(args.into_iter()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("xstage-host: {e:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xstage-host: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let event = std::fs::read(&args.event)
        .with_context(|| format!("reading the event file {}", args.event.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let host = Host::new(HostConfig::default())?;
        let function = host.load(&args.component, args.config).await?;
        let (cache, compile, load) = function.load_stats();
        eprintln!("xstage-host: component {cache:?}, compile {compile:?}, load {load:?}");
        let mut code = ExitCode::SUCCESS;
        for _ in 0..args.repeat.max(1) {
            let invocation = function.invoke(&event).await?;
            eprint!("{}", String::from_utf8_lossy(&invocation.logs));
            println!("{}", String::from_utf8_lossy(&invocation.body()));
            if invocation.is_error() {
                code = ExitCode::from(1);
            }
        }
        Ok(code)
    })
}
