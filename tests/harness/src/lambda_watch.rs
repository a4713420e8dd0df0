//! The native `bootstrap` under cargo-lambda's Lambda Runtime API emulator (`cargo lambda
//! watch --only-lambda-apis`, PyPI `cargo-lambda`, written by no one here): the emulator on a
//! free loopback port, then the bootstrap started against it with the environment Lambda
//! gives. Its Invoke API answers at [`LambdaWatch::url`] for the function `_`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::clients;
use crate::process::{ServerCommand, ServerProcess, free_port, wait_ready};
use crate::seed;

/// A running `cargo lambda watch` and one bootstrap process serving it.
pub struct LambdaWatch {
    pub port: u16,
    /// When the bootstrap was started (its Init runs from here).
    pub started: Instant,
    pub function: ServerProcess,
    watch: ServerProcess,
}

impl LambdaWatch {
    /// Starts the emulator, then `bootstrap` with the platform identity ([`seed::platform_env`]),
    /// 1024 MB and Lambda's JSON log format.
    pub fn start(bootstrap: &Path) -> Result<Self> {
        let cargo_lambda = clients::cargo_lambda();
        clients::check(&cargo_lambda)?;
        let port = free_port()?;
        let watch = ServerProcess::spawn(
            &ServerCommand::new("cargo-lambda-watch", &cargo_lambda)
                .args([
                    "lambda",
                    "watch",
                    "--only-lambda-apis",
                    "--invoke-address",
                    "127.0.0.1",
                    "--invoke-port",
                ])
                .args([port.to_string()])
                // An invocation the function never answers fails instead of hanging the test.
                .args(["--timeout", "120"]),
        )?;
        wait_ready(
            "cargo lambda watch",
            Duration::from_secs(60),
            Some(&watch),
            Some(watch.log_file()),
            || {
                std::net::TcpStream::connect(("127.0.0.1", port))?;
                Ok(())
            },
        )?;
        let mut command = ServerCommand::new("bootstrap", bootstrap)
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for (k, v) in seed::platform_env() {
            command = command.env(k, v);
        }
        let started = Instant::now();
        let function = ServerProcess::spawn(&command)?;
        Ok(Self {
            port,
            started,
            function,
            watch,
        })
    }

    /// The Invoke API's base URL (`/2015-03-31/functions/_/invocations` below it).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stop(self) {
        self.function.stop();
        self.watch.stop();
    }
}
