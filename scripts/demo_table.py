#!/usr/bin/env python3
"""The parts of `lifeboat demo` that need Python: the local AWS wiring (boto3) and the Delta
table itself (the `deltalake` package, an independent writer and reader).

    python scripts/demo_table.py COMMAND ARGS...     (prints one JSON document)

Connection settings come from the environment (AWS_ENDPOINT_URL, credentials, region), as
`lifeboat demo` sets them.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys

import boto3
import pyarrow as pa
from botocore.config import Config
from deltalake import DeltaTable, write_deltalake


def storage_options() -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "demo"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "demo"),
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    }


def client(service: str):
    return boto3.client(
        service, endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}),
    )


def cmd_setup(source: str, backup: str, queue: str) -> dict:
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


CITIES = ["Lisbon", "Oslo", "Quito", "Osaka", "Accra", "Perth"]


def orders(first: int, count: int, status: str) -> pa.Table:
    ids = range(first, first + count)
    return pa.table({
        "order_id": pa.array(ids, pa.int64()),
        "city": pa.array([CITIES[i % len(CITIES)] for i in ids]),
        "amount": pa.array([round(10 + (i * 7.31) % 90, 2) for i in ids], pa.float64()),
        "status": pa.array([status] * count),
    })


def cmd_write(uri: str) -> dict:
    """Three commits, partitioned by city: two days of orders, then a correction."""
    opts = storage_options()
    write_deltalake(uri, orders(1, 6, "new"), partition_by=["city"], storage_options=opts)
    write_deltalake(uri, orders(7, 6, "new"), mode="append", partition_by=["city"], storage_options=opts)
    write_deltalake(uri, orders(13, 4, "new"), mode="append", partition_by=["city"], storage_options=opts)
    table = DeltaTable(uri, storage_options=opts)
    return {"version": table.version(), "history": [h.get("operation") for h in reversed(table.history())]}


def rows_of(table: DeltaTable) -> list[dict]:
    return sorted(table.to_pyarrow_table().to_pylist(), key=lambda r: r["order_id"])


def cmd_read(uri: str) -> dict:
    """The table's rows (sorted by order_id), its version and a digest of its content."""
    try:
        table = DeltaTable(uri, storage_options=storage_options())
    except Exception as e:  # the point of the demo: a dropped table cannot be opened
        return {"error": (str(e).splitlines() or [type(e).__name__])[0][:160]}
    rows = rows_of(table)
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"version": table.version(), "rows": rows, "digest": digest,
            "history": [h.get("operation") for h in reversed(table.history())]}


def cmd_drop(bucket: str, prefix: str) -> dict:
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


def cmd_count(bucket: str, prefix: str) -> dict:
    """Objects (current versions) under a prefix, and their total size."""
    s3 = client("s3")
    count = size = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            count += 1
            size += obj["Size"]
    return {"objects": count, "bytes": size}


COMMANDS = {"setup": cmd_setup, "write": cmd_write, "read": cmd_read, "drop": cmd_drop, "count": cmd_count}

if __name__ == "__main__":
    name, *args = sys.argv[1:]
    print(json.dumps(COMMANDS[name](*args), default=str), flush=True)
    sys.stderr.flush()
    # deltalake's native runtime can abort while the interpreter shuts down; the work is done.
    os._exit(0)
