//! README's commands, as written: every command of every `sh` block, each in a fresh shell
//! (`env -i bash -c`, from the checkout), against LocalStack with the seed's data. The shell
//! has what README says a user's has: `PATH` (with the AWS CLI), `HOME`, LocalStack's
//! credentials and endpoint, and where the scripts keep their caches; nothing from
//! `scripts/env.sh`. `event.json` is README's event with LocalStack's endpoint.
//!
//! A command that serves (`… serve`) runs in the background until its block ends; the
//! others must exit 0, and nothing they answer may be a function error. A README change that
//! breaks a command fails this test.

use std::collections::BTreeMap;

use xstage_tests::process::{ServerCommand, ServerProcess};

use super::*;

/// Commands this test does not run, by their first words, and why.
const NOT_RUN: &[(&str, &str)] = &[
    ("scripts/test", "this test is part of it"),
    (
        "cargo lambda build",
        "a release cross-build of an hour or more; the bootstrap it builds is tested as `xstage-query`",
    ),
    ("sam ", "needs an AWS account"),
];

/// README's `sh` blocks, each a list of commands: continuation lines joined, comments cut.
fn blocks(readme: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```sh" {
            continue;
        }
        let mut commands = Vec::new();
        let mut current = String::new();
        for line in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                break;
            }
            let code = match line.find(" #") {
                Some(at) => &line[..at],
                None if line.trim_start().starts_with('#') => "",
                None => line,
            };
            let code = code.trim_end();
            match code.strip_suffix('\\') {
                Some(part) => {
                    current.push_str(part);
                    current.push(' ');
                }
                None => {
                    current.push_str(code);
                    if !current.trim().is_empty() {
                        commands.push(current.trim().to_string());
                    }
                    current.clear();
                }
            }
        }
        blocks.push(commands);
    }
    blocks
}

/// The environment of a fresh shell of a user who has LocalStack running.
fn fresh_shell(catalog: &Path) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let path = format!(
        "{}:{}",
        clients::python().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    env.insert("PATH".into(), path);
    for keep in [
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "XSTAGE_CACHE",
        "CARGO_TARGET_DIR",
        "XSTAGE_PYTHON",
    ] {
        if let Ok(v) = std::env::var(keep) {
            env.insert(keep.into(), v);
        }
    }
    env.insert("AWS_ACCESS_KEY_ID".into(), "test".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), "test".into());
    env.insert("AWS_REGION".into(), "us-east-1".into());
    env.insert("AWS_DEFAULT_REGION".into(), "us-east-1".into());
    env.insert("AWS_ENDPOINT_URL".into(), WORLD.endpoint.clone());
    env.insert("AWS_CONFIG_FILE".into(), "/dev/null".into());
    env.insert("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into());
    env.insert("AWS_PAGER".into(), String::new());
    env.insert("XSTAGE_CATALOG".into(), catalog.display().to_string());
    env
}

/// `env -i K=V… bash -c 'cd ROOT && COMMAND'`.
fn shell_args(env: &BTreeMap<String, String>, root: &Path, command: &str) -> Vec<String> {
    let mut args = vec!["-i".to_string()];
    args.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    let script = format!("cd '{}' && {command}", root.display());
    args.extend(["bash".into(), "-c".into(), script]);
    args
}

/// README's event, its endpoint LocalStack's.
fn readme_event(readme: &str) -> Value {
    let start = readme
        .find("are this event:\n\n```json\n")
        .expect("README's event")
        + "are this event:\n\n```json\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let text = readme[start..end].replace("http://127.0.0.1:4566", &WORLD.endpoint);
    serde_json::from_str(&text).expect("README's event is JSON")
}

#[test]
fn every_command_in_readme_runs_as_written() {
    let root = repo();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = fresh_shell(&dir.path().join("catalog.json"));
    // README's commands name `event.json` (and write `out.json`) beside them: in the checkout.
    let (event, out) = (root.join("event.json"), root.join("out.json"));
    std::fs::write(&event, readme_event(&readme).to_string()).unwrap();
    let mut ran = Vec::new();
    for commands in blocks(&readme) {
        let mut servers: Vec<ServerProcess> = Vec::new();
        for command in commands {
            if let Some((_, why)) = NOT_RUN.iter().find(|(p, _)| command.starts_with(p)) {
                eprintln!("not run: {command}\n  ({why})");
                continue;
            }
            if command.contains(" serve") {
                let server = ServerProcess::spawn(
                    &ServerCommand::new("readme-serve", "env")
                        .args(shell_args(&env, &root, &command)),
                )
                .unwrap();
                wait_ready(
                    "README's xstage serve",
                    Duration::from_secs(600),
                    Some(&server),
                    Some(server.log_file()),
                    || http_get("http://127.0.0.1:3001/").map(|_| ()),
                )
                .unwrap();
                servers.push(server);
                ran.push(command);
                continue;
            }
            let output = Command::new("env")
                .args(shell_args(&env, &root, &command))
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let said = format!(
                "{command}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(output.status.success(), "{said}");
            assert!(!said.contains("errorType"), "{said}");
            if out.exists() {
                let answer = std::fs::read_to_string(&out).unwrap();
                std::fs::remove_file(&out).unwrap();
                assert!(!answer.contains("errorType"), "{command}: {answer}");
                assert!(answer.contains("\"rows\""), "{command}: {answer}");
            }
            ran.push(command);
        }
        for server in servers {
            server.stop();
        }
    }
    std::fs::remove_file(&event).ok();
    eprintln!(
        "ran {} of README's commands:\n{}",
        ran.len(),
        ran.join("\n")
    );
    // The demo, the host, serve, the AWS CLI, invoke, compile, sql, policy and xstage-query.
    assert!(ran.len() >= 9, "{ran:#?}");
}
