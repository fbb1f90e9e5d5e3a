"""Benchmark of `lifeboat verify` on a large table: request count against the floor, wall time
and peak memory.

It generates a Delta table of FILES data files over VERSIONS commits, with a checkpoint every
CHECKPOINT_EVERY versions, as files in a temporary directory laid out as two buckets (the
backup, and the source as hard links to the same files), serves the directory with
`rclone serve s3` (moto serves ~125 requests/s: too slow for this), and runs
`lifeboat verify --json` twice:

1. through a small counting proxy, to count the S3 requests at the server side of the client;
2. straight against rclone under `/usr/bin/time -v`, for wall time and peak memory.

The floor is what any verifier of this table must do: list both copies of the table (one LIST
per 1,000 keys each) and read every commit once.

Usage: python bench/verify_bench.py [--versions N] [--files N] [--checkpoint-every N]
                                    [--profile release|dev] [--binary PATH] [--keep]
                                    [--work DIR] [--timed-only]

With --work DIR the table is generated in DIR and kept; a later run with the same DIR and the
same sizes reuses it (generating the 1M-file table takes several minutes). With --timed-only
it makes the timed run alone: no warm-up, no counted run (for the 1M-file case, where every run
lists 2.2M objects).
"""

import argparse
import http.client
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
BACKUP = "backup-bucket"
SOURCE = "source-bucket"
TABLE = "bench/table"
PARTITIONS = 100


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def generate(root, versions, files, checkpoint_every, partitions=PARTITIONS):
    """Writes the backup copy of the table, its files spread over `partitions` partition
    directories; returns its directory and the number of objects."""
    from deltalake import DeltaTable

    table = root / BACKUP / SOURCE / TABLE
    log = table / "_delta_log"
    log.mkdir(parents=True)
    width = max(3, len(str(partitions - 1)))
    for p in range(partitions):
        (table / f"part={p:0{width}d}").mkdir()
    per_version = files // versions
    extra = files - per_version * versions
    schema = {
        "type": "struct",
        "fields": [
            {"name": "id", "type": "long", "nullable": True, "metadata": {}},
            {"name": "part", "type": "string", "nullable": True, "metadata": {}},
        ],
    }
    # Commits one second apart, ending now: the RPO stays sane.
    start_ms = int(time.time() * 1000) - versions * 1000
    n = 0
    for v in range(versions):
        ts = start_ms + v * 1000
        actions = [{"commitInfo": {"timestamp": ts, "operation": "WRITE",
                                   "operationParameters": {"mode": "Append"}}}]
        if v == 0:
            actions.append({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}})
            actions.append({"metaData": {
                "id": str(uuid.uuid4()), "format": {"provider": "parquet", "options": {}},
                "schemaString": json.dumps(schema), "partitionColumns": ["part"],
                "configuration": {}, "createdTime": ts}})
        for _ in range(per_version + (1 if v < extra else 0)):
            part = f"{n % partitions:0{width}d}"
            path = f"part={part}/part-{n:07d}.parquet"
            body = f"lifeboat bench file {n}\n".encode()
            (table / path).write_bytes(body)
            actions.append({"add": {"path": path, "partitionValues": {"part": part},
                                    "size": len(body), "modificationTime": ts,
                                    "dataChange": True}})
            n += 1
        with open(log / f"{v:020d}.json", "w") as f:
            f.write("\n".join(json.dumps(a) for a in actions) + "\n")
    for v in range(checkpoint_every - 1, versions, checkpoint_every):
        DeltaTable(str(table), version=v).create_checkpoint()
    objects = sum(len(fs) for _, _, fs in os.walk(table))
    return table, objects


def append_versions(root, first, count, checkpoint_every):
    """Commits first..first+count-1 (one new file each) into the backup copy, hard-linked into
    the source: what the incremental verify then reads."""
    table = root / BACKUP / SOURCE / TABLE
    source = root / SOURCE / TABLE
    start_ms = int(time.time() * 1000) - count * 1000
    for i, v in enumerate(range(first, first + count)):
        ts = start_ms + i * 1000
        part = f"{v % PARTITIONS:03d}"
        path = f"part={part}/part-new-{v:07d}.parquet"
        body = f"lifeboat bench new file {v}\n".encode()
        (table / path).write_bytes(body)
        actions = [{"commitInfo": {"timestamp": ts, "operation": "WRITE",
                                   "operationParameters": {"mode": "Append"}}},
                   {"add": {"path": path, "partitionValues": {"part": part}, "size": len(body),
                            "modificationTime": ts, "dataChange": True}}]
        log = table / "_delta_log" / f"{v:020d}.json"
        log.write_text("\n".join(json.dumps(a) for a in actions) + "\n")
        for f in (path, f"_delta_log/{v:020d}.json"):
            os.link(table / f, source / f)


def link_tree(source, target):
    """The source bucket: the same files, hard-linked (no copy)."""
    for folder, _, names in os.walk(source):
        dest = target / Path(folder).relative_to(source)
        dest.mkdir(parents=True, exist_ok=True)
        for name in names:
            os.link(Path(folder) / name, dest / name)


class Counting(BaseHTTPRequestHandler):
    """Forwards every request to the S3 server and counts it by operation."""

    protocol_version = "HTTP/1.1"
    upstream = None
    counts = Counter()
    seconds = Counter()
    lock = threading.Lock()
    local = threading.local()

    def log_message(self, *args):
        pass

    def forward(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        parts = [p for p in url.path.split("/") if p]
        if self.command == "GET" and "list-type" in query:
            op = "LIST (delimiter)" if "delimiter" in query else "LIST"
        elif self.command == "GET" and len(parts) <= 1:
            op = "GET bucket"
        elif self.command == "GET":
            op = "GET log file" if "/_delta_log/" in url.path else "GET object"
        else:
            op = self.command
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                chunk = self.rfile.read(size)
                self.rfile.readline()
                if size == 0:
                    break
                body += chunk
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("transfer-encoding", "connection")}
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        conn = getattr(self.local, "conn", None)
        started = time.monotonic()
        for attempt in range(2):
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(*self.upstream, timeout=300)
                    self.local.conn = conn
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, ConnectionError):
                conn = self.local.conn = None
                if attempt:
                    raise
        with self.lock:
            self.counts[op] += 1
            self.seconds[op] += time.monotonic() - started
        self.send_response_only(response.status, response.reason)
        for k, v in response.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", response.getheader("Content-Length", "0"))
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = forward


def start_rclone(root):
    port = free_port()
    log = open(root.parent / "rclone.log", "w")
    proc = subprocess.Popen(
        [str(VENV_BIN / "rclone"), "serve", "s3", str(root), "--addr", f"127.0.0.1:{port}",
         "--vfs-cache-mode", "off", "--dir-cache-time", "1h", "--log-level", "ERROR"],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"rclone serve s3 exited early; see {log.name}")
            time.sleep(0.2)
    proc.terminate()
    sys.exit("rclone serve s3 did not start within 60 s")


def stop_rclone(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def build(profile):
    args = ["cargo", "build", "-p", "lifeboat-cli", "--bin", "lifeboat", "--message-format=json"]
    args += ["--release"] if profile == "release" else []
    out = subprocess.run(args, cwd=REPO, stdout=subprocess.PIPE, check=True, text=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("target", {}).get("name") == "lifeboat" and msg.get("executable"):
            return msg["executable"]
    sys.exit("cargo did not name the lifeboat executable")


def run_verify(binary, port, timed, incremental=False):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("LIFEBOAT_") or k.startswith("AWS_"):
            del env[k]
    env.update({
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
        "LIFEBOAT_BACKUP_BUCKET": BACKUP, "LIFEBOAT_SOURCE_BUCKETS": SOURCE,
    })
    cmd = [binary, "verify", "--json"] + (["--incremental"] if incremental else [])
    if timed:
        cmd = ["/usr/bin/time", "-v"] + cmd
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"lifeboat verify exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout)
    usage = {}
    if timed:
        for name, pattern in [("peak_kib", r"Maximum resident set size \(kbytes\): (\d+)"),
                              ("user_s", r"User time \(seconds\): ([\d.]+)"),
                              ("system_s", r"System time \(seconds\): ([\d.]+)")]:
            m = re.search(pattern, proc.stderr)
            usage[name] = float(m.group(1)) if m else None
    return report, elapsed, usage


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--checkpoint-every", type=int, default=1_000)
    parser.add_argument("--profile", choices=["release", "dev"],
                        default=os.environ.get("BENCH_PROFILE", "release"))
    parser.add_argument("--binary", help="a lifeboat executable to use instead of building one")
    parser.add_argument("--keep", action="store_true", help="keep the generated directory")
    parser.add_argument("--work", type=Path,
                        help="generate into (or reuse) this directory, and keep it")
    parser.add_argument("--timed-only", action="store_true",
                        help="only the timed run (wall time, peak memory): no request count")
    parser.add_argument("--new-commits", type=int, default=0,
                        help="then measure incremental verification: a full proof that keeps "
                             "each table's state, N new commits, and an incremental run, both "
                             "counted (the generated table is changed: not reused after)")
    args = parser.parse_args()

    if args.binary:
        binary = args.binary
    else:
        print(f"building lifeboat ({args.profile}) ...", flush=True)
        binary = build(args.profile)
    keep = args.keep or args.work is not None
    work = args.work or Path(tempfile.mkdtemp(prefix="lifeboat-verify-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    root = work / "s3"
    shape = {"files": args.files, "versions": args.versions,
             "checkpoint_every": args.checkpoint_every}
    marker = work / "generated.json"
    rclone = None
    server = None
    try:
        if marker.exists() and json.loads(marker.read_text()).get("shape") == shape:
            objects = json.loads(marker.read_text())["objects"]
            print(f"reusing the table generated in {work} ({objects} objects per copy)",
                  flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)
            t = time.monotonic()
            table, objects = generate(root, args.versions, args.files, args.checkpoint_every)
            link_tree(table, root / SOURCE / TABLE)
            marker.write_text(json.dumps({"shape": shape, "objects": objects}))
            print(f"generated {args.files} data files over {args.versions} versions "
                  f"({objects} objects per copy) in {time.monotonic() - t:.0f} s", flush=True)

        rclone, rclone_port = start_rclone(root)
        Counting.upstream = ("127.0.0.1", rclone_port)
        proxy_port = free_port()
        server = ThreadingHTTPServer(("127.0.0.1", proxy_port), Counting)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()

        if args.timed_only:
            report, wall_s, usage = run_verify(binary, rclone_port, timed=True)
            counted_s = None
        else:
            # Warm rclone's directory cache once, so both runs see the same server.
            run_verify(binary, rclone_port, timed=False)
            report, counted_s, _ = run_verify(binary, proxy_port, timed=False)
            _, wall_s, usage = run_verify(binary, rclone_port, timed=True)

        tables = report["tables"]
        assert len(tables) == 1, tables
        t0 = tables[0]
        assert t0["newest_restorable_version"] == args.versions - 1, t0
        assert t0["oldest_restorable_version"] == 0, t0
        assert not t0["unrestorable_versions"], t0
        problems = [f for f in t0["findings"] if f["severity"] != "info"]
        assert not problems, problems
        incremental = None
        if args.new_commits:
            full_counts = Counter(Counting.counts)
            # The full proof that keeps the state, counted.
            Counting.counts.clear()
            run_verify(binary, proxy_port, timed=False, incremental=True)
            seeded = sum(Counting.counts.values())
            append_versions(root, args.versions, args.new_commits, args.checkpoint_every)
            marker.unlink(missing_ok=True)
            # rclone caches directory listings: a fresh server sees the new commits.
            stop_rclone(rclone)
            rclone, rclone_port = start_rclone(root)
            Counting.upstream = ("127.0.0.1", rclone_port)
            Counting.counts.clear()
            started = time.monotonic()
            inc_report, _, _ = run_verify(binary, proxy_port, timed=False, incremental=True)
            inc_s = time.monotonic() - started
            newest = inc_report["tables"][0]["newest_restorable_version"]
            assert newest == args.versions + args.new_commits - 1, inc_report
            incremental = (seeded, dict(Counting.counts), inc_s)
            Counting.counts.clear()
            Counting.counts.update(full_counts)

        counts = Counting.counts
        total = sum(counts.values())
        list_pages = 2 * math.ceil(objects / 1000)
        floor = list_pages + args.versions
        print()
        print(f"table: {t0['table']}  versions 0..{args.versions - 1} restorable, "
              f"rpo {t0['rpo_seconds']} s, lag {t0['lag_versions']}")
        if counted_s is None:
            print(f"requests not counted (--timed-only); the floor is {list_pages} LIST pages "
                  f"(backup + source, {objects} keys each) + {args.versions} log files read "
                  f"= {floor}")
            print(f"wall time: {wall_s:.1f} s (direct to rclone)")
        else:
            print("S3 requests (counted by a proxy in front of the server):")
            for op, n in sorted(counts.items()):
                print(f"  {op:<18} {n:>8}   {Counting.seconds[op]:7.1f} s summed server time")
            print(f"  {'total':<18} {total:>8}")
            print(f"floor: {list_pages} LIST pages (backup + source, {objects} keys each) "
                  f"+ {args.versions} log files read = {floor}; "
                  f"observed {total} ({total / floor:.3f} x floor)")
            print(f"wall time: {wall_s:.1f} s (direct to rclone; {counted_s:.1f} s through "
                  f"the proxy)")
        if incremental:
            seeded, counts, inc_s = incremental
            total_inc = sum(counts.values())
            print(f"incremental verify after {args.new_commits} new commits: {total_inc} requests "
                  f"({', '.join(f'{op} {n}' for op, n in sorted(counts.items()))}) in {inc_s:.1f} s; "
                  f"the full proof that kept the state: {seeded} requests; "
                  f"incremental / full = {100 * total_inc / seeded:.2f} %")
        if usage.get("peak_kib"):
            print(f"peak memory: {usage['peak_kib'] / 1024:.0f} MiB (max RSS, /usr/bin/time -v); "
                  f"client CPU {usage['user_s']:.1f} s user + {usage['system_s']:.1f} s system")
    finally:
        if server:
            server.shutdown()
        if rclone:
            stop_rclone(rclone)
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
