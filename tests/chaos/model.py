"""The model: for each table, the rows at every version as written with `deltalake`, and the
writer operations that produce them (in-process `deltalake`, the writer's credentials).

A version's rows are the first ones written under that version number: the backup keeps the
first copy of every table key, so a later commit under the same number (a stale sync, then
writers going on; a dropped table written again from version 0) does not change what restoring
that version must give. Versions whose backed-up content the model cannot predict (written on
a diverged history, or by a writer that read damaged data) are *tainted*: restores of them must
still finish or refuse cleanly, but their rows are not compared.

Each table also has its Glue Data Catalog entry as the writer registered it, whether Glue holds
it now (a mishap drops it; a rollback or repair registers it again) and whether a verify run
captured it before it was dropped (only then can Lifeboat report it and put it back).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py"))
import delta_tool  # noqa: E402  the project's one Python Delta helper
from deltalake import DeltaTable, write_deltalake  # noqa: E402

from lab import GLUE_DATABASE, SRC  # noqa: E402

PARTS = ["plain", "a+b", "with space", "café"]
WRITER_OPS = ["append", "overwrite", "delete", "update", "compact", "checkpoint", "vacuum",
              "schema_change", "cdf_on"]


def canon(rows) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)


def read_rows(uri: str, version: int | None = None) -> list[str]:
    """The rows of a table (a version of it) by deltalake, the independent reader."""
    return delta_tool.rows(uri, version)


def source_version(uri: str) -> int | None:
    try:
        return DeltaTable(uri, storage_options=delta_tool.storage_options()).version()
    except Exception:
        return None


@dataclass
class TableModel:
    name: str
    versions: dict = field(default_factory=dict)   # version -> canonical rows (first write wins)
    times: dict = field(default_factory=dict)      # version -> (ms before, ms after) the commit
    tainted: set = field(default_factory=set)
    diverged: bool = False     # the source's log is no longer a prefix of the backup's
    next_id: int = 0
    has_score: bool = False
    cdf: bool = False
    # The table's Glue entry: the TableInput the writer registered (None: not registered), whether
    # Glue holds it now, and whether a verify run captured it into the backup since.
    entry: dict | None = None
    entry_present: bool = False
    entry_captured: bool = False

    @property
    def uri(self) -> str:
        return f"s3://{SRC}/{self.prefix}"

    @property
    def prefix(self) -> str:
        return f"lake/{self.name}"

    def known(self, v) -> bool:
        return v in self.versions and v not in self.tainted

    def latest(self):
        return max(self.versions) if self.versions else None

    def record(self, before: int | None, after: int | None, rows: list[str] | None, t0: int, t1: int,
               taint: bool):
        """New source versions before+1..after: the last holds `rows`, the others (VACUUM START,
        ...) the rows of `before`."""
        if after is None or (before is not None and after <= before):
            return []
        first = 0 if before is None else before + 1
        prior = self.versions.get(before) if before is not None else []
        new = []
        for v in range(first, after + 1):
            if v in self.versions:       # a collision: the backup keeps the first commit v
                self.diverged = True
                continue
            self.versions[v] = rows if v == after else prior
            self.times[v] = (t0, t1)
            if taint or self.diverged or rows is None or (v != after and prior is None):
                self.tainted.add(v)
            new.append(v)
        return new


SYMLINK_MANIFEST = "_symlink_format_manifest"


def catalog_input(model: TableModel, form: str) -> dict:
    """The Glue TableInput an ETL job registers the table with: `delta` as Spark and Athena
    register a Delta table (provider delta, location the table), `symlink` as a Hive table over
    the manifests of `GENERATE symlink_format_manifest` (location the manifest folder)."""
    columns = [{"Name": "id", "Type": "bigint"}, {"Name": "name", "Type": "string"}]
    partitions = [{"Name": "part", "Type": "string"}]
    if form == "delta":
        return {
            "Name": model.name,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"EXTERNAL": "TRUE", "spark.sql.sources.provider": "delta", "table_type": "DELTA"},
            "StorageDescriptor": {
                "Location": model.uri,
                "Columns": columns,
                "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
                              "Parameters": {"serialization.format": "1", "path": model.uri}},
            },
            "PartitionKeys": partitions,
        }
    if form == "symlink":
        return {
            "Name": model.name,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"EXTERNAL": "TRUE"},
            "StorageDescriptor": {
                "Location": f"{model.uri}/{SYMLINK_MANIFEST}",
                "Columns": columns,
                "InputFormat": "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat",
                "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                              "Parameters": {"serialization.format": "1"}},
            },
            "PartitionKeys": partitions,
        }
    raise ValueError(form)


def entry_view(table: dict) -> dict:
    """What of a Glue table (GetTable's `Table`, or a TableInput) an engine reads it by: compared
    between what the writer registered and what Glue holds after a restore registered it again."""
    sd = table.get("StorageDescriptor") or {}
    serde = sd.get("SerdeInfo") or {}

    def cols(list_):
        return [(c["Name"], c.get("Type")) for c in list_ or []]

    return {
        "name": table.get("Name"),
        "table_type": table.get("TableType"),
        "parameters": table.get("Parameters") or {},
        "location": sd.get("Location"),
        "columns": cols(sd.get("Columns")),
        "input_format": sd.get("InputFormat"),
        "output_format": sd.get("OutputFormat"),
        "serde_library": serde.get("SerializationLibrary"),
        "serde_parameters": serde.get("Parameters") or {},
        "partition_keys": cols(table.get("PartitionKeys")),
    }


def entry_root(table: dict) -> str | None:
    """The table a Glue entry stands for: its location without a trailing manifest folder."""
    location = ((table.get("StorageDescriptor") or {}).get("Location") or "").rstrip("/")
    return location.removesuffix("/" + SYMLINK_MANIFEST) or None


def register_entry(model: TableModel, glue, form: str):
    """The writer registers the table in GLUE_DATABASE (Glue CreateTable)."""
    model.entry = catalog_input(model, form)
    glue.create_table(DatabaseName=GLUE_DATABASE, TableInput=model.entry)
    model.entry_present = True
    model.entry_captured = False


def now_ms() -> int:
    return int(time.time() * 1000)


def batch(model: TableModel, n: int, tag: str):
    ids = list(range(model.next_id, model.next_id + n))
    model.next_id += n
    cols = {
        "id": pa.array(ids, pa.int64()),
        "name": pa.array([f"{tag}-{i}" for i in ids]),
        "part": pa.array([PARTS[i % len(PARTS)] for i in ids]),
    }
    if model.has_score:
        cols["score"] = pa.array([i * 10 for i in ids], pa.int64())
    table = pa.table(cols)
    return table, table.to_pylist()


def writer_op(model: TableModel, op: str, n: int, r: int) -> dict:
    """One writer operation on the source table. Returns what happened: the new versions, or why
    the writer could not do it (a writer on a broken table fails, as it would in real life)."""
    uri, opts = model.uri, delta_tool.storage_options()
    before = source_version(uri)
    t0 = now_ms()
    base_rows = None
    if before is not None:
        try:
            base_rows = [json.loads(x) for x in read_rows(uri, before)]
        except Exception as e:  # damaged data: readers fail
            if op not in ("append", "overwrite", "schema_change", "checkpoint", "cdf_on"):
                return {"op": op, "skipped": f"source unreadable: {str(e)[:120]}"}
    elif op not in ("append", "overwrite", "schema_change"):
        return {"op": op, "skipped": "no table in the source"}
    # The backup must give the model's rows for `before`; when the source reads otherwise, what
    # the writer derives from it cannot be predicted.
    taint = before is not None and op != "overwrite" and (
        not model.known(before) or base_rows is None or canon(base_rows) != model.versions[before])
    if before is None and model.versions:
        taint = True  # a dropped table written again: a new history under old version numbers
    rows = base_rows or []
    try:
        if op == "append" or (op == "schema_change" and model.has_score):
            data, new = batch(model, n, "a")
            write_deltalake(uri, data, mode="append", partition_by=["part"], storage_options=opts)
            rows = rows + new
        elif op == "schema_change":
            model.has_score = True
            data, new = batch(model, n, "s")
            write_deltalake(uri, data, mode="append", partition_by=["part"], schema_mode="merge",
                            storage_options=opts)
            rows = [{**row, "score": row.get("score")} for row in rows] + new
        elif op == "overwrite":
            data, new = batch(model, n, "o")
            write_deltalake(uri, data, mode="overwrite", partition_by=["part"], storage_options=opts)
            rows = new
        else:
            dt = DeltaTable(uri, storage_options=opts)
            if op == "delete":
                k = n + 1
                dt.delete(f"id % {k} = {r % k}")
                rows = [row for row in rows if row["id"] % k != r % k]
            elif op == "update":
                k = n + 1
                dt.update(updates={"name": "'updated'"}, predicate=f"id % {k} = {r % k}")
                rows = [{**row, "name": "updated"} if row["id"] % k == r % k else row for row in rows]
            elif op == "compact":
                dt.optimize.compact()
            elif op == "checkpoint":
                dt.create_checkpoint()
            elif op == "vacuum":
                dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
            elif op == "cdf_on":
                dt.alter.set_table_properties({"delta.enableChangeDataFeed": "true"})
                model.cdf = True
            else:
                raise ValueError(op)
    except Exception as e:
        after = source_version(uri)
        if after is not None and (before is None or after > before):
            # it committed something and then failed: unknown content
            model.record(before, after, None, t0, now_ms(), True)
        return {"op": op, "failed": str(e)[:200], "versions": []}
    after = source_version(uri)
    predictable = base_rows is not None or before is None or op == "overwrite"
    new = model.record(before, after, canon(rows) if predictable else None,
                       t0, now_ms(), taint)
    return {"op": op, "before": before, "after": after, "versions": new}
