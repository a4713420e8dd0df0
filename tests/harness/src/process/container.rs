//! Emulators as Docker containers: a quick "does a Docker engine answer?" check, and starting an
//! image with the `testcontainers` crate so that the container is removed when the test process
//! exits.
//!
//! testcontainers removes a container when its handle is dropped, but our handles live in
//! `static`s and are never dropped. So before starting, we label the container with a value unique
//! to this start and spawn a [`ServerProcess::on_exit`] lifeline that runs
//! `docker rm -f -v $(docker ps -aq --filter label=…)` once the test process is gone. That needs
//! the `docker` CLI on `PATH` (it inherits `DOCKER_HOST`); without it a warning is printed and the
//! container outlives the tests.
//!
//! The async testcontainers API runs on a dedicated thread with its own Tokio runtime, which then
//! parks forever holding the container handle; this keeps the container's log stream (copied to
//! the log file) flowing and works from inside a `#[tokio::test]` runtime.
//!
//! Set `XSTAGE_TEST_DOCKER=0` to skip Docker even when an engine answers.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use testcontainers::core::IntoContainerPort;
use testcontainers::core::logs::LogFrame;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerRequest, GenericImage, ImageExt};

use super::{ServerProcess, env_var, new_log_file};

/// Timeout of each step (connect, send, receive) of the Docker check; an absent engine fails at
/// once, a hung one within a few of these.
const DOCKER_CHECK_BUDGET: Duration = Duration::from_secs(1);

/// How long pulling the image and starting the container may take.
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// What to run: `image` serving HTTP on `port`.
pub(crate) struct ContainerSpec<'a> {
    pub name: &'a str,
    pub image: &'a str,
    pub port: u16,
    pub env: Vec<(&'a str, String)>,
    /// On the host's network (so `port` is a port of the host's loopback, which the image's
    /// server must be told through `env`), rather than published from the bridge.
    pub host_network: bool,
}

/// A started container; it is removed when the test process exits (or when this is dropped).
pub(crate) struct StartedContainer {
    endpoint: String,
    log_file: PathBuf,
    _cleanup: Option<ServerProcess>,
}

impl StartedContainer {
    /// `http://<docker host>:<mapped port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The file the container's stdout and stderr are copied to.
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }
}

/// True when Docker use is not disabled (`XSTAGE_TEST_DOCKER=0`) and the engine that
/// testcontainers would use answers `GET /_ping` within about a second.
fn docker_available() -> bool {
    if env_var("XSTAGE_TEST_DOCKER").is_some_and(|v| matches!(v.as_str(), "0" | "false" | "no")) {
        return false;
    }
    ping(&docker_host()).is_ok()
}

/// Why `image` cannot run here, or `None` when the engine answers and holds the image. No
/// registry is reachable from these machines: an image must have been built locally
/// (`scripts/env.sh`'s `container_images`).
pub(crate) fn unavailable(image: &str) -> Option<String> {
    if !docker_available() {
        return Some("no Docker engine answers".into());
    }
    match get(&docker_host(), &format!("/images/{image}/json")) {
        Ok(status) if status.contains(" 200 ") => None,
        Ok(status) if status.contains(" 404 ") => Some(format!(
            "Docker has no image {image}, and no registry is reachable (`source scripts/env.sh && \
             container_images` builds LocalStack's)"
        )),
        Ok(status) => Some(format!("Docker answered {status} about image {image}")),
        Err(e) => Some(format!("asking Docker about image {image}: {e:#}")),
    }
}

/// The Docker host as testcontainers resolves it (without its optional properties file):
/// `DOCKER_HOST`, else the first existing well-known socket, else `/var/run/docker.sock`.
fn docker_host() -> String {
    if let Some(host) = env_var("DOCKER_HOST") {
        return host;
    }
    let home = env_var("HOME").map(PathBuf::from);
    let candidates = [
        Some(PathBuf::from("/var/run/docker.sock")),
        env_var("XDG_RUNTIME_DIR").map(|d| Path::new(&d).join(".docker/run/docker.sock")),
        home.as_ref().map(|h| h.join(".docker/run/docker.sock")),
        home.as_ref().map(|h| h.join(".docker/desktop/docker.sock")),
    ];
    let socket = candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"));
    format!("unix://{}", socket.display())
}

/// Sends `GET /_ping` to a `unix://`, `tcp://` or `http://` Docker host and expects `200 OK`.
/// (A TLS-protected `tcp://` engine fails this check, and testcontainers is built without TLS.)
fn ping(host: &str) -> Result<()> {
    let status_line = get(host, "/_ping")?;
    if status_line.starts_with("HTTP/1.") && status_line.contains(" 200 ") {
        Ok(())
    } else {
        bail!("unexpected answer from {host}: {status_line}")
    }
}

/// `GET path` of the Docker host's API; its status line.
fn get(host: &str, path: &str) -> Result<String> {
    let request = format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n");
    let request = request.as_bytes();
    let budget = DOCKER_CHECK_BUDGET;
    let mut response = Vec::new();
    if let Some(path) = host.strip_prefix("unix://") {
        let mut stream =
            UnixStream::connect(path).with_context(|| format!("connecting to {path}"))?;
        stream.set_read_timeout(Some(budget))?;
        stream.set_write_timeout(Some(budget))?;
        stream.write_all(request)?;
        stream.take(4096).read_to_end(&mut response)?;
    } else if let Some(addr) = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
    {
        let addr = addr.trim_end_matches('/');
        let addr = addr
            .to_socket_addrs()
            .with_context(|| format!("resolving {addr}"))?
            .next()
            .ok_or_else(|| anyhow!("{addr} resolves to no address"))?;
        let mut stream = TcpStream::connect_timeout(&addr, budget)?;
        stream.set_read_timeout(Some(budget))?;
        stream.set_write_timeout(Some(budget))?;
        stream.write_all(request)?;
        stream.take(4096).read_to_end(&mut response)?;
    } else {
        bail!("unsupported DOCKER_HOST {host}");
    }
    let status_line = response.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(String::from_utf8_lossy(status_line).trim_end().to_string())
}

/// Splits `name[:tag]` at the tag's colon (a colon before the last `/` belongs to a registry
/// host); no tag means `latest`.
fn split_image(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

/// Starts `spec` and returns once Docker reports it started (not necessarily serving yet).
pub(crate) fn start(spec: &ContainerSpec<'_>) -> Result<StartedContainer> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let label = format!("xstage-tests-{}-{}-{nanos}", spec.name, std::process::id());

    let cleanup = if docker_cli_present() {
        let script = r#"ids=$(docker ps -aq --filter "label=xstage.tests=$1"); [ -z "$ids" ] || docker rm -f -v $ids"#;
        Some(ServerProcess::on_exit(
            &format!("{}-container-cleanup", spec.name),
            "/bin/sh",
            &["-c", script, "xstage-docker-rm", &label],
        )?)
    } else {
        eprintln!(
            "xstage-tests: no `docker` CLI on PATH: the {} container (label xstage.tests={label}) \
             will be left running after the tests",
            spec.name
        );
        None
    };

    let (log_file, log) = new_log_file(&format!("{}-container", spec.name))?;
    let (name, tag) = split_image(spec.image);
    let image = GenericImage::new(name, tag);
    let image = if spec.host_network {
        image
    } else {
        image.with_exposed_port(spec.port.tcp())
    };
    let mut request: ContainerRequest<GenericImage> = image
        .with_label("xstage.tests", &label)
        .with_log_consumer(move |frame: &LogFrame| {
            let bytes = match frame {
                LogFrame::StdOut(bytes) | LogFrame::StdErr(bytes) => bytes,
            };
            // Best effort: a lost log line must not disturb the tests.
            let _ = (&log).write_all(bytes);
        });
    for (key, value) in &spec.env {
        request = request.with_env_var(*key, value);
    }
    if spec.host_network {
        request = request.with_network("host");
    }

    let (port, host_network) = (spec.port, spec.host_network);
    let (tx, rx) = mpsc::channel::<Result<(String, String)>>();
    thread::Builder::new()
        .name(format!("xstage-{}-container", spec.name))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = tx.send(Err(anyhow!(e).context("building a Tokio runtime")));
                    return;
                }
            };
            runtime.block_on(async move {
                let started = async {
                    let container = request.start().await.context("starting the container")?;
                    if host_network {
                        let endpoint = format!("http://127.0.0.1:{port}");
                        return anyhow::Ok((container, endpoint));
                    }
                    let host = container
                        .get_host()
                        .await
                        .context("finding the Docker host")?;
                    let host_port = container
                        .get_host_port_ipv4(port.tcp())
                        .await
                        .with_context(|| format!("finding the host port mapped to {port}"))?;
                    let endpoint = format!("http://{host}:{host_port}");
                    anyhow::Ok((container, endpoint))
                };
                match started.await {
                    Ok((container, endpoint)) => {
                        let _ = tx.send(Ok((container.id().to_owned(), endpoint)));
                        // Park forever: the handle is never dropped (the lifeline removes the
                        // container), and the runtime keeps copying its logs.
                        std::future::pending::<()>().await;
                        drop(container);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })
        .context("spawning the container thread")?;

    let (id, endpoint) = rx
        .recv_timeout(START_TIMEOUT)
        .map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => {
                anyhow!("Docker did not start the container within {START_TIMEOUT:?}")
            }
            mpsc::RecvTimeoutError::Disconnected => {
                anyhow!("the container thread ended without a result")
            }
        })?
        .with_context(|| format!("starting {} from image {}", spec.name, spec.image))?;
    eprintln!(
        "xstage-tests: started {} container {id} from {}",
        spec.name, spec.image
    );
    Ok(StartedContainer {
        endpoint,
        log_file,
        _cleanup: cleanup,
    })
}

fn docker_cli_present() -> bool {
    Command::new("docker")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;

    use super::{ping, split_image};

    /// A one-shot fake Docker engine on a Unix socket that answers with `reply`.
    fn fake_engine(reply: &'static str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).expect("bind the fake socket");
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut request = [0u8; 256];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        (dir, format!("unix://{}", path.display()))
    }

    #[test]
    fn ping_accepts_only_a_200_answer() {
        let (_dir, host) = fake_engine("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK");
        ping(&host).expect("a 200 answer counts as a Docker engine");
        let (_dir, host) = fake_engine("HTTP/1.0 400 Bad Request\r\n\r\n");
        assert!(ping(&host).is_err());
        assert!(ping("unix:///nonexistent/docker.sock").is_err());
        assert!(ping("npipe:////./pipe/docker_engine").is_err());
    }

    #[test]
    fn splits_image_references() {
        assert_eq!(
            split_image("localstack/localstack:4.14.0"),
            ("localstack/localstack", "4.14.0")
        );
        assert_eq!(
            split_image("motoserver/moto"),
            ("motoserver/moto", "latest")
        );
        assert_eq!(
            split_image("localhost:5000/moto"),
            ("localhost:5000/moto", "latest")
        );
        assert_eq!(
            split_image("localhost:5000/moto:5.2.5"),
            ("localhost:5000/moto", "5.2.5")
        );
    }
}
