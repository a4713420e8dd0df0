//! The stage query function's native entry points. Under Lambda (`AWS_LAMBDA_RUNTIME_API`
//! set) it is the `bootstrap` of the `provided.al2023` runtime, built by cargo-lambda; see
//! `lambda.rs`. Otherwise it is `xstage-query EVENT.json`: it runs one event through the
//! handler and prints the response JSON, as Lambda would return it. `-` reads the event from
//! standard input.
//!
//! Exit status: 0 on success; 1 on a function error, whose `{"errorType", "errorMessage"}`
//! body is printed on stdout like a success body; 2 when the command itself is misused.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context;

const USAGE: &str = "usage: xstage-query EVENT.json   (or - for standard input)";

mod lambda;

fn main() -> ExitCode {
    // Started by Lambda (the `bootstrap` cargo-lambda builds from this binary).
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return lambda::run();
    }
    let mut args = std::env::args().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if path == "-h" || path == "--help" {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(&path) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xstage-query: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(path: &str) -> anyhow::Result<ExitCode> {
    let event = if path == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading the event from stdin")?;
        buf
    } else {
        std::fs::read(path).with_context(|| format!("reading the event file {path}"))?
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(xstage_core::handle_bytes(&event));
    let mut out = std::io::stdout().lock();
    let code = match result {
        Ok(response) => {
            serde_json::to_writer(&mut out, &response).context("writing the response")?;
            ExitCode::SUCCESS
        }
        Err(err) => {
            serde_json::to_writer(&mut out, &err.to_body()).context("writing the error")?;
            ExitCode::from(1)
        }
    };
    writeln!(out).context("writing the response")?;
    Ok(code)
}
