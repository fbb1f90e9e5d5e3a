"""The local AWS (scripts/local_aws.py) behaves like S3 where Lifeboat's correctness depends on it.

One server for the module, started as a subprocess on a free loopback port and stopped on exit.
``LOCAL_AWS_TEST_SERVER=moto_server`` runs the same tests against plain ``moto_server`` instead:
every test that talks to the server must then fail (that is how the patches were verified to
be needed). ``LOCAL_AWS_TEST_PATCHES_OFF=name,...`` starts the launcher with those patches off.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
LAUNCHER = ROOT / "scripts" / "local_aws.py"
ACCOUNT = "123456789012"  # moto's default account
MiB = 1024 * 1024


def _load_launcher():
    spec = importlib.util.spec_from_file_location("local_aws", LAUNCHER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


local_aws = _load_launcher()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("local_aws") / f"local-aws-{port}.log"
    python = VENV_BIN / "python"
    if os.environ.get("LOCAL_AWS_TEST_SERVER") == "moto_server":
        cmd = [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    else:
        cmd = [str(python if python.exists() else sys.executable), str(LAUNCHER),
               "--host", "127.0.0.1", "--port", str(port)]
    env = dict(os.environ)
    env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
    env.pop("LOCAL_AWS_PATCHES_OFF", None)
    if os.environ.get("LOCAL_AWS_TEST_PATCHES_OFF"):  # diagnosis: run with some patches off
        env["LOCAL_AWS_PATCHES_OFF"] = os.environ["LOCAL_AWS_TEST_PATCHES_OFF"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except urllib.error.HTTPError:
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"local AWS exited: {log_path.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"local AWS did not answer on {url}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _client(service: str, endpoint: str, **config):
    return boto3.client(
        service, endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(**config) if config else None,
    )


@pytest.fixture(scope="module")
def s3(endpoint):
    """boto3 as shipped: sends a CRC32 checksum with each upload (when_supported)."""
    return _client("s3", endpoint)


@pytest.fixture(scope="module")
def s3_plain(endpoint):
    """A writer that sends no checksum (like object_store/deltalake): S3 adds CRC64NVME."""
    return _client("s3", endpoint, request_checksum_calculation="when_required",
                   response_checksum_validation="when_required")


@pytest.fixture(scope="module")
def sqs(endpoint):
    return _client("sqs", endpoint)


@pytest.fixture(scope="module")
def events(endpoint):
    return _client("events", endpoint)


def new_bucket(s3, *, versioned=False, kms=False) -> str:
    name = f"lb-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if kms:
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/lifeboat-backup"}}]})
    return name


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def multipart_md5_etag(parts: list[bytes]) -> str:
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f"{digest}-{len(parts)}"


def etag(resp) -> str:
    return resp["ETag"].strip('"')


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def crc64nvme_b64(data: bytes) -> str:
    return b64(local_aws.CRC64NVME.digest(data).to_bytes(8, "big"))


def multipart_upload(s3, bucket, key, parts, **create):
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)
    done = []
    for i, part in enumerate(parts, start=1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=i,
                           Body=part)
        done.append({"PartNumber": i, "ETag": r["ETag"]})
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": done})


def two_parts(tag: bytes) -> list[bytes]:
    return [(tag * (5 * MiB // len(tag) + 1))[: 5 * MiB], b"tail-" + tag]


def new_queue(sqs) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    return url, arn


def drain(sqs, url) -> list[dict]:
    bodies = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            return bodies
        for m in msgs:
            bodies.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def s3_records(sqs, url) -> list[dict]:
    return [r for body in drain(sqs, url) for r in body.get("Records", [])]


def notify_to_queue(s3, sqs, bucket) -> str:
    url, arn = new_queue(sqs)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*",
                                                              "s3:ObjectRemoved:*"]}]})
    drain(sqs, url)  # moto sends a test event
    return url


def head_checksum(s3, bucket, key, **kw) -> dict:
    r = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **kw)
    return {k: v for k, v in r.items() if k.startswith("Checksum")}


# --- CRC implementation (no server) -------------------------------------------------------


def test_crc_implementations_match_their_check_values():
    assert local_aws.CRC64NVME.digest(b"123456789") == 0xAE8B14860A799888
    assert local_aws.CRC32C.digest(b"123456789") == 0xE3069283
    data = os.urandom(200_000)  # long enough for the chunked path
    assert local_aws.CRC64NVME.digest(data) == local_aws.CRC64NVME._update_py(
        (1 << 64) - 1, data) ^ ((1 << 64) - 1)
    assert local_aws.compute_checksum(b"123456789", "CRC64NVME") == base64.b64encode(
        bytes.fromhex("ae8b14860a799888"))


def test_patches_switch_off_by_name_only():
    assert local_aws.enabled_patches({}) == list(local_aws.PATCHES)
    assert "checksums" not in local_aws.enabled_patches({"LOCAL_AWS_PATCHES_OFF": "checksums"})
    assert local_aws.enabled_patches({"LOCAL_AWS_PATCHES_OFF": "all"}) == []
    with pytest.raises(SystemExit):
        local_aws.enabled_patches({"LOCAL_AWS_PATCHES_OFF": "no_such_patch"})


# --- 1. SSE-KMS ETags -----------------------------------------------------------------------


def test_kms_put_etag_is_not_md5_and_is_stable(s3):
    data = b"a delta commit\n" * 10
    by_default = new_bucket(s3, kms=True)
    put = s3.put_object(Bucket=by_default, Key="k", Body=data)
    assert put["ServerSideEncryption"] == "aws:kms"
    assert re.fullmatch(r"[0-9a-f]{32}", etag(put)) and etag(put) != md5_hex(data)
    assert etag(s3.head_object(Bucket=by_default, Key="k")) == etag(put)
    # Another write of the same bytes is another ETag.
    assert etag(s3.put_object(Bucket=by_default, Key="k", Body=data)) != etag(put)
    by_header = new_bucket(s3)
    put = s3.put_object(Bucket=by_header, Key="k", Body=data, ServerSideEncryption="aws:kms")
    assert etag(put) != md5_hex(data)
    # Without KMS the ETag stays the MD5.
    assert etag(s3.put_object(Bucket=by_header, Key="plain", Body=data)) == md5_hex(data)


def test_kms_copy_etag_is_not_md5(s3):
    data = b"parquet bytes" * 100
    src = new_bucket(s3)
    dst = new_bucket(s3, kms=True)
    s3.put_object(Bucket=src, Key="k", Body=data)
    copied = s3.copy_object(Bucket=dst, Key="k", CopySource={"Bucket": src, "Key": "k"})
    assert etag(copied["CopyObjectResult"]) != md5_hex(data)
    assert etag(s3.head_object(Bucket=dst, Key="k")) == etag(copied["CopyObjectResult"])


def test_kms_multipart_etag_is_dash_n_but_not_md5_of_parts(s3):
    bucket = new_bucket(s3, kms=True)
    parts = two_parts(b"kms")
    done = multipart_upload(s3, bucket, "big", parts)
    assert re.fullmatch(r"[0-9a-f]{32}-2", etag(done))
    assert etag(done) != multipart_md5_etag(parts)


# --- 2. Multipart and copies ----------------------------------------------------------------


def test_upload_part_copy_gives_dash_n_etag_and_copy_of_multipart_is_single_part(s3):
    bucket = new_bucket(s3)
    parts = two_parts(b"mp")
    src = multipart_upload(s3, bucket, "src", parts)
    assert etag(src) == multipart_md5_etag(parts)
    # A multipart upload built from UploadPartCopy parts.
    up = s3.create_multipart_upload(Bucket=bucket, Key="upc")
    size = len(parts[0]) + len(parts[1])
    ranges = [(0, len(parts[0]) - 1), (len(parts[0]), size - 1)]
    done = []
    for i, (a, b) in enumerate(ranges, start=1):
        r = s3.upload_part_copy(Bucket=bucket, Key="upc", UploadId=up["UploadId"], PartNumber=i,
                                CopySource={"Bucket": bucket, "Key": "src"},
                                CopySourceRange=f"bytes={a}-{b}")
        done.append({"PartNumber": i, "ETag": r["CopyPartResult"]["ETag"]})
    upc = s3.complete_multipart_upload(Bucket=bucket, Key="upc", UploadId=up["UploadId"],
                                       MultipartUpload={"Parts": done})
    assert etag(upc) == multipart_md5_etag(parts)
    # CopyObject makes a single-part object: MD5 ETag, no parts.
    copied = s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "src"})
    assert etag(copied["CopyObjectResult"]) == md5_hex(b"".join(parts))
    head = s3.head_object(Bucket=bucket, Key="copy", PartNumber=1)
    assert "PartsCount" not in head
    assert head["ContentLength"] == size


# --- 3. Notifications -----------------------------------------------------------------------


def test_notifications_from_versioned_bucket_carry_version_id_and_sequencer(s3, sqs):
    bucket = new_bucket(s3, versioned=True)
    url = notify_to_queue(s3, sqs, bucket)
    key = "tbl/date=2024-01-01/part 0.parquet"
    v1 = s3.put_object(Bucket=bucket, Key=key, Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key=key, Body=b"two")["VersionId"]
    records = s3_records(sqs, url)
    assert [r["eventName"] for r in records] == ["ObjectCreated:Put"] * 2
    objs = [r["s3"]["object"] for r in records]
    assert [o["versionId"] for o in objs] == [v1, v2]
    assert all(o["key"] == "tbl/date%3D2024-01-01/part+0.parquet" for o in objs)
    seqs = [o["sequencer"] for o in objs]
    assert all(re.fullmatch(r"[0-9A-F]+", s) for s in seqs)
    assert int(seqs[0], 16) < int(seqs[1], 16)


def test_unversioned_notifications_have_sequencer_and_no_version_id(s3, sqs):
    bucket = new_bucket(s3)
    url = notify_to_queue(s3, sqs, bucket)
    s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    [record] = s3_records(sqs, url)
    assert "versionId" not in record["s3"]["object"]
    assert re.fullmatch(r"[0-9A-F]{18}", record["s3"]["object"]["sequencer"])


def test_copy_and_complete_multipart_send_their_own_event_names(s3, sqs):
    bucket = new_bucket(s3, versioned=True)
    url = notify_to_queue(s3, sqs, bucket)
    s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    copied = s3.copy_object(Bucket=bucket, Key="b", CopySource={"Bucket": bucket, "Key": "a"})
    done = multipart_upload(s3, bucket, "c", two_parts(b"ev"))
    records = s3_records(sqs, url)
    assert [r["eventName"] for r in records] == [
        "ObjectCreated:Put", "ObjectCreated:Copy", "ObjectCreated:CompleteMultipartUpload"]
    assert records[1]["s3"]["object"]["versionId"] == copied["VersionId"]
    assert records[2]["s3"]["object"]["versionId"] == done["VersionId"]
    seqs = [int(r["s3"]["object"]["sequencer"], 16) for r in records]
    assert seqs == sorted(seqs)


def test_versioned_deletes_notify_marker_and_version(s3, sqs):
    bucket = new_bucket(s3, versioned=True)
    url = notify_to_queue(s3, sqs, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"1")["VersionId"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"2")
    marker = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v1)
    records = s3_records(sqs, url)[2:]
    assert [(r["eventName"], r["s3"]["object"]["versionId"]) for r in records] == [
        ("ObjectRemoved:DeleteMarkerCreated", marker), ("ObjectRemoved:Delete", v1)]
    assert all("sequencer" in r["s3"]["object"] for r in records)


def test_eventbridge_events_carry_increasing_sequencers(s3, sqs, events):
    bucket = new_bucket(s3, versioned=True)
    url, arn = new_queue(sqs)
    rule = f"r-{uuid.uuid4().hex[:8]}"
    events.put_rule(Name=rule, EventPattern=json.dumps(
        {"source": ["aws.s3"], "detail": {"bucket": {"name": [bucket]}}}))
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": arn}])
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})
    try:
        v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"1")["VersionId"]
        v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"2")["VersionId"]
        objs = [body["detail"]["object"] for body in drain(sqs, url)]
    finally:
        events.remove_targets(Rule=rule, Ids=["q"])
        events.delete_rule(Name=rule)
    assert [o["version-id"] for o in objs] == [v1, v2]
    assert int(objs[0]["sequencer"], 16) < int(objs[1]["sequencer"], 16)


# --- 4. Checksums ---------------------------------------------------------------------------


def test_object_uploaded_without_checksum_gets_full_object_crc64nvme(s3_plain):
    bucket = new_bucket(s3_plain)
    data = b"no checksum sent" * 50
    s3_plain.put_object(Bucket=bucket, Key="k", Body=data)
    assert head_checksum(s3_plain, bucket, "k") == {
        "ChecksumCRC64NVME": crc64nvme_b64(data), "ChecksumType": "FULL_OBJECT"}
    got = s3_plain.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got["ChecksumCRC64NVME"] == crc64nvme_b64(data)
    assert got["ChecksumType"] == "FULL_OBJECT"
    attrs = s3_plain.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["Checksum"])
    assert attrs["Checksum"]["ChecksumCRC64NVME"] == crc64nvme_b64(data)


def test_checksum_named_by_the_writer_is_kept_full_object(s3):
    bucket = new_bucket(s3)
    data = b"sdk default checksum" * 40
    s3.put_object(Bucket=bucket, Key="crc32", Body=data)  # boto3 sends CRC32
    assert head_checksum(s3, bucket, "crc32") == {
        "ChecksumCRC32": b64(binascii.crc32(data).to_bytes(4, "big")),
        "ChecksumType": "FULL_OBJECT"}
    # botocore computes CRC32C only with awscrt: send the value as a writer would.
    crc32c = b64(local_aws.CRC32C.digest(data).to_bytes(4, "big"))
    s3.put_object(Bucket=bucket, Key="crc32c", Body=data, ChecksumCRC32C=crc32c)
    assert head_checksum(s3, bucket, "crc32c") == {
        "ChecksumCRC32C": crc32c, "ChecksumType": "FULL_OBJECT"}


def test_crc64nvme_is_the_same_whatever_kms_or_part_layout(s3, s3_plain):
    parts = two_parts(b"same bytes")
    data = b"".join(parts)
    plain = new_bucket(s3_plain)
    kms = new_bucket(s3_plain, kms=True)
    s3_plain.put_object(Bucket=plain, Key="single", Body=data)
    s3_plain.put_object(Bucket=kms, Key="single", Body=data)
    multipart_upload(s3_plain, kms, "multi", parts)
    multipart_upload(s3_plain, plain, "multi", parts, ChecksumAlgorithm="CRC64NVME")
    s3_plain.copy_object(Bucket=kms, Key="copy", CopySource={"Bucket": plain, "Key": "multi"})
    want = {"ChecksumCRC64NVME": crc64nvme_b64(data), "ChecksumType": "FULL_OBJECT"}
    etags = set()
    for bucket, key in [(plain, "single"), (kms, "single"), (kms, "multi"), (plain, "multi"),
                        (kms, "copy")]:
        assert head_checksum(s3_plain, bucket, key) == want, (bucket, key)
        etags.add(etag(s3_plain.head_object(Bucket=bucket, Key=key)))
    assert len(etags) == 5  # while every ETag differs


def test_copy_checksum_follows_request_then_source(s3, s3_plain):
    bucket = new_bucket(s3_plain)
    data = b"copied content" * 64
    s3_plain.put_object(Bucket=bucket, Key="src", Body=data)
    copied = s3_plain.copy_object(Bucket=bucket, Key="sha", ChecksumAlgorithm="SHA256",
                                  CopySource={"Bucket": bucket, "Key": "src"})
    sha = b64(hashlib.sha256(data).digest())
    assert copied["CopyObjectResult"]["ChecksumSHA256"] == sha
    assert copied["CopyObjectResult"]["ChecksumType"] == "FULL_OBJECT"
    assert head_checksum(s3_plain, bucket, "sha") == {
        "ChecksumSHA256": sha, "ChecksumType": "FULL_OBJECT"}
    # No algorithm named: the source's algorithm, computed over the copy's content.
    copied = s3_plain.copy_object(Bucket=bucket, Key="plain",
                                  CopySource={"Bucket": bucket, "Key": "src"})
    assert copied["CopyObjectResult"]["ChecksumCRC64NVME"] == crc64nvme_b64(data)
    # A composite (multipart SHA256) source copied whole becomes a full-object checksum.
    parts = two_parts(b"composite")
    up = s3.create_multipart_upload(Bucket=bucket, Key="comp", ChecksumAlgorithm="SHA256")
    done = []
    for i, p in enumerate(parts, start=1):
        r = s3.upload_part(Bucket=bucket, Key="comp", UploadId=up["UploadId"], PartNumber=i,
                           Body=p, ChecksumAlgorithm="SHA256")
        done.append({"PartNumber": i, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
    s3.complete_multipart_upload(Bucket=bucket, Key="comp", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": done})
    comp = head_checksum(s3, bucket, "comp")
    assert comp["ChecksumType"] == "COMPOSITE" and comp["ChecksumSHA256"].endswith("-2")
    s3.copy_object(Bucket=bucket, Key="comp-copy", CopySource={"Bucket": bucket, "Key": "comp"})
    assert head_checksum(s3, bucket, "comp-copy") == {
        "ChecksumSHA256": b64(hashlib.sha256(b"".join(parts)).digest()),
        "ChecksumType": "FULL_OBJECT"}


def test_versions_keep_their_own_checksums(s3_plain):
    bucket = new_bucket(s3_plain, versioned=True)
    v1 = s3_plain.put_object(Bucket=bucket, Key="k", Body=b"first")["VersionId"]
    v2 = s3_plain.put_object(Bucket=bucket, Key="k", Body=b"second")["VersionId"]
    assert head_checksum(s3_plain, bucket, "k", VersionId=v1)["ChecksumCRC64NVME"] == \
        crc64nvme_b64(b"first")
    assert head_checksum(s3_plain, bucket, "k", VersionId=v2)["ChecksumCRC64NVME"] == \
        crc64nvme_b64(b"second")


# --- 5. Conditional writes ------------------------------------------------------------------


def status_of(call) -> int:
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_put_and_complete_if_none_match_and_if_match(s3):
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"1", IfNoneMatch="*")
    assert status_of(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"2",
                                           IfNoneMatch="*")) == 412
    assert status_of(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"2",
                                           IfMatch='"0123456789abcdef0123456789abcdef"')) == 412
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")
    r = s3.upload_part(Bucket=bucket, Key="k", UploadId=up["UploadId"], PartNumber=1, Body=b"x")
    parts = {"Parts": [{"PartNumber": 1, "ETag": r["ETag"]}]}
    assert status_of(lambda: s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=up["UploadId"], MultipartUpload=parts,
        IfNoneMatch="*")) == 412
    assert status_of(lambda: s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=up["UploadId"], MultipartUpload=parts,
        IfMatch='"0123456789abcdef0123456789abcdef"')) == 412
    current = s3.head_object(Bucket=bucket, Key="k")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=up["UploadId"],
                                 MultipartUpload=parts, IfMatch=current)


def test_copy_if_none_match_star_onto_existing_key_fails(s3):
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="src", Body=b"new")
    s3.put_object(Bucket=bucket, Key="dst", Body=b"authoritative")
    assert status_of(lambda: s3.copy_object(
        Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
        IfNoneMatch="*")) == 412
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"authoritative"
    s3.copy_object(Bucket=bucket, Key="fresh", CopySource={"Bucket": bucket, "Key": "src"},
                   IfNoneMatch="*")


def test_copy_source_if_match_is_checked(s3):
    bucket = new_bucket(s3)
    src_etag = s3.put_object(Bucket=bucket, Key="src", Body=b"v1")["ETag"]
    s3.put_object(Bucket=bucket, Key="src", Body=b"v2")  # the source moved on
    assert status_of(lambda: s3.copy_object(
        Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceIfMatch=src_etag)) == 412
    current = s3.head_object(Bucket=bucket, Key="src")["ETag"]
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                   CopySourceIfMatch=current)
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"v2"


# --- 6. Expected bucket owner ---------------------------------------------------------------


def test_expected_bucket_owner_is_checked(s3):
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ExpectedBucketOwner=ACCOUNT)
    other = "111122223333"
    assert status_of(lambda: s3.get_object(Bucket=bucket, Key="k",
                                           ExpectedBucketOwner=other)) == 403
    assert status_of(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"y",
                                           ExpectedBucketOwner=other)) == 403
    assert status_of(lambda: s3.list_objects_v2(Bucket=bucket,
                                                ExpectedBucketOwner=other)) == 403
    assert status_of(lambda: s3.copy_object(
        Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "k"},
        ExpectedSourceBucketOwner=other)) == 403
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


# --- 7. Glue Data Catalog resources under IAM enforcement --------------------------------------


def test_glue_resource_arns_name_catalog_database_and_table():
    arns = local_aws.glue_resource_arns
    base = "arn:aws:glue:us-east-1:123456789012"
    assert arns("us-east-1", ACCOUNT, "GetTable", {"DatabaseName": "db", "Name": "t"}) == [
        f"{base}:catalog", f"{base}:database/db", f"{base}:table/db/t"]
    assert arns("us-east-1", ACCOUNT, "CreateTable", {"DatabaseName": "db", "TableInput": {"Name": "t"}})[-1] == (
        f"{base}:table/db/t")
    assert arns("us-east-1", ACCOUNT, "GetTables", {"DatabaseName": "db"})[-1] == f"{base}:table/db/*"
    assert arns("us-east-1", ACCOUNT, "CreateDatabase", {"DatabaseInput": {"Name": "db"}}) == [
        f"{base}:catalog", f"{base}:database/db"]
    assert arns("us-east-1", ACCOUNT, "GetDatabases", {}) == [f"{base}:catalog"]


def _reset_auth(endpoint: str, count: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=count.encode(),
                                     method="POST", headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=5):
        pass


def test_glue_policies_scoped_to_a_database_allow_it_and_nothing_else(endpoint):
    """A role scoped to one database (as the backup template scopes the verifier's and the
    restorer's Glue access) may act on it, and is refused elsewhere with Glue's own error."""
    admin_glue, iam = _client("glue", endpoint), _client("iam", endpoint)
    suffix = uuid.uuid4().hex[:8]
    mine, other = f"sales_{suffix}", f"hr_{suffix}"
    for db in (mine, other):
        admin_glue.create_database(DatabaseInput={"Name": db})
        admin_glue.create_table(DatabaseName=db, TableInput={
            "Name": "t", "StorageDescriptor": {"Location": f"s3://lake/{db}/t"}})
    user = f"glue-{suffix}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["glue:GetTable", "glue:DeleteTable"],
                       "Resource": ["arn:aws:glue:*:*:catalog", f"arn:aws:glue:*:*:database/{mine}",
                                    f"arn:aws:glue:*:*:table/{mine}/*"]}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    glue = boto3.client("glue", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key["AccessKeyId"],
                        aws_secret_access_key=key["SecretAccessKey"])
    _reset_auth(endpoint, "0")
    try:
        assert glue.get_table(DatabaseName=mine, Name="t")["Table"]["Name"] == "t"
        for call in (lambda: glue.get_table(DatabaseName=other, Name="t"),
                     lambda: glue.delete_table(DatabaseName=other, Name="t"),
                     lambda: glue.get_tables(DatabaseName=mine)):
            with pytest.raises(ClientError) as denied:
                call()
            assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
        glue.delete_table(DatabaseName=mine, Name="t")
    finally:
        _reset_auth(endpoint, "inf")
    assert [t["Name"] for t in admin_glue.get_tables(DatabaseName=other)["TableList"]] == ["t"]
    assert admin_glue.get_tables(DatabaseName=mine)["TableList"] == []


def test_sqs_batch_calls_are_authorized_by_their_single_action(endpoint):
    """As on AWS, sqs:SendMessage allows SendMessageBatch and sqs:DeleteMessage allows
    DeleteMessageBatch (moto asked for actions named after the batch calls)."""
    admin_sqs, iam = _client("sqs", endpoint), _client("iam", endpoint)
    suffix = uuid.uuid4().hex[:8]
    url = admin_sqs.create_queue(QueueName=f"q-{suffix}")["QueueUrl"]
    arn = admin_sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    user = f"sqs-{suffix}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow",
                       "Action": ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage"],
                       "Resource": arn}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id=key["AccessKeyId"],
                       aws_secret_access_key=key["SecretAccessKey"])
    _reset_auth(endpoint, "0")
    try:
        sent = sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": "a", "MessageBody": "1"}, {"Id": "b", "MessageBody": "2"}])
        assert len(sent.get("Successful", [])) == 2, sent
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        deleted = sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
        assert len(deleted.get("Successful", [])) == len(got)
        with pytest.raises(ClientError):
            sqs.purge_queue(QueueUrl=url)  # not granted: still refused
    finally:
        _reset_auth(endpoint, "inf")


def test_sqs_messages_wait_for_the_poller_not_the_dead_letter_queue(endpoint):
    """An enabled SQS event source mapping does not consume the queue on send: moto invoked the
    function inside each send, failed without a container runtime, and counted every attempt as
    a receive, so the first messages of a batch went to the dead-letter queue unprocessed."""
    import io
    import zipfile

    sqs, lam, iam = (_client(name, endpoint) for name in ("sqs", "lambda", "iam"))
    suffix = uuid.uuid4().hex[:8]
    dlq = sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=f"work-{suffix}", Attributes={
        "VisibilityTimeout": "900",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    role = iam.create_role(RoleName=f"fn-{suffix}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\n")
    lam.create_function(FunctionName=f"fn-{suffix}", Runtime="provided.al2023", Role=role,
                        Handler="bootstrap", Code={"ZipFile": code.getvalue()})
    mapping = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=f"fn-{suffix}",
                                              BatchSize=4, FunctionResponseTypes=["ReportBatchItemFailures"])
    assert lam.get_event_source_mapping(UUID=mapping["UUID"])["EventSourceArn"] == arn
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(10)])
    dead = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
    assert dead["Attributes"]["ApproximateNumberOfMessages"] == "0"
    bodies = []
    for _ in range(3):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                  AttributeNames=["ApproximateReceiveCount"]).get("Messages", [])
        bodies += [m["Body"] for m in got]
        assert [m["Attributes"]["ApproximateReceiveCount"] for m in got] == ["1"] * len(got)
    assert sorted(bodies) == sorted(f"m{i}" for i in range(10))
