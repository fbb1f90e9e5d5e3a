//! The real Lambda binaries (`replicate`, `verify`, `restore`) run under a local Lambda runtime
//! for the disaster drills: `cargo lambda watch` (PyPI `cargo-lambda`, which builds the binary
//! with `cargo run` in this workspace and emulates the Lambda runtime and invoke APIs).
//!
//! `cargo lambda watch` 1.9 sends every invocation the deadline `600000` (an absolute time in
//! January 1970) and the ARN `function-arn`. The restore function treats a deadline in the past
//! as no time limit (functions/restore/src/main.rs), so a drill's restore runs to the end in one
//! invocation; its continuation (a follow-up invocation of its own ARN before the deadline) is
//! not exercised here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::{repo_root, venv_bin};

/// The workspace's target directory (where `cargo run` and `cargo build` put the binaries).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            repo_root().join(dir)
        };
    }
    repo_root().join("target")
}

/// Builds the three function binaries once per test process, as `cargo lambda watch` builds
/// each (`cargo run --bin NAME`: the same profile and feature resolution), so its own builds
/// find everything fresh. Cargo's lock serializes concurrent drills.
pub fn build_functions() -> Result<()> {
    static BUILT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let out = Command::new(cargo)
                .current_dir(repo_root())
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "replicate",
                    "-p",
                    "verify",
                    "-p",
                    "restore",
                ])
                .output()
                .map_err(|e| format!("running cargo build: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "cargo build -p replicate -p verify -p restore failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// What a function invocation answered: its payload, or the error it reported.
#[derive(Debug)]
pub enum Outcome {
    Ok(Value),
    FunctionError(Value),
}

/// A function binary running under the local Lambda runtime.
pub type LambdaFunction = CargoLambdaWatch;

/// The environment a function process gets: nothing from the test process but what a build
/// needs (PATH, HOME, Rust toolchain variables), plus the function's own variables.
fn clean_env(command: &mut Command, function_env: &HashMap<String, String>) {
    command.env_clear();
    for name in [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "CARGO_TARGET_DIR",
        "TMPDIR",
        "LANG",
    ] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command.envs(function_env);
}

/// Sends SIGTERM to `pid`, waits up to `grace`, then SIGKILL; the same for the processes it
/// had started (collected first, so a parent that exits does not orphan them).
fn stop_process_tree(child: &mut Child, grace: Duration) {
    let mut pids = descendants(child.id());
    pids.reverse();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    for pid in pids {
        if Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// The pids of every process below `pid` (from /proc), parents before children.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and parens.
            if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) {
                if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) {
                    if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok())
                    {
                        parent_of.push((p, ppid));
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (p, pp) in &parent_of {
            if *pp == parent && !out.contains(p) {
                out.push(*p);
                frontier.push(*p);
            }
        }
    }
    out
}

// ----------------------------------------------------------------------------- cargo lambda

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// `cargo lambda watch --bin NAME` on a free loopback port, with the function's environment;
/// stopped (with the function process it started) when dropped.
pub struct CargoLambdaWatch {
    child: Child,
    pub bin: String,
    pub port: u16,
    pub log: PathBuf,
    /// The deployed function timeout, plus time for `cargo run` to check the build.
    limit: Duration,
}

impl CargoLambdaWatch {
    /// Starts `cargo lambda watch` for binary `bin` with `env` as the function's environment. Code
    /// changes are ignored (`--ignore-changes`): the binary is the one built for this run.
    pub async fn start(
        bin: &str,
        env: &HashMap<String, String>,
        timeout: Duration,
        log: PathBuf,
    ) -> Result<Self> {
        let port = free_port();
        let file = std::fs::File::create(&log)?;
        let mut command = Command::new(venv_bin("cargo-lambda"));
        clean_env(&mut command, env);
        let path = format!(
            "{}:{}",
            venv_bin("cargo-lambda").parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        command
            .env("PATH", path)
            .current_dir(repo_root())
            .args(["lambda", "watch", "--ignore-changes", "--quiet"])
            .args([
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &port.to_string(),
            ])
            .args(["--bin", bin])
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file));
        let child = command.spawn().context("starting cargo lambda watch")?;
        let mut watch = CargoLambdaWatch {
            child,
            bin: bin.to_string(),
            port,
            log,
            limit: timeout + Duration::from_secs(300),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Some(status) = watch.child.try_wait()? {
                bail!(
                    "cargo lambda watch exited with {status}: {}",
                    tail(&watch.log)
                );
            }
            if Instant::now() > deadline {
                bail!("cargo lambda watch did not listen on {port} within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(watch)
    }

    /// Invokes and expects a successful answer.
    pub async fn call(&self, payload: &Value) -> Result<Value> {
        match self.invoke(payload).await? {
            Outcome::Ok(v) => Ok(v),
            Outcome::FunctionError(e) => bail!("{} answered with an error: {e}", self.bin),
        }
    }

    pub fn name(&self) -> &str {
        &self.bin
    }

    /// Where it runs, for the drill's printout.
    pub fn runtime(&self) -> String {
        format!("cargo lambda watch on 127.0.0.1:{}", self.port)
    }

    /// Invokes the function synchronously (RequestResponse) with `payload`.
    pub async fn invoke(&self, payload: &Value) -> Result<Outcome> {
        let path = format!("/2015-03-31/functions/{}/invocations", self.bin);
        let body = payload.to_string();
        // cargo lambda watch leaves an invocation hanging when the function process dies (a
        // cold-start error, a crash): watch its log for that, and bound the wait.
        let exits_before = process_exits(&self.log);
        let died = async {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if process_exits(&self.log) > exits_before {
                    return;
                }
            }
        };
        let (status, headers, body) = tokio::select! {
            answer = http_post(self.port, &path, &body) => {
                answer.with_context(|| format!("invoking {} ({})", self.bin, tail(&self.log)))?
            }
            _ = died => bail!("the {} function process ended during the invocation: {}", self.bin, tail(&self.log)),
            _ = tokio::time::sleep(self.limit) => bail!("{} did not answer within {:?}: {}", self.bin, self.limit, tail(&self.log)),
        };
        let value: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        if status != 200 || headers.contains_key("x-amz-function-error") {
            return Ok(Outcome::FunctionError(value));
        }
        Ok(Outcome::Ok(value))
    }
}

/// How many times cargo lambda watch logged the end of a function process.
fn process_exits(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.contains("command exited")
                || l.contains("command killed")
                || l.contains("command ended")
        })
        .count()
}

impl Drop for CargoLambdaWatch {
    fn drop(&mut self) {
        stop_process_tree(&mut self.child, Duration::from_secs(5));
    }
}

/// The last lines of a log file, for error messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(15);
    format!(
        "{} (last lines of {}):\n{}",
        "log",
        path.display(),
        lines[from..].join("\n")
    )
}

// ----------------------------------------------------------------------------- HTTP

async fn read_headers<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Result<HashMap<String, String>> {
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            bail!("connection closed in the headers");
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Ok(headers);
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
}

async fn read_body<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    headers: &HashMap<String, String>,
) -> Result<Vec<u8>> {
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).await?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)?;
            if size == 0 {
                let mut end = String::new();
                reader.read_line(&mut end).await?; // trailer-less final CRLF
                return Ok(body);
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).await?;
            chunk.truncate(size);
            body.extend(chunk);
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    Ok(body)
}

// ----------------------------------------------------------------------------- client

/// POSTs `body` to `http://127.0.0.1:port{path}`; returns status, headers (lower-case names)
/// and body.
pub async fn http_post(
    port: u16,
    path: &str,
    body: &str,
) -> Result<(u16, HashMap<String, String>, Vec<u8>)> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let (read, mut write) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    write.write_all(head.as_bytes()).await?;
    write.write_all(body.as_bytes()).await?;
    write.flush().await?;
    let mut reader = BufReader::new(read);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).await?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no HTTP status in {status_line:?}"))?;
    let headers = read_headers(&mut reader).await?;
    let body =
        if headers.contains_key("content-length") || headers.contains_key("transfer-encoding") {
            read_body(&mut reader, &headers).await?
        } else {
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest).await?;
            rest
        };
    Ok((status, headers, body))
}
