//! `lifeboat demo`: the whole story on a local AWS that the demo starts and stops itself (a
//! moto server from the project's virtualenv): create a Delta table and register it in the Glue
//! Data Catalog, watch it replicate, verify the backup (which captures the catalog entry), drop
//! the table through the metastore and purge its files, see the verifier flag both, plan the
//! restore, carry it out (files and catalog entry), read the table back where the catalog says
//! it is.
//!
//! The queue's messages go, in SQS batches as Lambda delivers them, through `lifeboat replicate
//! --queue URL --until-empty` (the replicate Lambda's handler); the verifier and the restorer
//! run as `lifeboat verify` and `lifeboat restore`, the commands an engineer types in an
//! incident. The table is written and read by the Python `deltalake` package
//! (tests/py/delta_tool.py), a reader independent of Lifeboat.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use lifeboat_cli::local_aws::LocalAws;
use serde_json::Value;
use tokio::signal::unix::{signal, SignalKind};

const SOURCE: &str = "lake";
const BACKUP: &str = "lake-backup";
const TABLE_PATH: &str = "sales/orders";
/// The demo table's Glue Data Catalog entry (`LIFEBOAT_GLUE_DATABASES`).
const GLUE_DATABASE: &str = "sales";
const GLUE_TABLE: &str = "orders";
const STEPS: usize = 9;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Wait for Enter before each step (for a live demo).
    #[arg(long)]
    pause: bool,
    /// The project's virtualenv with moto and deltalake (default: LIFEBOAT_VENV, else the
    /// repository's .venv, else the tools on PATH).
    #[arg(long, value_name = "DIR")]
    venv: Option<PathBuf>,
}

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let tools = Tools::find(args.venv.as_deref())?;
    let ui = Ui::new(args.pause);
    ui.banner();
    let started = ui.spinner("starting a local AWS (moto) on a free loopback port");
    let log = std::env::temp_dir().join(format!("lifeboat-demo-moto-{}.log", std::process::id()));
    let aws = LocalAws::start(&tools.python, Some(log)).await?;
    started.finish_and_clear();
    ui.done(&format!(
        "local AWS (moto) answering at {} (pid {}, log {}), stopped when the demo ends",
        aws.endpoint(),
        aws.pid(),
        aws.log().display()
    ));
    // Ctrl-C (or a terminal hang-up, or kill): stop the local AWS and leave. A task of its own;
    // the story only awaits (child processes included), so it runs at once.
    let moto = aws.pid();
    let mut interrupt = signal(SignalKind::interrupt()).context("installing a signal handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing a signal handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("installing a signal handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
            _ = hangup.recv() => {}
        }
        INTERRUPTED.store(true, Ordering::SeqCst);
        eprintln!("\ninterrupted: stopping the local AWS (pid {moto})");
        let _ = Command::new("kill").arg(moto.to_string()).status();
        std::process::exit(130);
    });
    let outcome = Story::new(&tools, &aws, ui).tell().await;
    if INTERRUPTED.load(Ordering::SeqCst) {
        // The signal task is stopping everything; a child killed by the same Ctrl-C is no error.
        std::future::pending::<()>().await;
    }
    drop(aws);
    outcome?;
    Ok(ExitCode::SUCCESS)
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The Python tools and the Delta helper script.
struct Tools {
    python: lifeboat_cli::Tools,
    script: PathBuf,
}

impl Tools {
    fn find(venv: Option<&std::path::Path>) -> Result<Self> {
        let script = std::env::var_os("LIFEBOAT_DEMO_SCRIPT")
            .map(PathBuf::from)
            .unwrap_or_else(lifeboat_cli::delta_tool);
        if !script.exists() {
            bail!(
                "{} is missing: run the demo from the repository (make demo)",
                script.display()
            );
        }
        Ok(Tools {
            python: lifeboat_cli::Tools::find(venv),
            script,
        })
    }
}

/// The terminal: step headers, spinners, result lines; plain text when not a terminal.
struct Ui {
    pause: bool,
    color: bool,
    step: usize,
}

impl Ui {
    fn new(pause: bool) -> Self {
        Ui {
            pause: pause && std::io::stdin().is_terminal(),
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            step: 0,
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn banner(&self) {
        println!(
            "{}",
            self.paint(
                "1",
                "Lifeboat demo: a Delta table, its backup, a disaster and the way back"
            )
        );
        println!("Everything runs on this machine, on a local AWS started for the demo.\n");
    }

    fn step(&mut self, title: &str, why: &str) {
        self.step += 1;
        if self.pause {
            print!("{}", self.paint("2", "  (Enter to continue) "));
            let _ = std::io::stdout().flush();
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
        println!(
            "\n{} {}",
            self.paint("1;36", &format!("[{}/{STEPS}]", self.step)),
            self.paint("1", title)
        );
        println!("      {}", self.paint("2", why));
    }

    fn done(&self, text: &str) {
        println!("      {} {text}", self.paint("32", "✔"));
    }

    fn bad(&self, text: &str) {
        println!("      {} {text}", self.paint("31", "✘"));
    }

    fn indent(&self, text: &str) {
        for line in text.lines() {
            println!("      {line}");
        }
    }

    fn spinner(&self, text: &str) -> indicatif::ProgressBar {
        let bar = indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("      {spinner} {msg} {elapsed}")
                .expect("valid template"),
        );
        bar.set_message(text.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }
}

struct Story<'a> {
    tools: &'a Tools,
    aws: &'a LocalAws,
    ui: Ui,
    table: String,
}

impl<'a> Story<'a> {
    fn new(tools: &'a Tools, aws: &'a LocalAws, ui: Ui) -> Self {
        Story {
            tools,
            aws,
            ui,
            table: format!("s3://{SOURCE}/{TABLE_PATH}"),
        }
    }

    /// The environment of every step: the local AWS, and Lifeboat's configuration.
    fn env(&self, queue: Option<&str>) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("AWS_ENDPOINT_URL", self.aws.endpoint()),
            ("AWS_ACCESS_KEY_ID", "demo"),
            ("AWS_SECRET_ACCESS_KEY", "demo"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("LIFEBOAT_BACKUP_BUCKET", BACKUP),
            ("LIFEBOAT_SOURCE_BUCKETS", SOURCE),
            ("LIFEBOAT_GLUE_DATABASES", GLUE_DATABASE),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Some(queue) = queue {
            env.push(("LIFEBOAT_QUEUE_URL".into(), queue.into()));
        }
        env
    }

    /// tests/py/delta_tool.py COMMAND ARGS, its JSON answer.
    async fn python(&self, args: &[&str]) -> Result<Value> {
        let python = self.tools.python.python();
        let out = tokio::process::Command::new(&python)
            .arg(&self.tools.script)
            .args(args)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .envs(self.env(None))
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {}", python.display()))?;
        if !out.status.success() {
            bail!(
                "delta_tool.py {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        serde_json::from_slice(&out.stdout).context("delta_tool.py printed no JSON")
    }

    /// `lifeboat verify` of the demo table, its report shown indented.
    async fn verify(&self, queue: &str) -> Result<()> {
        let spin = self.ui.spinner("lifeboat verify");
        let (_, report) = self
            .lifeboat(&["verify", "--table", &self.table], queue, false)
            .await?;
        spin.finish_and_clear();
        println!();
        self.ui.indent(&report);
        Ok(())
    }

    /// `lifeboat ARGS` (this very binary), its standard output. Standard error (progress bars)
    /// reaches the terminal when `show_progress`; log lines and metrics are kept out of it.
    async fn lifeboat(
        &self,
        args: &[&str],
        queue: &str,
        show_progress: bool,
    ) -> Result<(i32, String)> {
        let exe = std::env::current_exe()?;
        let out = tokio::process::Command::new(exe)
            .args(args)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .envs(self.env(Some(queue)))
            .env("RUST_LOG", "off")
            .stdin(Stdio::null())
            .stderr(if show_progress {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .output()
            .await?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    }

    async fn tell(mut self) -> Result<()> {
        let begun = Instant::now();
        for (k, v) in self.env(None) {
            std::env::set_var(k, v);
        }
        std::env::remove_var("AWS_PROFILE");
        std::env::remove_var("AWS_SESSION_TOKEN");

        self.ui.step(
            "Wire a source bucket to a backup bucket",
            "The source bucket's object events go to an SQS queue that feeds the replicator; the backup bucket is versioned (infra/ deploys the same wiring, with IAM walls and Object Lock).",
        );
        let setup = self
            .python(&["setup", SOURCE, BACKUP, "lifeboat-events"])
            .await?;
        let queue = setup["queue_url"]
            .as_str()
            .context("no queue url")?
            .to_string();
        std::env::set_var("LIFEBOAT_QUEUE_URL", &queue);
        self.ui.done(&format!(
            "s3://{SOURCE} -> events -> {queue}; backup bucket s3://{BACKUP}"
        ));

        self.ui.step(
            "Create a Delta table and register it in the catalog",
            "A job writes s3://lake/sales/orders with the Python deltalake package (three commits, partitioned by city) and registers it in the Glue Data Catalog, where Athena, Spark and Trino find it.",
        );
        let spin = self.ui.spinner("writing with deltalake");
        let written = self.python(&["write", &self.table, "orders"]).await?;
        spin.finish_and_clear();
        let before = self.python(&["rows", &self.table]).await?;
        self.ui.done(&format!(
            "{} at version {}: {} rows ({} commits: {})",
            self.table,
            written["version"],
            before["rows"].as_array().map_or(0, Vec::len),
            written["history"].as_array().map_or(0, Vec::len),
            join(&written["history"])
        ));
        let entry = self
            .python(&["glue-register", GLUE_DATABASE, GLUE_TABLE, &self.table])
            .await?;
        self.ui.done(&format!(
            "registered {GLUE_DATABASE}.{GLUE_TABLE} in the Glue Data Catalog: {}",
            describe_entry(&entry)
        ));

        self.ui.step(
            "Watch it replicate",
            "Each S3 event reaches the replicator through the queue; it copies the object into the backup, server-side, keeping the original key.",
        );
        let t0 = Instant::now();
        let (events, batches) = self.drain(&queue).await?;
        let backed_up = self
            .python(&["count", BACKUP, &format!("{SOURCE}/{TABLE_PATH}/")])
            .await?;
        self.ui.done(&format!(
            "{events} events in {batches} batch(es) -> {} objects ({} bytes) in s3://{BACKUP}/{SOURCE}/{TABLE_PATH}/ in {:.1} s",
            backed_up["objects"],
            backed_up["bytes"],
            t0.elapsed().as_secs_f64()
        ));

        self.ui.step(
            "Verify the backup",
            "The verifier proves from the backup alone which versions can be restored (every file they need is there), compares the source with it, and captures the table's catalog definition into the backup.",
        );
        self.verify(&queue).await?;
        let captured = self.python(&["keys", BACKUP, &catalog_prefix()]).await?;
        let Some(record) = captured["keys"].as_array().and_then(|k| k.last()) else {
            bail!("the verifier captured no catalog definition of {GLUE_DATABASE}.{GLUE_TABLE}");
        };
        self.ui.done(&format!(
            "the Glue definition of {GLUE_DATABASE}.{GLUE_TABLE} is captured, write-once: s3://{BACKUP}/{}",
            record.as_str().unwrap_or("?")
        ));

        self.ui.step(
            "Disaster: the table is dropped and purged",
            "Metastore automation drops the table from the catalog (Glue DeleteTable) and deletes every object under its prefix, old versions included.",
        );
        self.python(&["glue-drop", GLUE_DATABASE, GLUE_TABLE])
            .await?;
        self.ui.bad(&format!(
            "Glue DeleteTable {GLUE_DATABASE}.{GLUE_TABLE}: engines that find tables through the catalog no longer see it"
        ));
        let dropped = self
            .python(&["drop", SOURCE, &format!("{TABLE_PATH}/")])
            .await?;
        let gone = self.python(&["rows", &self.table]).await?;
        self.ui.bad(&format!(
            "{} object versions destroyed under s3://{SOURCE}/{TABLE_PATH}/",
            dropped["destroyed"]
        ));
        self.ui.bad(&format!(
            "deltalake cannot open the table: {}",
            gone["error"].as_str().unwrap_or("?")
        ));
        let (deletions, _) = self.drain(&queue).await?;
        let still = self
            .python(&["count", BACKUP, &format!("{SOURCE}/{TABLE_PATH}/")])
            .await?;
        self.ui.done(&format!(
            "{deletions} deletion event(s) reached the replicator, which never deletes: the backup still holds {} objects",
            still["objects"]
        ));

        self.ui.step(
            "The verifier flags it",
            "Its next run (hourly by default) reports the dropped table and the dropped catalog entry as critical findings; alarms are built on them.",
        );
        self.verify(&queue).await?;

        self.ui.step(
            "Plan the restore (dry run)",
            "A restore is a dry run unless asked otherwise: here is what a rollback to the newest restorable version would copy, write and register in the catalog.",
        );
        let (code, plan) = self
            .lifeboat(
                &["restore", &self.table, "--mode", "rollback"],
                &queue,
                false,
            )
            .await?;
        if code != 0 {
            bail!("lifeboat restore (dry run) exited with {code}:\n{plan}");
        }
        println!();
        self.ui.indent(&plan);

        self.ui.step(
            "Restore",
            "The same command with --execute copies the table back from the backup; a dropped table comes back with its history, and its catalog entry as it was captured.",
        );
        let t0 = Instant::now();
        let (code, result) = self
            .lifeboat(
                &["restore", &self.table, "--mode", "rollback", "--execute"],
                &queue,
                true,
            )
            .await?;
        if code != 0 {
            bail!("lifeboat restore --execute exited with {code}:\n{result}");
        }
        println!();
        self.ui.indent(&result);

        self.ui.step(
            "Read the table back through the catalog",
            "The catalog entry is back; an independent reader (deltalake) opens the table where it points, and its rows must equal those before the drop.",
        );
        let entry = self
            .python(&["glue-get", GLUE_DATABASE, GLUE_TABLE])
            .await?;
        if entry["exists"] != true {
            bail!("{GLUE_DATABASE}.{GLUE_TABLE} is not in the catalog after the restore");
        }
        self.ui.done(&format!(
            "Glue GetTable {GLUE_DATABASE}.{GLUE_TABLE}: {}",
            describe_entry(&entry)
        ));
        let location = entry["location"]
            .as_str()
            .context("the entry has no location")?;
        let after = self.python(&["rows", location]).await?;
        let restore_seconds = t0.elapsed().as_secs_f64();
        if after.get("error").is_some() {
            bail!("the restored table cannot be read: {}", after["error"]);
        }
        println!();
        self.ui.indent(&rows_table(&after["rows"]));
        println!();
        if after["digest"] == before["digest"] && after["version"] == before["version"] {
            self.ui.done(&format!(
                "version {} again, {} rows identical to before the drop (digest {}); history: {}",
                after["version"],
                after["rows"].as_array().map_or(0, Vec::len),
                after["digest"].as_str().unwrap_or("?"),
                join(&after["history"])
            ));
        } else {
            bail!("the restored table differs: before {before}, after {after}");
        }
        self.drain(&queue).await?;
        self.ui.done(&format!(
            "the table read back {restore_seconds:.1} s after the restore started; the whole demo took {:.0} s",
            begun.elapsed().as_secs_f64()
        ));
        println!(
            "\nNext: `make test` runs the seven disaster drills through the Lambda binaries; README.md explains deployment."
        );
        Ok(())
    }

    /// `lifeboat replicate --queue URL --until-empty`: the queue's messages in batches of up to
    /// 10, each handed to the replicator as the SQS event Lambda delivers, until the queue is
    /// empty. Returns (messages, batches).
    async fn drain(&self, queue: &str) -> Result<(usize, usize)> {
        let spin = self
            .ui
            .spinner("lifeboat replicate --queue ... --until-empty");
        let (code, out) = self
            .lifeboat(
                &["replicate", "--queue", queue, "--until-empty", "--json"],
                queue,
                false,
            )
            .await?;
        spin.finish_and_clear();
        if code != 0 {
            bail!("lifeboat replicate --queue failed (exit {code}): {out}");
        }
        let summary: Value =
            serde_json::from_str(&out).context("lifeboat replicate printed no JSON summary")?;
        let count = |field: &str| summary[field].as_u64().unwrap_or(0) as usize;
        Ok((count("messages"), count("batches")))
    }
}

/// Where the verifier captures the demo table's catalog definitions in the backup.
fn catalog_prefix() -> String {
    lifeboat::layout::Layout::catalog_prefix(GLUE_DATABASE, GLUE_TABLE)
}

/// A catalog entry as `delta_tool.py glue-get` prints it, in a line.
fn describe_entry(entry: &Value) -> String {
    format!(
        "at {} ({}, provider {}; columns {}; partition keys {})",
        entry["location"].as_str().unwrap_or("?"),
        entry["table_type"].as_str().unwrap_or("?"),
        entry["parameters"]["spark.sql.sources.provider"]
            .as_str()
            .unwrap_or("?"),
        join(&entry["columns"]),
        join(&entry["partition_keys"])
    )
}

fn join(list: &Value) -> String {
    list.as_array()
        .map(|l| {
            l.iter()
                .map(|v| v.as_str().unwrap_or("?").to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// The rows as a small text table.
fn rows_table(rows: &Value) -> String {
    let mut out = format!(
        "{:>8}  {:<8}  {:>7}  {}\n",
        "order_id", "city", "amount", "status"
    );
    for r in rows.as_array().into_iter().flatten() {
        out += &format!(
            "{:>8}  {:<8}  {:>7.2}  {}\n",
            r["order_id"].as_i64().unwrap_or(0),
            r["city"].as_str().unwrap_or("?"),
            r["amount"].as_f64().unwrap_or(0.0),
            r["status"].as_str().unwrap_or("?")
        );
    }
    out
}
