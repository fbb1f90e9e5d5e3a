"""Sharded restore throughput: `lifeboat restore --mode clone --execute --workers N` of a large
table, for N = 1, 4 and 16 workers, on one `rclone serve s3` behind copy_bench.py's proxy with a
fixed delay per request (--latency-ms, 20 by default).

Each worker copies one shard at a time with LIFEBOAT_COPY_CONCURRENCY copies in flight (4 by
default), as one invocation of the restore function consumes one shard message; the shards go
through an in-process work queue instead of SQS (the local server has none), so the figure is the
copy path's scaling, not SQS's. The log is written after the last shard, as in production, and
is part of the time.

Target: objects/s with N workers >= 0.8 x N x objects/s with 1 worker, up to the server's limit:
the rate the same server and proxy reach with everything in flight at once (one worker with
--limit-concurrency copies at a time), measured first and reported.

Usage: python bench/restore_shards_bench.py [--table-files N] [--workers 1,4,16]
                                            [--concurrency 4] [--latency-ms MS] [--runs N]
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import copy_bench as cb  # noqa: E402  (the proxy, the environment, the timer)
import verify_bench as vb  # noqa: E402  (the server, the table generator)


def clone(binary, env, root, workers, concurrency, shard_objects, tag):
    env = dict(env)
    env.update({
        "LIFEBOAT_RESTORE_SHARD_THRESHOLD": "1",
        "LIFEBOAT_RESTORE_SHARD_OBJECTS": str(shard_objects),
        "LIFEBOAT_COPY_CONCURRENCY": str(concurrency),
    })
    target = f"clones/{tag}/table"
    cmd = [binary, "restore", f"s3://{vb.SOURCE}/{vb.TABLE}", "--mode", "clone",
           "--target", f"s3://{vb.SOURCE}/{target}", "--execute", "--json",
           "--workers", str(workers)]
    seconds, _, _ = cb.timed(cmd, env)
    written = sum(1 for p in (root / vb.SOURCE / target).rglob("*") if p.is_file())
    shutil.rmtree(root / vb.SOURCE / "clones" / tag, ignore_errors=True)
    return seconds, written


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table-files", type=int, default=20_000)
    parser.add_argument("--workers", default="1,4,16")
    parser.add_argument("--concurrency", type=int, default=4, help="copies in flight per worker")
    parser.add_argument("--limit-concurrency", type=int, default=256,
                        help="copies in flight for the server-limit run")
    parser.add_argument("--shard-objects", type=int, default=500)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--profile", choices=["release", "dev"],
                        default=os.environ.get("BENCH_PROFILE", "release"))
    parser.add_argument("--binary", help="a lifeboat binary to use instead of building one")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]

    binary = args.binary or vb.build(args.profile)
    work = Path(tempfile.mkdtemp(prefix="lifeboat-shards-bench-"))
    root = work / "s3"
    rclone = server = None
    rows = []
    try:
        (root / vb.BACKUP).mkdir(parents=True)
        (root / vb.SOURCE).mkdir(parents=True)
        t = time.monotonic()
        vb.generate(root, max(1, args.table_files // 100), args.table_files,
                    max(1, args.table_files // 200))
        print(f"generated a {args.table_files}-file table in {time.monotonic() - t:.0f} s",
              flush=True)
        rclone, server_port = vb.start_rclone(root)
        proxy_port = vb.free_port()
        cb.Proxy.upstream = ("127.0.0.1", server_port)
        cb.Proxy.delay = args.latency_ms / 1000
        server = cb.ProxyServer(("127.0.0.1", proxy_port), cb.Proxy)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        env = cb.clean_env(proxy_port)

        serial = 0
        cases = [("server limit", 1, args.limit_concurrency)] + [
            (f"{n} worker(s)", n, args.concurrency) for n in workers]
        for name, n, concurrency in cases:
            times = []
            for _ in range(args.runs):
                serial += 1
                seconds, written = clone(binary, env, root, n, concurrency,
                                         args.shard_objects, f"run{serial:03d}")
                times.append(seconds)
            seconds = statistics.median(times)
            rows.append((name, n, concurrency, written, seconds, written / seconds))
            print(f"{name}: {written} objects in {seconds:.1f} s = {written / seconds:.0f} objects/s",
                  flush=True)
    finally:
        if server:
            server.shutdown()
        if rclone:
            vb.stop_rclone(rclone)
        shutil.rmtree(work, ignore_errors=True)

    limit = rows[0][5]
    one = next((r[5] for r in rows if r[0] == "1 worker(s)"), None)
    print()
    print(f"Sharded restore clone of a {args.table_files}-file table, {args.latency_ms} ms per "
          f"request, {args.concurrency} copies in flight per worker, shards of {args.shard_objects}")
    print(f"| case | copies in flight | objects | seconds | objects/s | x 1 worker | target 0.8 x N |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, n, concurrency, written, seconds, rate in rows:
        flight = n * concurrency
        speedup = f"{rate / one:.2f}" if one else ""
        if name == "server limit" or not one:
            verdict = "(the server's limit)" if name == "server limit" else ""
        else:
            wanted = min(0.8 * n * one, 0.8 * limit)
            verdict = f"{'met' if rate >= wanted else 'missed'} (>= {wanted:.0f}/s)"
        print(f"| {name} | {flight} | {written} | {seconds:.1f} | {rate:.0f} | {speedup} | {verdict} |")


if __name__ == "__main__":
    main()
