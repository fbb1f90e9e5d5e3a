"""Sharded restore throughput: `lifeboat restore --mode clone --execute --workers N` of a large
table, for N = 1, 4 and 16 workers, on one `rclone serve s3` behind a proxy with a fixed delay
per request (--latency-ms, 20 by default).

Each worker copies one shard at a time with --concurrency copies in flight
(LIFEBOAT_COPY_CONCURRENCY, 64 as in the function), as one invocation of the restore function
consumes one shard
message; the shards go through an in-process work queue instead of SQS (the local server has
none), so the figure is the copy path's scaling, not SQS's. The log is written after the last
shard, as in production, and is part of the time.

Target: objects/s with N workers >= 0.8 x N x objects/s with 1 worker, up to the server's limit:
the rate the same server and proxy reach with everything in flight at once (one worker with
--limit-concurrency copies at a time), measured as its own case and reported.

The proxy is bench/fast_proxy.py (asyncio; it answers listings without a delimiter from a
snapshot of the served directory, since rclone's own pages cost O(objects) each). The table is
generated straight into the directory rclone serves, as the backup copy of the table (what a
clone reads). With --work DIR it is generated once and reused (1M objects: about 2.5 min).

For each case it prints the end-to-end figure (the whole command: plan, shard records, copies,
log) and the copy phase alone (from the first shard's start to the last shard's end, read from
the shards' `done` records), with the machine's load average and the CPU time the server, the
proxy and the client used during it.

Usage: python bench/restore_shards_bench.py [--table-files N] [--workers 1,4,16]
          [--concurrency C] [--limit-concurrency C] [--shard-objects N] [--latency-ms MS]
          [--runs N] [--cases limit,1,4,16] [--work DIR] [--binary PATH] [--results FILE]
    BENCH_RESTORE_OBJECTS=1000000 sets --table-files' default (make bench: 20,000).
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import copy_bench as cb  # noqa: E402  (the environment)
import verify_bench as vb  # noqa: E402  (the server, the table generator)
from fast_proxy import FastProxy  # noqa: E402

RESTORES = Path(vb.BACKUP) / "_lifeboat" / "state" / "restores"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU seconds of process pid so far (not its children's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:13]) / TICKS


def machine_busy():
    """(busy, total) jiffies of the whole machine."""
    cpu = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = cpu[3] + cpu[4]
    return sum(cpu) - idle, sum(cpu)


class Sampler(threading.Thread):
    """Samples the load average and counts finished shards while a case runs."""

    def __init__(self, root, before, every=15):
        super().__init__(daemon=True)
        self.root, self.before, self.every = root, before, every
        self.loads, self.stop = [], threading.Event()

    def run(self):
        while not self.stop.wait(self.every):
            self.loads.append(os.getloadavg()[0])
            new = [d for d in (self.root / RESTORES).glob("*") if d.name not in self.before]
            done = sum(len(list((d / "done").glob("*.json"))) for d in new)
            print(f"  {time.strftime('%H:%M:%S')} shards done {done}, load {self.loads[-1]:.1f}",
                  flush=True)


def copy_phase(restore_dir):
    """(objects, seconds) of the copy phase: first shard started to last shard done."""
    starts, ends, objects = [], [], 0
    for f in (restore_dir / "done").glob("*.json"):
        done = json.loads(f.read_text())
        end = datetime.fromisoformat(done["at"].replace("Z", "+00:00")).timestamp()
        starts.append(end - done["seconds"])
        ends.append(end)
        objects += done["copied"]
    return objects, max(ends) - min(starts)


def clone(binary, env, root, workers, concurrency, shard_objects, tag, proxy, rclone,
          window=None):
    """One clone, timed; with window (seconds), stopped that long after its shards were handed
    out, its rate then being the copy phase of the shards done by then (a steady-state
    figure, not a complete run)."""
    env = dict(env)
    env.update({
        "LIFEBOAT_RESTORE_SHARD_THRESHOLD": "1",
        "LIFEBOAT_RESTORE_SHARD_OBJECTS": str(shard_objects),
        "LIFEBOAT_COPY_CONCURRENCY": str(concurrency),
    })
    target = f"clones/{tag}/table"
    cmd = ["/usr/bin/time", "-v", binary, "restore", f"s3://{vb.SOURCE}/{vb.TABLE}",
           "--mode", "clone", "--target", f"s3://{vb.SOURCE}/{target}", "--execute", "--json",
           "--workers", str(workers)]
    before = {d.name for d in (root / RESTORES).glob("*")}
    sampler = Sampler(root, before)
    proxy.reset()
    cpu0 = (cpu_seconds(rclone.pid), cpu_seconds(os.getpid()), machine_busy())
    sampler.start()
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    stopped = False
    if window:
        while proc.poll() is None and not [
                d for d in (root / RESTORES).glob("*") if d.name not in before]:
            time.sleep(1)
        try:
            proc.wait(timeout=window)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            stopped = True
    stdout, stderr = proc.communicate()
    proc.stdout, proc.stderr = stdout, stderr
    seconds = time.monotonic() - started
    sampler.stop.set()
    if proc.returncode != 0 and not stopped:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n"
                 f"{proc.stderr[-3000:]}")
    busy = machine_busy()
    usage = {k: float(m.group(1)) if (m := re.search(rf"{k} time \(seconds\): ([\d.]+)",
                                                     proc.stderr)) else float("nan")
             for k in ("User", "System")}
    new = [d for d in (root / RESTORES).glob("*") if d.name not in before]
    assert len(new) == 1, new
    copied, copy_seconds = copy_phase(new[0])
    written = sum(len(fs) for _, _, fs in os.walk(root / vb.SOURCE / target))
    if stopped:  # the copy phase so far stands for the run
        written, seconds = copied, copy_seconds
    result = {
        "window": window if stopped else None,
        "objects": written, "seconds": seconds, "rate": written / seconds,
        "copy_objects": copied, "copy_seconds": copy_seconds, "copy_rate": copied / copy_seconds,
        "load_mean": statistics.mean(sampler.loads) if sampler.loads else os.getloadavg()[0],
        "load_max": max(sampler.loads, default=os.getloadavg()[0]),
        "cpu_server": cpu_seconds(rclone.pid) - cpu0[0],
        "cpu_proxy": cpu_seconds(os.getpid()) - cpu0[1],
        "cpu_client": usage["User"] + usage["System"],
        "machine_busy": (busy[0] - cpu0[2][0]) / max(1, busy[1] - cpu0[2][1]),
        "requests": dict(proxy.ops),
        "restore_id": new[0].name,
        # Shard runs that failed and were run again (`--workers` prints each on stderr).
        "shard_failures": proc.stderr.count(" failed (receive "),
    }
    shutil.rmtree(root / vb.SOURCE / "clones" / tag, ignore_errors=True)
    proxy.listings.forget(root / vb.SOURCE / "clones" / tag)
    return result


def generate(work, files, versions, checkpoint_every, partitions):
    """The table, in work/s3 (reused when work holds one of this shape)."""
    root = work / "s3"
    shape = {"files": files, "versions": versions, "checkpoint_every": checkpoint_every,
             "partitions": partitions}
    marker = work / "generated.json"
    if marker.exists() and json.loads(marker.read_text()).get("shape") == shape:
        print(f"reusing the table generated in {work} "
              f"({json.loads(marker.read_text())['objects']} objects)", flush=True)
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / vb.BACKUP).mkdir(parents=True)
    (root / vb.SOURCE).mkdir(parents=True)
    t = time.monotonic()
    _, objects = vb.generate(root, versions, files, checkpoint_every, partitions)
    marker.write_text(json.dumps({"shape": shape, "objects": objects}))
    print(f"generated a {files}-file table ({objects} objects, {versions} versions) in "
          f"{time.monotonic() - t:.0f} s", flush=True)
    return root


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table-files", type=int,
                        default=int(os.environ.get("BENCH_RESTORE_OBJECTS", "20000")))
    parser.add_argument("--versions", type=int,
                        help="commits (default: one per 1,000 files); a checkpoint every tenth")
    parser.add_argument("--partitions", type=int, default=1000,
                        help="partition directories (rclone's copy into a directory slows "
                             "with the files already in it: keep them about 1,000 each)")
    parser.add_argument("--workers", default="1,4,16")
    parser.add_argument("--cases", help="which cases in which order, e.g. 1,16,4,limit "
                        "(default: limit, then --workers)")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="copies in flight per worker (LIFEBOAT_COPY_CONCURRENCY's default)")
    parser.add_argument("--limit-concurrency", type=int, default=256,
                        help="copies in flight for the server-limit case")
    parser.add_argument("--shard-objects", type=int,
                        help="objects per shard (default: LIFEBOAT_RESTORE_SHARD_OBJECTS' 2,000, "
                             "smaller for a table under 128,000 files, so 16 workers have 4 "
                             "shards each)")
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--window", type=float,
                        help="stop each run this many seconds after its shards are handed out and "
                             "report the copy phase of the shards done by then (not a complete run)")
    parser.add_argument("--work", type=Path, help="generate into (or reuse) this directory")
    parser.add_argument("--results", type=Path, help="append each case's figures (JSON lines)")
    parser.add_argument("--profile", choices=["release", "dev"],
                        default=os.environ.get("BENCH_PROFILE", "release"))
    parser.add_argument("--binary", help="a lifeboat binary to use instead of building one")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    versions = args.versions or max(1, args.table_files // 1000)
    args.shard_objects = args.shard_objects or min(2000, max(100, args.table_files // 64))
    checkpoint_every = max(1, versions // 10)

    binary = args.binary or vb.build(args.profile)
    work = args.work or Path(tempfile.mkdtemp(prefix="lifeboat-shards-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rclone = proxy = None
    rows = []
    try:
        root = generate(work, args.table_files, versions, checkpoint_every, args.partitions)
        (root / RESTORES).mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root / vb.SOURCE / "clones", ignore_errors=True)
        rclone, server_port = vb.start_rclone(root)
        proxy = FastProxy(("127.0.0.1", server_port), args.latency_ms / 1000, root=root)
        env = cb.clean_env(proxy.start())
        # rclone hashes what it lists once and keeps it; the proxy does the same, before timing.
        t = time.monotonic()
        proxy.listings.snapshot(vb.BACKUP, f"{vb.SOURCE}/{vb.TABLE}/")
        print(f"hashed the backup table for the proxy's listings in "
              f"{time.monotonic() - t:.0f} s", flush=True)

        cases = [("server limit", 1, args.limit_concurrency)] + [
            (f"{n} worker(s)", n, args.concurrency) for n in workers]
        if args.cases:  # in the order given
            named = {("limit" if c[0] == "server limit" else str(c[1])): c for c in cases}
            cases = [named[w] for w in args.cases.split(",")]
        for name, n, concurrency in cases:
            results = []
            for run in range(args.runs):
                tag = f"run{time.strftime('%H%M%S')}-{n}x{concurrency}"
                print(f"{name}, {concurrency} in flight each: run {run + 1} "
                      f"({time.strftime('%H:%M:%S')})", flush=True)
                r = clone(binary, env, root, n, concurrency, args.shard_objects, tag, proxy,
                          rclone, args.window)
                r.update({"case": name, "workers": n, "concurrency": concurrency,
                          "table_files": args.table_files, "latency_ms": args.latency_ms,
                          "shard_objects": args.shard_objects, "binary": binary,
                          "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
                if r["window"]:
                    print(f"  stopped after a {args.window:.0f} s window: the figures are the "
                          "shards done by then", flush=True)
                print(f"  {r['objects']} objects in {r['seconds']:.1f} s = {r['rate']:.0f}/s; "
                      f"copy phase {r['copy_objects']} in {r['copy_seconds']:.1f} s = "
                      f"{r['copy_rate']:.0f}/s; load {r['load_mean']:.1f} (max "
                      f"{r['load_max']:.1f}); CPU s: server {r['cpu_server']:.0f}, proxy "
                      f"{r['cpu_proxy']:.0f}, client {r['cpu_client']:.0f}; machine busy "
                      f"{100 * r['machine_busy']:.0f} %", flush=True)
                print(f"  requests: {r['requests']}; shard runs failed and run again: "
                      f"{r['shard_failures']}", flush=True)
                if args.results:
                    with open(args.results, "a") as f:
                        f.write(json.dumps(r) + "\n")
                results.append(r)
            best = sorted(results, key=lambda r: r["seconds"])[len(results) // 2]
            rows.append(best)
    finally:
        if proxy:
            proxy.stop()
        if rclone:
            vb.stop_rclone(rclone)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    report(rows, args)


def report(rows, args):
    limit = next((r for r in rows if r["case"] == "server limit"), None)
    one = next((r for r in rows if r["case"] == "1 worker(s)"), None)
    print()
    print(f"Sharded restore clone of a {args.table_files}-file table, {args.latency_ms} ms per "
          f"request, shards of {args.shard_objects}; medians of {args.runs} run(s)")
    print("| case | in flight | objects | seconds | objects/s | copy phase objects/s | "
          "x 1 worker | target 0.8 x N | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        n = r["workers"]
        speedup = f"{r['rate'] / one['rate']:.2f}" if one else ""
        if r["case"] == "server limit":
            verdict = "(the server's limit)"
        elif not one or r is one:
            verdict = ""
        else:
            cap = limit["rate"] if limit else float("inf")
            wanted = 0.8 * min(n * one["rate"], cap)
            verdict = f"{'met' if r['rate'] >= wanted else 'missed'} (>= {wanted:.0f}/s)"
        print(f"| {r['case']} | {n * r['concurrency']} | {r['objects']} | {r['seconds']:.0f} | "
              f"{r['rate']:.0f} | {r['copy_rate']:.0f} | {speedup} | {verdict} | "
              f"{r['load_mean']:.1f} |")


if __name__ == "__main__":
    main()
