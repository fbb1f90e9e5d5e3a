"""Writes and reads real Delta tables on the local S3 server for Lifeboat's tests, drills and
demo: the project's one Python Delta helper.

    python tests/py/delta_tool.py COMMAND ARGS...     (prints one JSON document)

Writers and the reference reader are the `deltalake` package (independent of Lifeboat);
`read` reads with DuckDB's delta extension instead, which applies deletion vectors and reads
V2 checkpoints. `setup`, `drop`, `count` and `keys` are the S3 chores of `lifeboat demo`
(boto3); `glue-register`, `glue-get` and `glue-drop` its Glue Data Catalog chores (what an ETL
job and metastore automation do to the catalog).
Connection settings come from the environment (AWS_ENDPOINT_URL and credentials), as the Rust
harness and the demo set them.
"""

import glob
import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile

import boto3
import pyarrow as pa
from botocore.config import Config
from deltalake import DeltaTable, write_deltalake


def storage_options():
    return {
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    }


def client(service):
    """A boto3 client for the local AWS (path-style S3 addressing)."""
    return boto3.client(
        service, endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}),
    )


# Partition values that exercise key encoding: spaces, '+', '=', '%', '/', unicode.
PARTS = ["plain", "with space", "a+b", "x=A/A", "50%", "café"]


def batch(start, count, tag):
    return pa.table(
        {
            "id": pa.array(range(start, start + count), pa.int64()),
            "name": pa.array([f"{tag}-{i}" for i in range(start, start + count)]),
            "part": pa.array([PARTS[i % len(PARTS)] for i in range(start, start + count)]),
        }
    )


def write(uri, data, mode="append"):
    write_deltalake(uri, data, mode=mode, partition_by=["part"], storage_options=storage_options())


def scenario_history(uri):
    """Appends, an overwrite, a checkpoint and an optimize: versions 0..6."""
    write(uri, batch(0, 12, "v0"))
    write(uri, batch(12, 6, "v1"))
    write(uri, batch(18, 6, "v2"))
    write(uri, batch(100, 6, "v3"), mode="overwrite")
    write(uri, batch(200, 6, "v4"))
    table = DeltaTable(uri, storage_options=storage_options())
    table.create_checkpoint()
    table.optimize.compact()
    write(uri, batch(300, 3, "v6"))
    return {"version": DeltaTable(uri, storage_options=storage_options()).version()}


def scenario_small(uri):
    """Three appends: versions 0..2."""
    for v in range(3):
        write(uri, batch(v * 4, 4, f"v{v}"))
    return {"version": 2}


CITIES = ["Lisbon", "Oslo", "Quito", "Osaka", "Accra", "Perth"]


def orders(first, count, status):
    ids = range(first, first + count)
    return pa.table({
        "order_id": pa.array(ids, pa.int64()),
        "city": pa.array([CITIES[i % len(CITIES)] for i in ids]),
        "amount": pa.array([round(10 + (i * 7.31) % 90, 2) for i in ids], pa.float64()),
        "status": pa.array([status] * count),
    })


def scenario_orders(uri):
    """The demo's table: three commits, partitioned by city (two days of orders, then a
    correction); versions 0..2."""
    opts = storage_options()
    write_deltalake(uri, orders(1, 6, "new"), partition_by=["city"], storage_options=opts)
    write_deltalake(uri, orders(7, 6, "new"), mode="append", partition_by=["city"], storage_options=opts)
    write_deltalake(uri, orders(13, 4, "new"), mode="append", partition_by=["city"], storage_options=opts)
    table = DeltaTable(uri, storage_options=opts)
    return {"version": table.version(), "history": [h.get("operation") for h in reversed(table.history())]}


SCENARIOS = {"history": scenario_history, "small": scenario_small, "orders": scenario_orders}


def table_rows(table):
    """Every row, canonical and sorted. Tables with deletion vectors are read through
    deltalake's query engine, which applies them (its pyarrow path refuses such tables)."""
    try:
        data = table.to_pyarrow_table().to_pylist()
    except Exception as e:
        if "deletionVectors" not in str(e):
            raise
        from deltalake import QueryBuilder

        result = QueryBuilder().register("t", table).execute("select * from t").read_all()
        data = pa.table(result).to_pylist()
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in data)


def rows(uri, version=None):
    return table_rows(DeltaTable(uri, version=version, storage_options=storage_options()))


def cmd_write(uri, scenario):
    return SCENARIOS[scenario](uri)


def cmd_append(uri, start, count):
    write(uri, batch(int(start), int(count), f"append{start}"))
    return {"version": DeltaTable(uri, storage_options=storage_options()).version()}


def cmd_compare(expected_uri, actual_uri, first="0", last="latest"):
    """Compares both tables at every version first..last; prints the versions that differ."""
    expected = DeltaTable(expected_uri, storage_options=storage_options())
    last = expected.version() if last == "latest" else int(last)
    differ = []
    for version in range(int(first), last + 1):
        try:
            a = rows(expected_uri, version)
        except Exception as e:  # a version the expected side cannot read is not compared
            differ.append({"version": version, "error": f"expected side: {e}"})
            continue
        try:
            b = rows(actual_uri, version)
        except Exception as e:
            differ.append({"version": version, "error": f"actual side: {e}"})
            continue
        if a != b:
            differ.append({"version": version, "expected_rows": len(a), "actual_rows": len(b)})
    return {"compared": last + 1 - int(first), "differ": differ}


def cmd_upload(directory, uri):
    """Uploads a local directory tree to s3://bucket/prefix, keys relative to it, as-is."""
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    s3 = client("s3")
    count = 0
    for folder, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, directory).replace(os.sep, "/")
            key = f"{prefix.rstrip('/')}/{relative}" if prefix else relative
            with open(path, "rb") as body:
                s3.put_object(Bucket=bucket, Key=key, Body=body.read())
            count += 1
    return {"uploaded": count}


def cmd_live_counts(directory):
    """For every version of a local table: its live file count by deltalake, and whether all
    those files exist on disk; or why deltalake cannot open it."""
    out = {}
    try:
        latest = DeltaTable(directory).version()
    except Exception as e:
        return {"error": str(e).splitlines()[0] if str(e) else type(e).__name__}
    for version in range(0, latest + 1):
        try:
            uris = DeltaTable(directory, version=version).file_uris()
        except Exception as e:
            out[str(version)] = {"error": (str(e).splitlines() or [type(e).__name__])[0][:200]}
            continue
        present = all(os.path.exists(u.replace("file://", "", 1)) if u.startswith("file://") else os.path.exists(u) for u in uris)
        out[str(version)] = {"count": len(uris), "all_present": present}
    return {"latest": latest, "versions": out}


def cmd_overwrite(uri, start, count):
    """An erroneous job: replaces the table's content with bad rows."""
    write(uri, batch(int(start), int(count), "bad"), mode="overwrite")
    return {"version": DeltaTable(uri, storage_options=storage_options()).version()}


def cmd_vacuum(uri):
    """VACUUM RETAIN 0 HOURS: deletes every file the latest version does not need."""
    table = DeltaTable(uri, storage_options=storage_options())
    removed = table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    return {"removed": len(removed)}


def cmd_same(uri_a, version_a, uri_b, version_b):
    """Whether two tables (or versions) hold the same rows."""
    def at(uri, version):
        opts = storage_options() if uri.startswith("s3://") else None
        v = None if version == "latest" else int(version)
        table = DeltaTable(uri, version=v, storage_options=opts)
        return table_rows(table)

    a = at(uri_a, version_a)
    try:
        b = at(uri_b, version_b)
    except Exception as e:
        return {"equal": False, "a_rows": len(a), "error": str(e)[:300]}
    return {"equal": a == b, "a_rows": len(a), "b_rows": len(b)}


def cmd_history(uri):
    """The table's commit history as deltalake reports it (operation per version)."""
    table = DeltaTable(uri, storage_options=storage_options())
    return {"version": table.version(), "history": [
        {"version": h.get("version"), "operation": h.get("operation"), "parameters": h.get("operationParameters")}
        for h in table.history()
    ]}


COMMANDS = {"overwrite": cmd_overwrite, "vacuum": cmd_vacuum, "same": cmd_same, "history": cmd_history, "upload": cmd_upload, "live-counts": cmd_live_counts, "write": cmd_write, "append": cmd_append, "compare": cmd_compare}


# --------------------------------------------------------------------------- disaster drills
def digest_of(table):
    """Row count and SHA-256 of the table's canonical sorted rows: equal digests, equal tables."""
    data = table_rows(table)
    return {"version": table.version(), "rows": len(data), "sha256": hashlib.sha256("\n".join(data).encode()).hexdigest()}


def cmd_digest(uri, version="latest"):
    """The digest of one version (default: the latest) of a table."""
    v = None if version == "latest" else int(version)
    return digest_of(DeltaTable(uri, version=v, storage_options=storage_options()))


def cmd_digests(uri, first="0", last="latest"):
    """Digests of every version first..last (default: all), to compare after a restore."""
    latest = DeltaTable(uri, storage_options=storage_options()).version()
    last = latest if last == "latest" else int(last)
    return {"latest": latest, "versions": {
        str(v): digest_of(DeltaTable(uri, version=v, storage_options=storage_options()))
        for v in range(int(first), last + 1)
    }}


def cmd_checkpoint(uri):
    """Writes a checkpoint at the latest version (and _last_checkpoint)."""
    table = DeltaTable(uri, storage_options=storage_options())
    table.create_checkpoint()
    return {"version": table.version()}


# --------------------------------------------------------------------------- lifeboat demo
def cmd_setup(source, backup, queue):
    """A versioned source bucket whose object events go to a queue, and a versioned backup
    bucket: the wiring infra/ deploys, without the IAM walls."""
    s3, sqs = client("s3"), client("sqs")
    for bucket in (source, backup):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=source, NotificationConfiguration={"QueueConfigurations": [
        {"Id": "lifeboat", "QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]})
    # S3 answers a new notification configuration with an s3:TestEvent; the replicator ignores
    # it, and the demo counts only the events it causes.
    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return {"queue_url": url}


def row_order(row):
    """Sorts rows by their columns' values, in column order (the demo's by order_id)."""
    return tuple((v is None, type(v).__name__, v if isinstance(v, (int, float, str)) else str(v)) for v in row.values())


def cmd_rows(uri):
    """The latest version's rows (sorted), its version, a digest of its content and the
    operation of each commit; or why deltalake cannot open the table."""
    try:
        table = DeltaTable(uri, storage_options=storage_options())
    except Exception as e:  # the point of the demo: a dropped table cannot be opened
        return {"error": (str(e).splitlines() or [type(e).__name__])[0][:160]}
    data = sorted(table.to_pyarrow_table().to_pylist(), key=row_order)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"version": table.version(), "rows": data, "digest": digest,
            "history": [h.get("operation") for h in reversed(table.history())]}


def cmd_drop(bucket, prefix):
    """DROP TABLE with purge: every object version and delete marker under the prefix."""
    s3 = client("s3")
    destroyed = 0
    while True:
        listing = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
        targets = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in listing.get("Versions", [])]
        destroyed += len(targets)
        targets += [{"Key": m["Key"], "VersionId": m["VersionId"]} for m in listing.get("DeleteMarkers", [])]
        if not targets:
            return {"destroyed": destroyed}
        for target in targets:
            s3.delete_object(Bucket=bucket, **target)


def cmd_count(bucket, prefix):
    """Objects (current versions) under a prefix, and their total size."""
    s3 = client("s3")
    count = size = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            count += 1
            size += obj["Size"]
    return {"objects": count, "bytes": size}


def cmd_keys(bucket, prefix):
    """The keys (current versions) under a prefix."""
    s3 = client("s3")
    return {"keys": [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                     for o in page.get("Contents", [])]}


HIVE_TYPES = {"long": "bigint", "integer": "int", "short": "smallint", "byte": "tinyint", "string": "string",
              "double": "double", "float": "float", "boolean": "boolean", "date": "date", "timestamp": "timestamp",
              "binary": "binary"}


def cmd_glue_register(database, name, uri):
    """Registers the Delta table at `uri` as database.name, as a Spark or Glue job does
    (external table, provider delta; columns and partition keys from the table's schema);
    creates the database if it is missing."""
    glue = client("glue")
    try:
        glue.create_database(DatabaseInput={"Name": database})
    except glue.exceptions.AlreadyExistsException:
        pass
    table = DeltaTable(uri, storage_options=storage_options())
    partitions = table.metadata().partition_columns

    def column(field):
        kind = getattr(field.type, "type", str(field.type))
        return {"Name": field.name, "Type": HIVE_TYPES.get(kind, kind)}

    fields = table.schema().fields
    glue.create_table(DatabaseName=database, TableInput={
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"EXTERNAL": "TRUE", "spark.sql.sources.provider": "delta", "table_type": "DELTA"},
        "StorageDescriptor": {
            "Location": uri,
            "Columns": [column(f) for f in fields if f.name not in partitions],
            "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
                          "Parameters": {"serialization.format": "1", "path": uri}},
        },
        "PartitionKeys": [column(f) for f in fields if f.name in partitions],
    })
    return cmd_glue_get(database, name)


def cmd_glue_get(database, name):
    """Glue GetTable: where the entry points and what it says, or that there is none."""
    glue = client("glue")
    try:
        t = glue.get_table(DatabaseName=database, Name=name)["Table"]
    except glue.exceptions.EntityNotFoundException:
        return {"exists": False, "table": f"{database}.{name}"}
    sd = t.get("StorageDescriptor", {})
    return {"exists": True, "table": f"{database}.{name}", "location": sd.get("Location"),
            "table_type": t.get("TableType"), "parameters": t.get("Parameters", {}),
            "columns": [c["Name"] for c in sd.get("Columns", [])],
            "partition_keys": [c["Name"] for c in t.get("PartitionKeys", [])]}


def cmd_glue_drop(database, name):
    """Glue DeleteTable: the entry is gone for every engine that finds tables through it."""
    client("glue").delete_table(DatabaseName=database, Name=name)
    return {"dropped": f"{database}.{name}"}


# --------------------------------------------------------------------------- DuckDB reader
# deltalake cannot read deletion vectors through pyarrow, nor V2 checkpoints; DuckDB's delta
# extension (delta-kernel-rs inside) can. It has no time travel, so version V is read from a
# view of the table whose _delta_log stops at V.

# A log file's version: NNN.json, NNN.checkpoint[.K.N|.UUID].parquet|json, NNN.crc; a log
# compaction X.Y.compacted.json counts as Y.
LOG_FILE = re.compile(r"^(\d{20})(?:\.(\d{20}))?\.(?:json|crc|checkpoint\..*|compacted\.json)$")


def log_version(name):
    match = LOG_FILE.match(name)
    if not match:
        return None
    return int(match.group(2) or match.group(1))


def delta_extension():
    """The delta.duckdb_extension file the duckdb-ext-delta package ships for this DuckDB."""
    import duckdb

    spec = importlib.util.find_spec("duckdb_ext")
    roots = list(spec.submodule_search_locations) if spec else []
    found = []
    for root in roots:
        found += glob.glob(os.path.join(root, "extensions", f"v{duckdb.__version__}", "*", "delta.duckdb_extension"))
        found += glob.glob(os.path.join(root, "extensions", "*", "*", "delta.duckdb_extension"))
    if not found:
        raise SystemExit("delta.duckdb_extension not found: pip install duckdb-ext-delta (make setup)")
    return found[0]


def mirror(uri, into, version):
    """Copies s3://bucket/prefix into a local directory, leaving out log files after
    `version`."""
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    prefix = prefix.rstrip("/") + "/"
    s3 = client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            relative = obj["Key"][len(prefix):]
            if relative.startswith("_delta_log/") and "/" not in relative[len("_delta_log/"):]:
                v = log_version(relative[len("_delta_log/"):])
                if v is not None and version is not None and v > version:
                    continue
            path = os.path.join(into, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            s3.download_file(bucket, obj["Key"], path)
    return into


def log_view(directory, version, into):
    """A view of a local table at `version` in `into`: its log files up to `version` (no
    `_last_checkpoint`, which may point later), everything else symlinked."""
    directory = os.path.abspath(directory)
    for entry in os.listdir(directory):
        if entry != "_delta_log":
            os.symlink(os.path.join(directory, entry), os.path.join(into, entry))
    log = os.path.join(directory, "_delta_log")
    os.mkdir(os.path.join(into, "_delta_log"))
    for name in os.listdir(log):
        v = log_version(name)
        keep = name == "_sidecars" or (v is not None and v <= version)
        if keep:
            os.symlink(os.path.join(log, name), os.path.join(into, "_delta_log", name))
    return into


def latest_version(directory):
    versions = [log_version(n) for n in os.listdir(os.path.join(directory, "_delta_log"))]
    return max(v for v in versions if v is not None)


def cmd_read(uri, version="latest"):
    """Version `version` (default: the latest) of a table, local or s3://, read with DuckDB's
    delta extension: its row count and the SHA-256 of its canonical sorted rows, as `digest`
    gives them."""
    import duckdb

    v = None if version == "latest" else int(version)
    work = tempfile.mkdtemp(prefix="lifeboat-read-")
    try:
        if uri.startswith("s3://"):
            local = mirror(uri, os.path.join(work, "mirror"), v)
        else:
            local = uri[len("file://"):] if uri.startswith("file://") else uri
        latest = latest_version(local)
        if v is None:
            v = latest
        elif v > latest:
            raise SystemExit(f"{uri} has no version {v} (its latest is {latest})")
        view = log_view(local, v, tempfile.mkdtemp(dir=work))
        con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"LOAD '{delta_extension()}'")
        # Through Arrow, as deltalake hands its rows over: the same Python values either way.
        rows = con.execute("SELECT * FROM delta_scan(?)", [view]).fetch_arrow_table().to_pylist()
        data = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
        return {"version": v, "rows": len(data), "sha256": hashlib.sha256("\n".join(data).encode()).hexdigest()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def rows_digest(data):
    return {"rows": len(data), "sha256": hashlib.sha256("\n".join(data).encode()).hexdigest()}


def cdf_rows(table, last):
    """The change data feed of versions 0..last by deltalake's `load_cdf`, canonical and
    sorted, without `_commit_timestamp` (a file time where the table has no in-commit
    timestamps, and copies get new file times: README, "Time travel by timestamp")."""
    data = pa.table(table.load_cdf(starting_version=0, ending_version=last).read_all())
    if "_commit_timestamp" in data.column_names:
        data = data.drop_columns(["_commit_timestamp"])
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in data.to_pylist())


def first_line(error):
    return ((str(error).splitlines() or [type(error).__name__])[0])[:200]


def cmd_reads(spec):
    """Many versions of many tables read in one process (the conformance sweeps). `spec` is a
    JSON list of {"uri", "versions": [V, ...], "readers": {"V": "duckdb"|"deltalake"},
    "cdf": [V, ...]}. Each version is read with DuckDB's delta extension (as `read` does),
    or with deltalake (as `digest` does) where DuckDB cannot read it; `readers` forces one
    (to compare a copy with the reader that read the original). `cdf` versions are read as
    the change data feed of versions 0..V (deltalake's `load_cdf`). An s3:// table is copied
    down once. Prints, per table, {"versions": {"V": {"reader", "rows", "sha256"} or
    {"error"}}, "cdf": {"V": ...}}."""
    import duckdb

    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"LOAD '{delta_extension()}'")
    out = []
    for item in json.loads(spec):
        uri = item["uri"]
        work = tempfile.mkdtemp(prefix="lifeboat-reads-")
        result = {"uri": uri, "versions": {}, "cdf": {}}
        try:
            if uri.startswith("s3://"):
                local = mirror(uri, os.path.join(work, "mirror"), None)
            else:
                local = uri[len("file://"):] if uri.startswith("file://") else uri
            forced = item.get("readers") or {}
            for v in item.get("versions", []):
                errors = []
                readers = [forced[str(v)]] if str(v) in forced else ["duckdb", "deltalake"]
                for reader in readers:
                    try:
                        if reader == "duckdb":
                            view = log_view(local, int(v), tempfile.mkdtemp(dir=work))
                            rows = con.execute("SELECT * FROM delta_scan(?)", [view]).fetch_arrow_table().to_pylist()
                            data = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
                        else:
                            data = table_rows(DeltaTable(local, version=int(v)))
                        result["versions"][str(v)] = {"reader": reader, **rows_digest(data)}
                        break
                    except Exception as e:
                        errors.append(f"{reader}: {first_line(e)}")
                else:
                    result["versions"][str(v)] = {"error": "; ".join(errors)}
            for v in item.get("cdf", []):
                try:
                    result["cdf"][str(v)] = rows_digest(cdf_rows(DeltaTable(local), int(v)))
                except Exception as e:
                    result["cdf"][str(v)] = {"error": first_line(e)}
        except Exception as e:
            result["error"] = first_line(e)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        out.append(result)
    return out


COMMANDS.update({"digest": cmd_digest, "digests": cmd_digests, "checkpoint": cmd_checkpoint, "reads": cmd_reads,
                 "setup": cmd_setup, "rows": cmd_rows, "drop": cmd_drop, "count": cmd_count, "read": cmd_read,
                 "keys": cmd_keys, "glue-register": cmd_glue_register, "glue-get": cmd_glue_get,
                 "glue-drop": cmd_glue_drop})


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    print(json.dumps(COMMANDS[command](*args), default=str), flush=True)
    sys.stderr.flush()
    # deltalake's native runtime can abort while the interpreter shuts down ("terminate called
    # without an active exception"); the work is done and printed, so leave at once.
    os._exit(0)
