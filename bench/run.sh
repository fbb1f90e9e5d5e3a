#!/usr/bin/env bash
# `make bench`: the benchmarks, never part of `make test`. Each prints its own figures.
#   BENCH_PROFILE=dev make bench   runs against a debug build (no release build needed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

echo "== verify: 100,000 files over 10,000 versions, served by rclone serve s3 =="
"$PY" bench/verify_bench.py "$@"

# copy_bench.py runs verify_bench.py again itself, to print every figure in one table;
# BENCH_COPY_ARGS=--no-verify skips that second verify run.
echo "== copy: lifeboat backfill vs s5cmd cp vs rclone copy, requests per object, restore clone =="
"$PY" bench/copy_bench.py ${BENCH_COPY_ARGS:-}
