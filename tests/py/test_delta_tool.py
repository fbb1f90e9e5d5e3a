"""The Delta helper's DuckDB reader (`delta_tool.py read`) on the shared tables it exists for:
deletion vectors and V2 checkpoints. Where deltalake can read a version too, both readers must
give the same digest."""

import importlib.util
import json
import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared" / "delta-test-data"

spec = importlib.util.spec_from_file_location("delta_tool", HERE / "delta_tool.py")
delta_tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(delta_tool)

# deltalake's local reads need no endpoint, but storage_options() asks for one.
os.environ.setdefault("AWS_ENDPOINT_URL", "http://127.0.0.1:9")

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is missing")

# (table, version, rows): deletion vectors, file (u) and inline (i), with checkpoints,
# partitions, column mapping and log compaction.
DV_CASES = [
    ("delta-rs/table-with-dv-small", 0, 10),
    ("delta-rs/table-with-dv-small", 1, 8),
    ("delta-kernel-rs/data/with-short-dv", 0, 7),
    ("delta-kernel-rs/data/cdf-table-with-dv", 1, 8),
    ("delta-kernel-rs/data/cdf-table-with-dv", 6, 10),
    ("delta-rs/table_with_deletion_logs", 20, 98),
    ("delta-kernel-rs/golden_data/dv-partitioned-with-checkpoint/delta", 15, 35),
    ("delta-kernel-rs/golden_data/dv-with-columnmapping/delta", 1, 49),
    ("delta-kernel-rs/data/compacted-log-files-table", 25, 5),
]


@needs_shared
@pytest.mark.parametrize("table,version,rows", DV_CASES)
def test_read_applies_deletion_vectors_and_agrees_with_deltalake(table, version, rows):
    path = str(SHARED / table)
    read = delta_tool.cmd_read(path, str(version))
    assert read["version"] == version
    assert read["rows"] == rows
    assert read == delta_tool.cmd_digest(path, str(version))


@needs_shared
@pytest.mark.parametrize("table,version,rows", [
    ("delta-rs/checkpoint-v2-table", 9, 44),
    ("delta-rs/checkpoint-v2-table", 1, 10),
    ("delta-kernel-rs/data/v2-parquet-sidecars-struct-stats-only", 5, 5),
    ("delta-kernel-rs/data/v2-checkpoints-json-without-sidecars", 2, 11),
])
def test_read_reads_v2_checkpoints(table, version, rows):
    read = delta_tool.cmd_read(str(SHARED / table), str(version))
    assert (read["version"], read["rows"]) == (version, rows)


@needs_shared
def test_read_latest_and_a_version_that_does_not_exist():
    path = str(SHARED / "delta-rs/table-with-dv-small")
    assert delta_tool.cmd_read(path)["version"] == 1
    with pytest.raises(SystemExit, match="no version 2"):
        delta_tool.cmd_read(path, "2")


def test_log_versions():
    assert delta_tool.log_version("00000000000000000007.json") == 7
    assert delta_tool.log_version("00000000000000000010.checkpoint.parquet") == 10
    assert delta_tool.log_version("00000000000000000010.checkpoint.0000000001.0000000003.parquet") == 10
    assert delta_tool.log_version("00000000000000000002.checkpoint.80a083e8-7026-4e79-81be-64bd76c43a11.json") == 2
    assert delta_tool.log_version("00000000000000000004.00000000000000000006.compacted.json") == 6
    assert delta_tool.log_version("00000000000000000003.crc") == 3
    assert delta_tool.log_version("_last_checkpoint") is None
    assert delta_tool.log_version(".s3-optimization-0") is None


@needs_shared
def test_reads_agrees_with_read_falls_back_to_deltalake_and_reads_the_change_data_feed():
    dv = str(SHARED / "delta-rs/table-with-dv-small")
    cdf = str(SHARED / "delta-rs/cdc_ict_table")
    spec = [
        {"uri": dv, "versions": [0, 1]},
        # Forced to deltalake: the same rows as DuckDB's where both can read them.
        {"uri": cdf, "versions": [1, 3], "readers": {"3": "deltalake"}, "cdf": [3]},
        {"uri": str(SHARED / "delta-rs/simple_table_features"), "versions": [0]},
    ]
    out = delta_tool.cmd_reads(json.dumps(spec))
    for v in (0, 1):
        read = delta_tool.cmd_read(dv, str(v))
        assert out[0]["versions"][str(v)] == {"reader": "duckdb", "rows": read["rows"], "sha256": read["sha256"]}
    assert out[1]["versions"]["3"]["reader"] == "deltalake"
    assert out[1]["versions"]["3"]["sha256"] == delta_tool.cmd_read(cdf, "3")["sha256"]
    assert out[1]["cdf"]["3"]["rows"] == 10
    assert "duckdb:" in out[2]["versions"]["0"]["error"] and "deltalake:" in out[2]["versions"]["0"]["error"]
