//! The real Lambda binaries (`replicate`, `verify`, `restore`) run under a local Lambda runtime
//! for the disaster drills: `cargo lambda watch` (PyPI `cargo-lambda`, which builds the binary
//! with `cargo run` in this workspace and emulates the Lambda runtime and invoke APIs), or
//! [`RuntimeEmulator`], a minimal runtime API served here.
//!
//! Why two: `cargo lambda watch` 1.9 answers every `/runtime/invocation/next` with
//! `Lambda-Runtime-Deadline-Ms: 600000`, an absolute time in January 1970, and
//! `Lambda-Runtime-Invoked-Function-Arn: function-arn`. The restore function budgets its copies
//! by that deadline (it stops a minute before it and continues in an asynchronous follow-up
//! invocation of its own ARN), so under `cargo lambda watch` it copies nothing and hands every
//! restore to a follow-up that cannot exist. The emulator sends what Lambda sends: now plus the
//! deployed timeout, and the deployed function ARN.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};

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

/// A function binary running under a local Lambda runtime.
pub enum LambdaFunction {
    CargoLambda(CargoLambdaWatch),
    Emulated(RuntimeEmulator),
}

impl LambdaFunction {
    /// Invokes the function synchronously (RequestResponse) with `payload`.
    pub async fn invoke(&self, payload: &Value) -> Result<Outcome> {
        match self {
            LambdaFunction::CargoLambda(f) => f.invoke(payload).await,
            LambdaFunction::Emulated(f) => f.invoke(payload).await,
        }
    }

    /// Invokes and expects a successful answer.
    pub async fn call(&self, payload: &Value) -> Result<Value> {
        match self.invoke(payload).await? {
            Outcome::Ok(v) => Ok(v),
            Outcome::FunctionError(e) => bail!("{} answered with an error: {e}", self.name()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            LambdaFunction::CargoLambda(f) => &f.bin,
            LambdaFunction::Emulated(f) => &f.bin,
        }
    }

    /// Which local runtime runs it, for the drill's printout.
    pub fn runtime(&self) -> String {
        match self {
            LambdaFunction::CargoLambda(f) => format!("cargo lambda watch on 127.0.0.1:{}", f.port),
            LambdaFunction::Emulated(f) => {
                format!("runtime API emulator on 127.0.0.1:{}", f.port)
            }
        }
    }
}

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
    /// Starts the emulator for binary `bin` with `env` as the function's environment. Code
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

    async fn invoke(&self, payload: &Value) -> Result<Outcome> {
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

/// Whether `pid` is still running (neither gone nor a zombie waiting to be reaped).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
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

// ----------------------------------------------------------------------------- emulator

type Reply = oneshot::Sender<Outcome>;

#[derive(Default)]
struct Queue {
    pending: std::collections::VecDeque<(String, Vec<u8>)>,
    waiting: HashMap<String, Reply>,
    init_error: Option<Value>,
}

struct EmulatorState {
    queue: Mutex<Queue>,
    arrived: Notify,
    arn: String,
    timeout: Duration,
    next_id: AtomicU64,
}

/// The Lambda runtime API (`/2018-06-01/runtime/...`) on a free loopback port, serving one
/// function process: the built binary, started with the function's environment and
/// `AWS_LAMBDA_RUNTIME_API` pointing here. Each invocation carries the deadline and ARN Lambda
/// would send. Stopped (with the process) when dropped.
pub struct RuntimeEmulator {
    child: Child,
    state: Arc<EmulatorState>,
    server: tokio::task::JoinHandle<()>,
    pub bin: String,
    pub port: u16,
    pub log: PathBuf,
}

impl RuntimeEmulator {
    pub async fn start(
        bin: &str,
        env: &HashMap<String, String>,
        function_name: &str,
        arn: &str,
        timeout: Duration,
        log: PathBuf,
    ) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(EmulatorState {
            queue: Mutex::new(Queue::default()),
            arrived: Notify::new(),
            arn: arn.to_string(),
            timeout,
            next_id: AtomicU64::new(1),
        });
        let server_state = state.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = server_state.clone();
                tokio::spawn(async move {
                    let _ = serve_runtime_connection(stream, state).await;
                });
            }
        });
        let binary = target_dir().join("debug").join(bin);
        if !binary.exists() {
            bail!("{} is missing: build_functions() first", binary.display());
        }
        let file = std::fs::File::create(&log)?;
        let mut command = Command::new(&binary);
        clean_env(&mut command, env);
        command
            .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
            .env("AWS_LAMBDA_FUNCTION_NAME", function_name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file));
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(RuntimeEmulator {
            child,
            state,
            server,
            bin: bin.to_string(),
            port,
            log,
        })
    }

    async fn invoke(&self, payload: &Value) -> Result<Outcome> {
        let id = format!(
            "drill-{:08}",
            self.state.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let (tx, rx) = oneshot::channel();
        {
            let mut queue = self.state.queue.lock().unwrap();
            if let Some(err) = &queue.init_error {
                bail!("{} failed at cold start: {err}", self.bin);
            }
            queue.waiting.insert(id.clone(), tx);
            queue
                .pending
                .push_back((id.clone(), payload.to_string().into_bytes()));
        }
        self.state.arrived.notify_one();
        let limit = self.state.timeout + Duration::from_secs(5);
        let pid = self.child.id();
        let died = async {
            while running(pid) {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        };
        tokio::select! {
            outcome = rx => outcome.map_err(|_| anyhow!("{} ended without answering: {}", self.bin, tail(&self.log))),
            _ = died => bail!("the {} function process ended during the invocation: {}", self.bin, tail(&self.log)),
            _ = tokio::time::sleep(limit) => bail!("{} did not answer within {limit:?}: {}", self.bin, tail(&self.log)),
        }
    }
}

impl Drop for RuntimeEmulator {
    fn drop(&mut self) {
        stop_process_tree(&mut self.child, Duration::from_secs(2));
        self.server.abort();
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// Reads one HTTP/1.1 request (Content-Length or chunked body); None at end of stream.
async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let headers = read_headers(reader).await?;
    let body = read_body(reader, &headers).await?;
    Ok(Some(Request { method, path, body }))
}

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

async fn respond(
    stream: &mut (impl AsyncWriteExt + Unpin),
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\ncontent-type: application/json\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    Ok(())
}

async fn serve_runtime_connection(stream: TcpStream, state: Arc<EmulatorState>) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    while let Some(request) = read_request(&mut reader).await? {
        let path = request.path.trim_start_matches("/2018-06-01/runtime");
        if request.method == "GET" && path == "/invocation/next" {
            let (id, body) = loop {
                let notified = state.arrived.notified();
                let next = { state.queue.lock().unwrap().pending.pop_front() };
                match next {
                    Some(next) => break next,
                    None => notified.await,
                }
            };
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis();
            let deadline = now_ms + state.timeout.as_millis();
            let headers = [
                ("lambda-runtime-aws-request-id", id.clone()),
                ("lambda-runtime-deadline-ms", deadline.to_string()),
                ("lambda-runtime-invoked-function-arn", state.arn.clone()),
                ("lambda-runtime-trace-id", format!("Root=1-00000000-{id}")),
            ];
            respond(&mut write, "200 OK", &headers, &body).await?;
        } else if let Some(rest) = path.strip_prefix("/invocation/") {
            let (id, kind) = rest.split_once('/').unwrap_or((rest, ""));
            let value: Value = serde_json::from_slice(&request.body).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&request.body).into_owned())
            });
            let outcome = match kind {
                "response" => Outcome::Ok(value),
                _ => Outcome::FunctionError(value),
            };
            let reply = { state.queue.lock().unwrap().waiting.remove(id) };
            if let Some(reply) = reply {
                let _ = reply.send(outcome);
            }
            respond(&mut write, "202 Accepted", &[], b"{}").await?;
        } else if path == "/init/error" {
            let value: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            {
                let mut queue = state.queue.lock().unwrap();
                for (_, reply) in queue.waiting.drain() {
                    let _ = reply.send(Outcome::FunctionError(value.clone()));
                }
                queue.init_error = Some(value);
            }
            respond(&mut write, "202 Accepted", &[], b"{}").await?;
        } else {
            respond(&mut write, "404 Not Found", &[], b"{}").await?;
        }
    }
    Ok(())
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
