//! The local AWS: moto in server mode on a free loopback port, for `lifeboat demo`, the test
//! harness and the disaster drills. One starter for all of them.
//!
//! It runs the project's launcher, `scripts/local_aws.py` (moto patched to behave like S3 where
//! moto does not), when the repository has it, else plain `moto_server`. It is ready when
//! `GET /moto-api/` answers 200. Dropping it kills the server and waits for it; the server's
//! log is kept.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Tools;

/// How long a fresh server may take to answer (moto imports every service at start).
const READY_WITHIN: Duration = Duration::from_secs(60);

/// A local AWS server, killed (and waited for) when dropped.
pub struct LocalAws {
    child: Child,
    port: u16,
    endpoint: String,
    log: PathBuf,
}

impl LocalAws {
    /// Starts the server on a free loopback port with the tools of `tools`, its output going to
    /// `log` (default: `lifeboat-local-aws-PORT.log` in the temporary directory), and waits
    /// until it answers.
    pub async fn start(tools: &Tools, log: Option<PathBuf>) -> Result<Self> {
        let port = free_port()?;
        let log = log
            .unwrap_or_else(|| std::env::temp_dir().join(format!("lifeboat-local-aws-{port}.log")));
        let file = std::fs::File::create(&log)
            .with_context(|| format!("creating the local AWS log {}", log.display()))?;
        let mut command = launcher(tools, port);
        let program = command.get_program().to_os_string();
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file));
        let child = command.spawn().with_context(|| {
            format!(
                "starting the local AWS ({}): run `make setup` first",
                Path::new(&program).display()
            )
        })?;
        let mut aws = LocalAws {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        aws.wait_until_ready().await?;
        Ok(aws)
    }

    async fn wait_until_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if answers(self.port).await {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the local AWS exited with {status} before it answered; see {}",
                    self.log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the local AWS did not answer on {} within {} s; see {}",
                    self.endpoint,
                    READY_WITHIN.as_secs(),
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's output (kept after it stops).
    pub fn log(&self) -> &Path {
        &self.log
    }
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `python scripts/local_aws.py --host 127.0.0.1 --port PORT` when the repository has the
/// launcher, else `moto_server -H 127.0.0.1 -p PORT`.
fn launcher(tools: &Tools, port: u16) -> Command {
    let script = crate::repo_root().join("scripts/local_aws.py");
    let port = port.to_string();
    if script.exists() {
        let mut command = Command::new(tools.python());
        command
            .arg(script)
            .args(["--host", "127.0.0.1", "--port", &port]);
        command
    } else {
        let mut command = Command::new(tools.tool("moto_server"));
        command.args(["-H", "127.0.0.1", "-p", &port]);
        command
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("no free loopback port")?
        .port())
}

/// Whether `GET /moto-api/` on the port answers 200.
async fn answers(port: u16) -> bool {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head.starts_with(b"HTTP/1.") && &head[9..12] == b"200")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), exchange).await,
        Ok(Ok(true))
    )
}
