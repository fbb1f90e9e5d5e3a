#!/usr/bin/env bash
# `make bench`: the benchmarks, never part of `make test`. Each prints its own figures.
#   BENCH_PROFILE=dev make bench   runs against a debug build (no release build needed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

echo "== verify: 100,000 files over 10,000 versions, served by rclone serve s3 =="
"$PY" bench/verify_bench.py "$@"
