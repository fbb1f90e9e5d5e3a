#!/usr/bin/env bash
# `make bench`: the benchmarks, never part of `make test`. Each prints its own figures.
#   BENCH_PROFILE=dev make bench   runs against a debug build (no release build needed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

# copy_bench.py runs verify_bench.py too and prints every figure in one table
# (--no-verify leaves verify out; bench/verify_bench.py runs it alone).
echo "== lifeboat vs s5cmd and rclone: copy, requests per object, restore clone, verify =="
"$PY" bench/copy_bench.py "$@"

# Sharded restores (#17): a clone copied by 1, 4 and 16 workers through the proxy's 20 ms.
# BENCH_RESTORE_OBJECTS sets the table's size (default 20,000; BENCHMARKS.md's figures are for
# 1,000,000, about 30 min per case on 2 cores; BENCH_RESTORE_WORK=DIR keeps the table for reuse).
echo "== sharded restore clone: 1, 4 and 16 workers =="
"$PY" bench/restore_shards_bench.py ${BENCH_RESTORE_WORK:+--work "$BENCH_RESTORE_WORK"}

# Incremental verification (#17): a 100k-version table, 10 new commits, incremental vs full.
echo "== verify: incremental vs full, 100k versions, 10 new commits =="
"$PY" bench/verify_bench.py --versions 100000 --files 100000 --new-commits 10
