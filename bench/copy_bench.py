"""Benchmark of Lifeboat's copy engine against s5cmd and rclone, on the same local S3 server.

For the same object sets, on one `rclone serve s3` over a temporary directory (the server, the
counting proxy and the table generator come from verify_bench.py):

1. replicate: SMALL objects of 10 KB and LARGE objects of 64 MB copied server-side into the
   backup by `lifeboat backfill` (the replicator's copy engine; with and without
   LIFEBOAT_CONDITIONAL_COPY), by `s5cmd cp` and by `rclone copy` (same remote: server-side);
2. S3 requests per replicated object, counted by the proxy in front of the server;
3. restore: `lifeboat restore --mode clone` of a 10,000-file table against `s5cmd cp` of exactly
   the files the clone wrote;
4. verify: the figures of verify_bench.py (run as a subprocess, folded into the table).

Each case runs RUNS times, directly against the server (0 ms) and through the proxy with a fixed
delay per request (--latency-ms, 20 by default, since S3's real latency is what makes
concurrency matter). The table holds medians. Request counts come from the proxied runs.

Usage: python bench/copy_bench.py [--runs N] [--small N] [--large N] [--table-files N]
                                  [--latency-ms MS] [--profile release|dev] [--no-verify]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import verify_bench as vb  # noqa: E402  (the server, the proxy, the table generator)

SOURCE = vb.SOURCE
BACKUP = vb.BACKUP
SMALL_SIZE = 10 * 1024
LARGE_SIZE = 64 * 1024 * 1024
# S3 list prices (us-east-1, Standard), dollars per 1,000 requests.
PRICE = {"PUT": 0.005, "GET": 0.0004}


class Proxy(vb.Counting):
    """verify_bench's counting proxy, with S3 operation names, status codes and a fixed delay
    per request (what a client sees from S3 in the same region is ~10-30 ms per request)."""

    delay = 0.0
    ops = Counter()

    def forward(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        copy = "x-amz-copy-source" in {k.lower() for k in self.headers.keys()}
        if self.command == "PUT" and copy:
            op = "UploadPartCopy" if "partNumber" in query else "CopyObject"
        elif self.command == "PUT":
            op = "UploadPart" if "partNumber" in query else "PutObject"
        elif self.command == "POST":
            op = "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
        elif self.command == "GET" and "list-type" in query or (
                self.command == "GET" and len([p for p in url.path.split("/") if p]) <= 1):
            op = "LIST"
        else:
            op = {"GET": "GetObject", "HEAD": "HeadObject"}.get(self.command, self.command)
        self.op = op
        if self.delay:
            time.sleep(self.delay)
        super().forward()

    def send_response_only(self, code, message=None):
        with self.lock:
            self.ops[self.op] += 1
            if code >= 300:
                self.ops[f"{self.op} {code}"] += 1
        super().send_response_only(code, message)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = forward


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # s5cmd opens hundreds of connections at once


def write_objects(folder, count, size, tag):
    folder.mkdir(parents=True)
    block = os.urandom(size)
    for i in range(count):
        # Distinct contents (distinct ETags) without generating count x size random bytes.
        body = f"{tag}-{i:06d}-".encode() + block[: size - 16]
        (folder / f"obj-{i:06d}.bin").write_bytes(body[:size])


def clean_env(port):
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith(("LIFEBOAT_", "AWS_", "RCLONE_")))}
    env.update({
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
        "LIFEBOAT_BACKUP_BUCKET": BACKUP, "LIFEBOAT_SOURCE_BUCKETS": SOURCE,
        # rclone's side: one S3 remote named `bench` on the same server.
        "RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
        "RCLONE_CONFIG_BENCH_ENDPOINT": f"http://127.0.0.1:{port}",
        "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": "bench",
        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": "bench",
        "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
        "RCLONE_CONFIG_BENCH_NO_CHECK_BUCKET": "true",
    })
    return env


def timed(cmd, env):
    """Runs cmd under /usr/bin/time -v; returns (seconds, peak RSS in MiB, stdout)."""
    started = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-v"] + cmd, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n"
                 f"{proc.stderr[-3000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return elapsed, int(m.group(1)) / 1024 if m else None, proc.stdout


class Bench:
    def __init__(self, args, binary, root, server_port, proxy_port):
        self.args = args
        self.binary = binary
        self.root = root
        self.ports = {0: server_port, args.latency_ms: proxy_port}
        self.results = {}  # (case, tool, latency) -> list of (seconds, rss, ops Counter)
        self.serial = 0

    def tag(self):
        self.serial += 1
        return f"run{self.serial:03d}"

    def record(self, case, tool, latency, seconds, rss, ops):
        self.results.setdefault((case, tool, latency), []).append((seconds, rss, ops))

    def run(self, case, tool, latency, cmd, env, dest_dirs, expect=None):
        Proxy.delay = latency / 1000
        with Proxy.lock:
            Proxy.ops = Counter()
        seconds, rss, out = timed(cmd, env)
        ops = Counter(Proxy.ops) if latency else None
        self.record(case, tool, latency, seconds, rss, ops)
        if expect:
            folder, count = expect
            found = sum(1 for p in folder.rglob("*") if p.is_file())
            if found != count:
                sys.exit(f"{tool} copied {found} objects of {count} into {folder}")
        for d in dest_dirs:  # keep the disk small; the keys are never read again
            shutil.rmtree(d, ignore_errors=True)
        return out

    def replicate(self, case, prefix, count):
        for latency in self.ports:
            port = self.ports[latency]
            for _ in range(self.args.runs):
                for tool in ("lifeboat", "lifeboat conditional", "s5cmd", "rclone"):
                    tag = self.tag()
                    env = clean_env(port)
                    dest = f"{tag}/{SOURCE}/{prefix}/"
                    if tool.startswith("lifeboat"):
                        env["LIFEBOAT_BACKUP_PREFIX"] = f"{tag}/{{bucket}}/"
                        env["LIFEBOAT_CONDITIONAL_COPY"] = str(tool.endswith("conditional")).lower()
                        cmd = [self.binary, "backfill", f"s3://{SOURCE}/{prefix}/", "--json"]
                    elif tool == "s5cmd":
                        cmd = [str(vb.VENV_BIN / "s5cmd"), "--endpoint-url",
                               env["AWS_ENDPOINT_URL"], "cp", f"s3://{SOURCE}/{prefix}/*",
                               f"s3://{BACKUP}/{dest}"]
                    else:
                        cmd = [str(vb.VENV_BIN / "rclone"), "copy", f"bench:{SOURCE}/{prefix}",
                               f"bench:{BACKUP}/{dest}", "--transfers", "64", "--checkers", "64"]
                    self.run(case, tool, latency, cmd, env, [self.root / BACKUP / tag],
                             expect=(self.root / BACKUP / dest, count))

    def restore(self, table_files):
        case = f"restore clone, {table_files} files"
        table = f"{SOURCE}/{vb.TABLE}"  # in the backup bucket, under the default prefix
        for latency in self.ports:
            port = self.ports[latency]
            for _ in range(self.args.runs):
                tag = self.tag()
                env = clean_env(port)
                target = f"clones/{tag}/table"
                cmd = [self.binary, "restore", f"s3://{SOURCE}/{vb.TABLE}", "--mode", "clone",
                       "--target", f"s3://{SOURCE}/{target}", "--execute", "--json"]
                Proxy.delay = latency / 1000
                with Proxy.lock:
                    Proxy.ops = Counter()
                seconds, rss, _ = timed(cmd, env)
                self.record(case, "lifeboat", latency, seconds, rss,
                            Counter(Proxy.ops) if latency else None)
                # s5cmd copies exactly the files the clone wrote.
                written = sorted(str(p.relative_to(self.root / SOURCE / target))
                                 for p in (self.root / SOURCE / target).rglob("*") if p.is_file())
                self.restored_files = len(written)
                commands = self.root.parent / f"{tag}.s5cmd"
                commands.write_text("".join(
                    f"cp s3://{BACKUP}/{table}/{k} s3://{SOURCE}/s5{target}/{k}\n"
                    for k in written))
                self.run(case, "s5cmd", latency,
                         [str(vb.VENV_BIN / "s5cmd"), "--endpoint-url", env["AWS_ENDPOINT_URL"],
                          "run", str(commands)],
                         env, [self.root / SOURCE / "clones" / tag, self.root / SOURCE / "s5clones"],
                         expect=(self.root / SOURCE / "s5clones" / tag / "table", len(written)))


def run_verify(args):
    """verify_bench.py, unchanged, as a subprocess; its figures for the table."""
    cmd = [sys.executable, str(Path(__file__).resolve().parent / "verify_bench.py"),
           "--profile", args.profile]
    if args.binary:
        cmd += ["--binary", args.binary]
    print("== verify (bench/verify_bench.py) ==", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    print(proc.stdout, proc.stderr[-3000:] if proc.returncode else "", flush=True)
    if proc.returncode != 0:
        return None
    out = proc.stdout
    obs = re.search(r"= (\d+); observed (\d+) \(([\d.]+) x floor\)", out)
    wall = re.search(r"wall time: ([\d.]+) s", out)
    mem = re.search(r"peak memory: (\d+) MiB", out)
    return {"floor": int(obs.group(1)), "observed": int(obs.group(2)),
            "ratio": float(obs.group(3)), "wall": float(wall.group(1)),
            "rss": int(mem.group(1)) if mem else None}


def requests_per_object(ops, objects):
    total = sum(n for op, n in ops.items() if " " not in op)
    lists = ops.get("LIST", 0)
    return total / objects, (total - lists) / objects, lists


def dollars_per_million(ops, objects):
    cost = 0.0
    for op, n in ops.items():
        if " " in op:
            continue
        cost += n * (PRICE["GET"] if op in ("HeadObject", "GetObject") else PRICE["PUT"]) / 1000
    return cost * 1_000_000 / objects


def report(bench, counts, verify, args):
    med = statistics.median
    print()
    print(f"Lifeboat copy benchmark: medians of {args.runs} runs; profile {args.profile}; "
          f"latency = fixed delay per request added by the proxy")
    head = (f"{'case':<30} {'tool':<21} {'lat':>5} {'wall s':>8} {'obj/s':>8} {'vs s5cmd':>8} "
            f"{'req/obj':>8} {'excl LIST':>9} {'LIST':>5} {'$/M obj':>8} {'RSS MiB':>8}")
    print(head)
    print("-" * len(head))
    for (case, tool, latency), runs in bench.results.items():
        objects = counts[case]
        wall = med(r[0] for r in runs)
        rss = max((r[1] or 0) for r in runs)
        s5 = bench.results.get((case, "s5cmd", latency))
        ratio = med(r[0] for r in s5) / wall if s5 else float("nan")
        ops = runs[-1][2]
        if ops:
            per, per_excl, lists = requests_per_object(ops, objects)
            cols = f"{per:>8.3f} {per_excl:>9.3f} {lists:>5} {dollars_per_million(ops, objects):>8.2f}"
        else:
            cols = f"{'':>8} {'':>9} {'':>5} {'':>8}"
        print(f"{case:<30} {tool:<21} {str(latency) + 'ms':>5} {wall:>8.2f} {objects / wall:>8.0f} "
              f"{ratio:>7.2f}x {cols} {rss:>8.0f}")
    if verify:
        print(f"{'verify 100k files/10k vers':<30} {'lifeboat':<21} {'0ms':>5} {verify['wall']:>8.1f} "
              f"{'':>8} {'':>8} requests {verify['observed']} = {verify['ratio']:.3f} x floor "
              f"{verify['floor']}; peak RSS {verify['rss']} MiB")
    print()
    print("vs s5cmd: s5cmd's median wall time / this tool's (> 1 is faster than s5cmd).")
    print("req/obj: every request the server saw / objects copied (the floor is 1 CopyObject); "
          "excl LIST: without the listing requests; $/M obj: S3 list prices for those requests.")
    print("Request breakdown of the last proxied run of each case:")
    for (case, tool, latency), runs in bench.results.items():
        if runs[-1][2]:
            print(f"  {case:<30} {tool:<21} " + ", ".join(
                f"{op} {n}" for op, n in sorted(runs[-1][2].items())))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small", type=int, default=2000, help="objects of 10 KB")
    parser.add_argument("--large", type=int, default=50, help="objects of 64 MB")
    parser.add_argument("--table-files", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--profile", choices=["release", "dev"],
                        default=os.environ.get("BENCH_PROFILE", "release"))
    parser.add_argument("--binary", help="a lifeboat binary to use instead of building one")
    parser.add_argument("--no-verify", action="store_true", help="skip verify_bench.py")
    parser.add_argument("--only", choices=["small", "large", "restore"], action="append")
    args = parser.parse_args()
    only = set(args.only or ["small", "large", "restore"])

    if args.binary:
        binary = args.binary
    else:
        print(f"building lifeboat ({args.profile}) ...", flush=True)
        binary = vb.build(args.profile)
    work = Path(tempfile.mkdtemp(prefix="lifeboat-copy-bench-"))
    root = work / "s3"
    rclone = server = None
    counts = {}
    try:
        (root / BACKUP).mkdir(parents=True)
        # The source bucket exists whichever cases run: the restore clones into it.
        (root / SOURCE).mkdir(parents=True)
        small_case = f"replicate {args.small} x 10 KB"
        large_case = f"replicate {args.large} x 64 MB"
        if "small" in only:
            write_objects(root / SOURCE / "small", args.small, SMALL_SIZE, "s")
            counts[small_case] = args.small
        if "large" in only:
            write_objects(root / SOURCE / "large", args.large, LARGE_SIZE, "l")
            counts[large_case] = args.large
        if "restore" in only:
            t = time.monotonic()
            vb.generate(root, max(1, args.table_files // 100), args.table_files,
                        max(1, args.table_files // 200))
            print(f"generated a {args.table_files}-file table in {time.monotonic() - t:.0f} s",
                  flush=True)
        rclone, server_port = vb.start_rclone(root)
        proxy_port = vb.free_port()
        Proxy.upstream = ("127.0.0.1", server_port)
        server = ProxyServer(("127.0.0.1", proxy_port), Proxy)
        threading.Thread(target=server.serve_forever, daemon=True).start()

        bench = Bench(args, binary, root, server_port, proxy_port)
        if "small" in only:
            print(f"== {small_case} ==", flush=True)
            bench.replicate(small_case, "small", args.small)
            report(bench, counts, None, args)  # the figures so far, should a later case fail
        if "large" in only:
            print(f"== {large_case} ==", flush=True)
            bench.replicate(large_case, "large", args.large)
            report(bench, counts, None, args)
        if "restore" in only:
            case = f"restore clone, {args.table_files} files"
            print(f"== {case} ==", flush=True)
            bench.restore(args.table_files)
            counts[case] = bench.restored_files
    finally:
        if server:
            server.shutdown()
        if rclone:
            vb.stop_rclone(rclone)
        shutil.rmtree(work, ignore_errors=True)
    verify = None if args.no_verify else run_verify(args)
    report(bench, counts, verify, args)


if __name__ == "__main__":
    main()
