"""The chaos lab: one local AWS per run (scripts/local_aws.py), wiped and wired again for each
example, and the real `lifeboat` binary run against it with a timeout on every call.

As deployed (tests/support/lib.rs `Lab::start`): a versioned source bucket whose object events
go to an SQS queue; a versioned backup bucket with SSE-KMS default encryption; conditional
copies on; grace period 0 (the verifier calls an object missing at once and re-sends it).
A second source bucket without notifications takes the clones the invariants make, so that
checking does not add events to the queue. A Glue database holds the tables' catalog entries
(registered by the writer), and Lifeboat is configured with it (`LIFEBOAT_GLUE_DATABASES`), so
every verify run captures them and a rollback or repair registers a dropped one again.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
VENV_PY = REPO / ".venv" / "bin" / "python"
LAUNCHER = REPO / "scripts" / "local_aws.py"
LIFEBOAT = Path(os.environ.get("LIFEBOAT_BIN", REPO / "target" / "debug" / "lifeboat"))

SRC = "source-bucket"
CLONES = "clone-bucket"
BACKUP = "backup-bucket"
QUEUE = "lifeboat-events"
GLUE_DATABASE = "lake"
# Where the verifier captures a catalog entry's definitions in the backup (the core's
# `layout::Layout::catalog_prefix`).
CATALOG_CAPTURES = "_lifeboat/catalog/{database}/{table}/"
# Where the replicator keeps aside other content under a backup key (`layout::CONFLICTS_PREFIX`).
CONFLICTS = "_lifeboat/conflicts/"

# Every subprocess gets one of these (invariant 5: no hung process).
CLI_TIMEOUT = float(os.environ.get("CHAOS_CLI_TIMEOUT", "120"))


class Violation(AssertionError):
    """An invariant does not hold."""


@dataclass
class Run:
    args: list
    code: int
    stdout: str
    stderr: str
    seconds: float

    def json(self):
        return json.loads(self.stdout)

    def describe(self) -> str:
        return (f"lifeboat {' '.join(self.args)} -> exit {self.code} in {self.seconds:.1f}s\n"
                f"stdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-3000:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_no_panic(run: Run):
    for marker in ("panicked at", "RUST_BACKTRACE", "stack backtrace"):
        if marker in run.stderr or marker in run.stdout:
            raise Violation(f"invariant 5 (no panic): {run.describe()}")


class Lab:
    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.gettempdir()) / f"lifeboat-chaos-aws-{self.port}.log"
        self.proc = None
        self.queue_url = None
        self.env = None

    # ------------------------------------------------------------------ the local AWS
    def start(self):
        log = open(self.log_path, "wb")
        cmd = [str(VENV_PY), str(LAUNCHER), "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                     start_new_session=True)
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2).read()
                break
            except Exception:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"local AWS did not start; see {self.log_path}")
                time.sleep(0.2)
        os.environ.update({
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        })
        cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3},
                     connect_timeout=10, read_timeout=60)
        self.s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", config=cfg)
        self.sqs = boto3.client("sqs", endpoint_url=self.endpoint, region_name="us-east-1", config=cfg)
        self.glue = boto3.client("glue", endpoint_url=self.endpoint, region_name="us-east-1", config=cfg)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def reset(self):
        """A fresh world for one example: moto's state wiped, then the buckets and the queue as
        deployed."""
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", data=b"", method="POST")
        urllib.request.urlopen(req, timeout=30).read()
        for bucket in (SRC, CLONES, BACKUP):
            self.s3.create_bucket(Bucket=bucket)
            self.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        self.s3.put_bucket_encryption(Bucket=BACKUP, ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
        # LocalAws::notify_to_queue
        self.queue_url = self.sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        arn = f"arn:aws:sqs:us-east-1:123456789012:{QUEUE}"
        self.s3.put_bucket_notification_configuration(Bucket=SRC, NotificationConfiguration={
            "QueueConfigurations": [{"Id": "lifeboat", "QueueArn": arn,
                                     "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]})
        self.take_all_messages()  # the s3:TestEvent
        self.glue.create_database(DatabaseInput={"Name": GLUE_DATABASE})
        self.env = dict(os.environ)
        self.env.update({
            "LIFEBOAT_BACKUP_BUCKET": BACKUP,
            "LIFEBOAT_SOURCE_BUCKETS": f"{SRC},{CLONES}",
            "LIFEBOAT_QUEUE_URL": self.queue_url,
            "LIFEBOAT_CONDITIONAL_COPY": "true",
            "LIFEBOAT_GRACE_SECONDS": "0",
            "LIFEBOAT_COPY_CONCURRENCY": "8",
            "LIFEBOAT_GLUE_DATABASES": GLUE_DATABASE,
            "RUST_BACKTRACE": "0",
            "NO_COLOR": "1",
        })
        self.env.pop("RUST_LOG", None)

    # ------------------------------------------------------------------ the queue
    def take_all_messages(self):
        """Receives every message in the queue and deletes it: the bodies, in arrival order."""
        bodies, empty = [], 0
        while empty < 2:
            out = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                           VisibilityTimeout=120, WaitTimeSeconds=0)
            messages = out.get("Messages", [])
            if not messages:
                empty += 1
                continue
            empty = 0
            for m in messages:
                bodies.append(m["Body"])
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
        return bodies

    def send(self, body: str):
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)

    # ------------------------------------------------------------------ the catalog
    def catalog_entry(self, name: str) -> dict | None:
        """Glue GetTable of GLUE_DATABASE.name: the table, or None when there is no entry."""
        try:
            return self.glue.get_table(DatabaseName=GLUE_DATABASE, Name=name)["Table"]
        except self.glue.exceptions.EntityNotFoundException:
            return None

    def catalog_captures(self, name: str) -> list[str]:
        """The backup's records of GLUE_DATABASE.name's definitions (what verify captured)."""
        prefix = CATALOG_CAPTURES.format(database=GLUE_DATABASE, table=name)
        out = self.s3.list_objects_v2(Bucket=BACKUP, Prefix=prefix)
        return [o["Key"] for o in out.get("Contents", [])]

    def conflicts_of(self, key: str) -> set[str]:
        """The contents kept aside for the source key `key` (each a rewrite with other bytes)."""
        out = set()
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BACKUP, Prefix=f"{CONFLICTS}{SRC}/{key}."):
            out |= {o["Key"] for o in page.get("Contents", [])}
        return out

    # ------------------------------------------------------------------ the CLI
    def cli(self, *args, timeout=CLI_TIMEOUT) -> Run:
        args = [str(a) for a in args]
        start = time.time()
        try:
            p = subprocess.run([str(LIFEBOAT), *args], env=self.env, capture_output=True, text=True,
                               timeout=timeout, cwd=REPO)
        except subprocess.TimeoutExpired as e:
            raise Violation(f"invariant 5 (no hung process): lifeboat {' '.join(args)} still running after "
                            f"{timeout}s; stderr: {(e.stderr or b'')[-2000:]!r}")
        run = Run(args, p.returncode, p.stdout, p.stderr, time.time() - start)
        check_no_panic(run)
        return run

    def cli_killed(self, args, delay: float) -> Run | None:
        """Starts the CLI, SIGKILLs it after `delay` seconds (unless it finished first). Returns
        the run when it finished before the kill, else None."""
        args = [str(a) for a in args]
        start = time.time()
        p = subprocess.Popen([str(LIFEBOAT), *args], env=self.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=REPO)
        try:
            out, err = p.communicate(timeout=delay)
            run = Run(args, p.returncode, out, err, time.time() - start)
            check_no_panic(run)
            return run
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate(timeout=30)
            return None

    def replicate(self) -> Run:
        run = self.cli("replicate", "--queue", self.queue_url, "--until-empty", "--wait", "0", "--json")
        if run.code not in (0, 1):
            raise Violation(f"replicate failed unexpectedly: {run.describe()}")
        return run

    def verify(self, tables) -> tuple[Run, dict]:
        args = ["verify", "--json"]
        for t in tables:
            args += ["--table", t]
        run = self.cli(*args)
        if run.code not in (0, 3):
            raise Violation(f"verify failed (exit {run.code}): {run.describe()}")
        try:
            return run, run.json()
        except json.JSONDecodeError:
            raise Violation(f"verify --json printed no JSON: {run.describe()}")


def log(msg: str):
    if os.environ.get("CHAOS_VERBOSE"):
        print(msg, file=sys.stderr, flush=True)
