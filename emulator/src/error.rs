//! The emulator's own errors: a template or component it cannot use. Errors of an
//! invocation are Lambda's: a function error in the response, or a service exception
//! ([`crate::api::ServiceError`]).

use std::path::PathBuf;

use crate::template::TemplateError;

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(
        "function {function} has no WASI component: add `Metadata: {{XstageComponent: NAME.wasm}}` to it in the template, or pass --component {function}=PATH"
    )]
    NoComponent { function: String },
    #[error("function {function}: {source}")]
    Load {
        function: String,
        #[source]
        source: xstage_host::LoadError,
    },
    #[error("{template} has no function named {name}; it declares {known}")]
    UnknownFunction {
        name: String,
        template: PathBuf,
        known: String,
    },
    #[error(
        "cannot listen on {addr}: {source}; another server (xstage serve, sam local) may hold the port: pass --port"
    )]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("the wasmtime host could not start: {0}")]
    Host(#[source] xstage_host::LoadError),
}
