//! Child-process plumbing shared by the emulator harnesses ([`crate::localstack`],
//! [`crate::moto`]): start a server as a child that dies with the test process, wait until it
//! answers, and hand it out as an [`Emulator`].
//!
//! # Why children die with the test process
//!
//! Each emulator lives in a `static` and is never dropped, so no destructor can stop it. Instead,
//! [`ServerProcess::spawn`] runs the server under a small `/bin/sh` supervisor
//! ([`SUPERVISOR`]) that is the leader of its own process group and whose stdin is a pipe from
//! the test process (the *lifeline*). Only the test process holds the pipe's write end, so when
//! it exits in any way — normal end, panic, `std::process::exit`, SIGKILL — the kernel closes the
//! pipe, the supervisor reads end-of-file, sends SIGTERM to the whole group (the server and
//! anything it started that stayed in the group), sends SIGKILL to the server if it is still
//! there after 5 s (LocalStack 2026.3 in host mode sometimes hangs in its shutdown), removes the
//! server's scratch directory if one was given, and finally SIGKILLs the group, itself included.
//! The group being separate also keeps a terminal's Ctrl-C away from the server: it is the
//! closed lifeline that stops it.
//!
//! Server output goes to a log file under `std::env::temp_dir()/xstage-test-logs/`, never to the
//! test's stdout; startup errors quote its tail.

pub mod container;

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// A running (or configured) AWS emulator endpoint, shared by all tests of one test process.
pub struct Emulator {
    name: &'static str,
    endpoint: String,
    kind: &'static str,
    log_file: Option<PathBuf>,
    startup: Duration,
    _guard: Guard,
}

/// How one emulator is provided; [`Provision::run`] takes the first that applies: an endpoint
/// from the environment, a container when a Docker engine answers, else a child process.
pub(crate) struct Provision<'a> {
    pub name: &'static str,
    /// Variable naming an endpoint to use as is.
    pub endpoint_var: &'static str,
    pub container: container::ContainerSpec<'a>,
    pub ready_timeout: Duration,
    /// `Ok` once the emulator at this endpoint answers.
    pub probe: fn(&str) -> Result<()>,
}

impl Provision<'_> {
    /// Provides the emulator; `spawn` starts the child process and returns it with its endpoint.
    pub(crate) fn run(
        &self,
        spawn: impl FnOnce() -> Result<(ServerProcess, String)>,
    ) -> Result<Emulator> {
        let begin = Instant::now();
        if let Some(endpoint) = env_var(self.endpoint_var) {
            return Ok(Emulator::new(
                self.name,
                endpoint,
                "env",
                None,
                begin.elapsed(),
                Guard::None,
            ));
        }
        let unavailable = container::unavailable(self.container.image);
        let (endpoint, log_file, kind, guard) = if unavailable.is_none() {
            let started = container::start(&self.container)?;
            let endpoint = started.endpoint().to_owned();
            let log_file = started.log_file().to_owned();
            (endpoint, log_file, "container", Guard::Container(started))
        } else {
            eprintln!(
                "xstage-tests: {} runs as a process, not a container: {}",
                self.name,
                unavailable.unwrap_or_default()
            );
            let (server, endpoint) = spawn()?;
            let log_file = server.log_file().to_owned();
            (endpoint, log_file, "process", Guard::Process(server))
        };
        let server = match &guard {
            Guard::Process(server) => Some(server),
            _ => None,
        };
        let what = format!("{} {kind}", self.name);
        wait_ready(&what, self.ready_timeout, server, Some(&log_file), || {
            (self.probe)(&endpoint)
        })?;
        Ok(Emulator::new(
            self.name,
            endpoint,
            kind,
            Some(log_file),
            begin.elapsed(),
            guard,
        ))
    }
}

/// What keeps an emulator alive; held, never read, so that it is not dropped early.
#[expect(dead_code, reason = "the fields are held for their lifetime only")]
pub(crate) enum Guard {
    /// Nothing to keep: the endpoint came from the environment.
    None,
    /// A supervised child process.
    Process(ServerProcess),
    /// A container, removed when the test process exits.
    Container(container::StartedContainer),
}

impl Emulator {
    pub(crate) fn new(
        name: &'static str,
        endpoint: impl Into<String>,
        kind: &'static str,
        log_file: Option<PathBuf>,
        startup: Duration,
        guard: Guard,
    ) -> Self {
        Emulator {
            name,
            endpoint: endpoint.into().trim_end_matches('/').to_owned(),
            kind,
            log_file,
            startup,
            _guard: guard,
        }
    }

    /// Base URL of the emulator, like `http://127.0.0.1:4566`, without a trailing slash.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// How the emulator was provided: `"env"` (an endpoint from the environment), `"container"`
    /// (started with testcontainers) or `"process"` (a local child process).
    pub fn kind(&self) -> &str {
        self.kind
    }

    /// The file the emulator's output goes to, when this process started it.
    pub fn log_file(&self) -> Option<&Path> {
        self.log_file.as_deref()
    }

    /// How long provisioning took, from the first call until the emulator answered.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Writes a one-line summary to stderr (captured by the test harness unless `--nocapture`).
    pub(crate) fn announce(&self) {
        let log = self
            .log_file
            .as_ref()
            .map(|p| format!("; log {}", p.display()));
        eprintln!(
            "xstage-tests: {} ({}) ready at {} after {:.1} s{}",
            self.name,
            self.kind,
            self.endpoint,
            self.startup.as_secs_f64(),
            log.unwrap_or_default()
        );
    }
}

/// Runs `start` once per process and returns its emulator; every later call, and every call after
/// a failed start, gets the same result, so a broken emulator fails each test quickly with the
/// original message instead of retrying a slow start.
#[track_caller]
pub(crate) fn shared(
    cell: &'static std::sync::OnceLock<Result<Emulator, String>>,
    name: &str,
    start: fn() -> Result<Emulator>,
) -> &'static Emulator {
    let started = cell.get_or_init(|| {
        start()
            .inspect(Emulator::announce)
            .map_err(|e| format!("{e:#}"))
    });
    match started {
        Ok(emulator) => emulator,
        Err(message) => panic!("xstage-tests: could not provide {name}: {message}"),
    }
}

/// The `sh` supervisor run by [`ServerProcess::spawn`], see the module docs.
/// Arguments: `$1` a path to remove once the server is gone (empty for none), then the server
/// command. Its stdin is the lifeline; the server gets `/dev/null` instead.
/// (`kill -s SIG -- -PGID` is the spelling both dash and bash accept.)
pub const SUPERVISOR: &str = r#"
cleanup=$1; shift
exec 3<&0 </dev/null
"$@" 3<&- &
server=$!
trap '' TERM
{
  cat <&3 >/dev/null
  echo "xstage: test process gone; stopping server (pid $server)" >&2
  kill -s TERM -- "-$$" 2>/dev/null
  sleep 5
  echo "xstage: server still running after 5 s; killing it" >&2
  kill -s KILL "$server" 2>/dev/null
} &
exec 3<&-
wait "$server"
status=$?
echo "xstage: server exited with status $status" >&2
kill -s TERM -- "-$$" 2>/dev/null
if [ -n "$cleanup" ]; then rm -rf -- "$cleanup"; fi
kill -s KILL -- "-$$"
"#;

/// The `sh` script for [`ServerProcess::on_exit`]: wait for the lifeline to close, then run the
/// command given as arguments.
const ON_EXIT: &str = r#"
cat >/dev/null
echo "xstage: test process gone; running: $*" >&2
exec "$@"
"#;

/// How to start a server: program, arguments, environment and an optional scratch directory.
#[derive(Debug, Clone)]
pub struct ServerCommand {
    name: String,
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    remove_on_exit: Option<PathBuf>,
}

impl ServerCommand {
    /// A server called `name` (used in log file names and messages) that runs `program`.
    pub fn new(name: impl Into<String>, program: impl AsRef<OsStr>) -> Self {
        ServerCommand {
            name: name.into(),
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            remove_on_exit: None,
        }
    }

    /// Adds command-line arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the server (on top of the test process's environment).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// A directory the supervisor deletes after the server has stopped.
    pub fn remove_on_exit(mut self, dir: impl Into<PathBuf>) -> Self {
        self.remove_on_exit = Some(dir.into());
        self
    }
}

/// A supervised child process: see the module docs for how it dies with the test process.
/// Dropping it (or [`ServerProcess::stop`]) stops it early.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    log_file: PathBuf,
    child: Mutex<Child>,
    lifeline: Mutex<Option<ChildStdin>>,
}

impl ServerProcess {
    /// Starts `command` under the [`SUPERVISOR`], its output appended to a new log file.
    pub fn spawn(command: &ServerCommand) -> Result<Self> {
        let (log_file, log) = new_log_file(&command.name)?;
        let mut sh = Command::new("/bin/sh");
        sh.arg("-c")
            .arg(SUPERVISOR)
            .arg(format!("xstage-{}", command.name))
            .arg(command.remove_on_exit.as_deref().unwrap_or(Path::new("")))
            .arg(&command.program)
            .args(&command.args)
            .envs(command.envs.iter().map(|(k, v)| (k, v)));
        Self::launch(&command.name, sh, log_file, log)
            .with_context(|| format!("starting {:?}", command.program))
    }

    /// Runs `program args…` once the test process has exited (used to remove containers).
    pub fn on_exit(name: &str, program: &str, args: &[&str]) -> Result<Self> {
        let (log_file, log) = new_log_file(name)?;
        let mut sh = Command::new("/bin/sh");
        sh.arg("-c")
            .arg(ON_EXIT)
            .arg(format!("xstage-{name}"))
            .arg(program)
            .args(args);
        Self::launch(name, sh, log_file, log)
    }

    fn launch(name: &str, mut sh: Command, log_file: PathBuf, log: File) -> Result<Self> {
        let log_err = log.try_clone().context("duplicating the log file handle")?;
        let mut child = sh
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .context("spawning /bin/sh")?;
        let lifeline = child
            .stdin
            .take()
            .context("the supervisor's stdin is not a pipe")?;
        Ok(ServerProcess {
            name: name.to_owned(),
            log_file,
            child: Mutex::new(child),
            lifeline: Mutex::new(Some(lifeline)),
        })
    }

    /// The log file holding the server's stdout and stderr and the supervisor's notes.
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// The supervisor's process id, which is also the process group id of the server.
    pub fn pgid(&self) -> u32 {
        lock(&self.child).id()
    }

    /// `Some(status)` once the supervisor has exited, meaning the server is gone.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        lock(&self.child).try_wait().ok().flatten()
    }

    /// Stops the server by closing its lifeline and waits (at most ~15 s) for the group to end.
    pub fn stop(&self) {
        drop(lock(&self.lifeline).take());
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.exit_status().is_none() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Directory holding the servers' log files: `temp_dir()/xstage-test-logs`.
pub fn log_dir() -> PathBuf {
    std::env::temp_dir().join("xstage-test-logs")
}

/// Creates `log_dir()/<name>-<pid>-<n>.log`, unique within this process.
pub(crate) fn new_log_file(name: &str) -> Result<(PathBuf, File)> {
    let dir = log_dir();
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for n in 0.. {
        let path = dir.join(format!("{name}-{}-{n}.log", std::process::id()));
        match OpenOptions::new().append(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    unreachable!("an unbounded range always yields a free name or an error")
}

/// The last `lines` lines of a log file (at most its last 64 KiB), for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it; there is a small race
/// until the server binds it).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("binding 127.0.0.1:0")?;
    Ok(listener
        .local_addr()
        .context("reading the bound address")?
        .port())
}

/// Polls `probe` every 200 ms until it returns `Ok(())`, and returns how long that took.
///
/// Fails when `timeout` passes or `process` (if given) exits first; the error names `what`, the
/// probe's last error and the tail of `log_file` (if given).
pub fn wait_ready(
    what: &str,
    timeout: Duration,
    process: Option<&ServerProcess>,
    log_file: Option<&Path>,
    mut probe: impl FnMut() -> Result<()>,
) -> Result<Duration> {
    let start = Instant::now();
    let tail = || match log_file {
        Some(path) => format!(
            "\n--- last lines of {} ---\n{}",
            path.display(),
            log_tail(path, 40)
        ),
        None => String::new(),
    };
    loop {
        let last = match probe() {
            Ok(()) => return Ok(start.elapsed()),
            Err(e) => e,
        };
        if let Some(process) = process.filter(|p| p.exit_status().is_some()) {
            // The supervisor's own status says nothing; the log has the server's.
            bail!(
                "{what}: the {} server exited before it was ready{}",
                process.name,
                tail()
            );
        }
        if start.elapsed() >= timeout {
            bail!(
                "{what}: not ready after {timeout:?}; last check: {last:#}{}",
                tail()
            );
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// `GET url` with a 5 s timeout and no proxy; returns the status code and body (any status).
pub fn http_get(url: &str) -> Result<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(256 * 1024 * 1024)
        .read_to_string()
        .with_context(|| format!("reading the body of GET {url}"))?;
    Ok((status, body))
}

/// `GET url` and parse the body as JSON, failing on a non-2xx status.
pub fn http_get_json(url: &str) -> Result<serde_json::Value> {
    let (status, body) = http_get(url)?;
    if !(200..300).contains(&status) {
        return Err(anyhow!(
            "GET {url}: HTTP {status}: {}",
            body.chars().take(300).collect::<String>()
        ));
    }
    serde_json::from_str(&body).with_context(|| format!("GET {url}: the body is not JSON"))
}

/// xstage's cache directory: `$XSTAGE_CACHE`, else `$HOME/.cache/xstage` (as in `scripts/env.sh`).
pub fn cache_dir() -> PathBuf {
    env_var("XSTAGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = env_var("HOME").unwrap_or_else(|| "/".to_owned());
            Path::new(&home).join(".cache").join("xstage")
        })
}

/// Reads an environment variable, treating unset, empty and non-UTF-8 alike as absent.
pub fn env_var(key: &str) -> Option<String> {
    std::env::var(key)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}
