#!/usr/bin/env python3
"""The local AWS: moto in server mode, patched where S3's real behaviour decides correctness.

Usage (from the project venv)::

    .venv/bin/python scripts/local_aws.py [--host 127.0.0.1] [--port PORT]

It serves exactly what ``moto_server -H HOST -p PORT`` serves (S3, SQS, STS, IAM,
CloudFormation, ``/moto-api/`` ...), in the foreground, until SIGTERM/SIGINT. A parent starts
it, waits for ``GET /moto-api/`` to answer, and kills it. Every patch is applied in-process to
moto's S3 model and response classes before the server starts; moto 5.2.5 is the version they
were written against (``moto.__version__`` is checked: another version prints a warning).

Each patch is named. All are on by default. For diagnosis only, switch patches off with
``LOCAL_AWS_PATCHES_OFF`` (comma-separated names, or ``all``), e.g.
``LOCAL_AWS_PATCHES_OFF=kms_etags,notifications``. The server prints the active patches on
start ("local_aws: patches on: ...").

Patches
-------
``kms_etags``
    Objects stored under SSE-KMS (``x-amz-server-side-encryption: aws:kms`` or ``aws:kms:dsse``
    on the request, or the bucket's default encryption) get ETags that are not the MD5 of their
    content: 32 random hex characters per write (``<random>-N`` for multipart uploads; upload
    parts under KMS too). S3 documents that SSE-KMS ETags are not an MD5 digest of the object
    data. Applies to PutObject, CopyObject, UploadPart(Copy) and CompleteMultipartUpload;
    CreateMultipartUpload takes the bucket's default encryption as S3 does.
``copy_single_part``
    CopyObject produces a new single-part object: its ETag is the MD5 of the content (or
    non-MD5 under KMS) and it has no parts (moto kept the source's multipart layout, so
    ``HeadObject(PartNumber=1)`` on a copy reported the source's ``x-amz-mp-parts-count``).
``notifications``
    S3 event notification records (SQS, SNS, Lambda) carry ``versionId`` (versioned buckets)
    and a ``sequencer`` (18 upper-case hex digits, increasing across all events of the server,
    the same for every destination of one event); the key is form-encoded as S3 does it
    (``quote_plus`` keeping ``/``: a space is ``+``, ``=`` is ``%3D``; moto encoded ``/`` as
    ``%2F``); ``userIdentity``/``requestParameters``/``responseElements`` are present; delete
    records have no size/eTag. In versioned buckets a DeleteObject without a version sends
    ``ObjectRemoved:DeleteMarkerCreated`` (moto sent nothing) and deleting a specific version
    sends ``ObjectRemoved:Delete`` with that ``versionId`` (moto sent it only when the last
    version went). EventBridge events get an increasing ``sequencer`` instead of moto's
    constant one. (moto 5.2.5 already sends ``ObjectCreated:Copy`` and
    ``ObjectCreated:CompleteMultipartUpload``.)
``checksums``
    Checksums as S3 computes them. CRC64NVME and CRC32C are implemented here (moto without
    ``awscrt``/``crc32c`` silently used CRC32 for both). Every new object gets a checksum:
    the algorithm the writer named (``x-amz-sdk-checksum-algorithm``, an ``x-amz-checksum-*``
    header, or an ``x-amz-trailer``), else CRC64NVME; PutObject checksums are FULL_OBJECT.
    Multipart uploads: CRC64NVME (the default) is FULL_OBJECT; other algorithms follow the
    upload's ``x-amz-checksum-type`` (default COMPOSITE, ``<value>-N``). CopyObject gives the
    copy a FULL_OBJECT checksum over its content with the algorithm the request names
    (``x-amz-checksum-algorithm``), else the source's algorithm, else CRC64NVME; the
    CopyObjectResult carries ``ChecksumType``. HeadObject/GetObject with ``ChecksumMode=ENABLED``
    return ``x-amz-checksum-<algo>`` and ``x-amz-checksum-type``; PutObject returns the stored
    checksum. The stored value is always computed from the stored bytes, so the same bytes
    have the same checksum whatever the encryption or part layout. Each version keeps its
    own. Values are computed lazily (first use) and cached per version.
``conditional_writes``
    CopyObject honours ``If-None-Match: *`` and ``If-Match`` on the destination, and
    ``x-amz-copy-source-if-match`` / ``-if-unmodified-since`` / ``-if-modified-since`` on
    the source (moto checked only ``x-amz-copy-source-if-none-match``); CompleteMultipartUpload
    honours ``If-Match``. 412 PreconditionFailed as S3. (moto 5.2.5 already does PutObject
    ``If-None-Match: *`` / ``If-Match`` and CompleteMultipartUpload ``If-None-Match: *``.)
``expected_bucket_owner``
    ``x-amz-expected-bucket-owner`` (and ``x-amz-source-expected-bucket-owner`` on copies)
    naming another account than the bucket's owner gives 403 AccessDenied (moto ignored it).
``glue_resources``
    With IAM enforcement on, a Glue Data Catalog request is authorized against the resources
    IAM names for it, each of which the caller's policies must allow: the catalog
    (``arn:aws:glue:REGION:ACCOUNT:catalog``), the database (``.../database/DB``) and, for a
    table request, the table (``.../table/DB/NAME``; ``.../table/DB/*`` for ``GetTables``).
    moto checked every Glue action against the resource ``*``, so a policy scoped to databases
    (as the backup template's verifier and restorer policies are) allowed nothing. Denials
    come back as Glue's JSON ``AccessDeniedException``, not moto's XML.
``iam_batch_actions``
    SQS batch calls are authorized by their single action's permission, as on AWS
    (``SendMessageBatch`` by ``sqs:SendMessage``, ``DeleteMessageBatch`` by
    ``sqs:DeleteMessage``, ``ChangeMessageVisibilityBatch`` by ``sqs:ChangeMessageVisibility``);
    moto asked IAM for actions named after the batch calls, which no policy can grant.

``sqs_event_source_mappings``
    An SQS event source mapping is created and listed as before, but sending a message no
    longer makes moto receive and invoke the function inside the send. moto has no container
    runtime here, so every such invocation failed, yet each attempt counted as a receive: after
    ``maxReceiveCount`` sends the queue's first messages went to the dead-letter queue without
    ever reaching a handler. On AWS the Lambda poller receives and the function runs; a message
    reaches the dead-letter queue only after the function failed it ``maxReceiveCount`` times.
    Here the harness is the poller (``lifeboat_cli::queue``).

What stays unpatched is listed in tests/local_aws/GAPS.md, with how the tests cover it.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import itertools
import json
import os
import re
import sys
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any, Callable
from urllib.parse import parse_qs, quote_plus, unquote, urlparse

import moto
from moto.s3 import models as s3_models
from moto.s3 import notifications as s3_notifications
from moto.s3 import responses as s3_responses
from moto.s3 import utils as s3_utils
from moto.s3.exceptions import PreconditionFailed

MOTO_VERSION = "5.2.5"
PATCHES = (
    "kms_etags",
    "copy_single_part",
    "notifications",
    "checksums",
    "conditional_writes",
    "expected_bucket_owner",
    "glue_resources",
    "iam_batch_actions",
    "sqs_event_source_mappings",
)
KMS = ("aws:kms", "aws:kms:dsse")

# ---------------------------------------------------------------------------------------------
# CRCs (reflected, table driven; numpy computes long inputs in parallel chunks and combines).
# ---------------------------------------------------------------------------------------------


class ReflectedCrc:
    """A reflected CRC with init and xorout all ones (CRC64NVME, CRC32C)."""

    def __init__(self, width: int, poly_reflected: int):
        self.width = width
        self.mask = (1 << width) - 1
        table = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ poly_reflected if c & 1 else c >> 1
            table.append(c)
        self.table = table
        self._np_table = None
        self._shift_tables: dict[int, Any] = {}
        self._lock = threading.Lock()

    def _update_py(self, crc: int, data: bytes | memoryview) -> int:
        table = self.table
        for b in data:
            crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
        return crc

    def digest(self, data: bytes) -> int:
        """The CRC of data (init and xorout applied)."""
        crc = self._update(self.mask, memoryview(data))
        return crc ^ self.mask

    def _update(self, crc: int, data: memoryview) -> int:
        n = len(data)
        chunk = 4096 if n >= (1 << 20) else 512
        if n < 8 * chunk:
            return self._update_py(crc, data)
        try:
            import numpy as np
        except ImportError:  # pragma: no cover - numpy comes with pyarrow/pandas
            return self._update_py(crc, data)
        head = n % chunk
        crc = self._update_py(crc, data[:head])
        # Transposed, so that each step reads one contiguous row (byte j of every chunk).
        body = np.ascontiguousarray(
            np.frombuffer(data[head:], dtype=np.uint8).reshape(-1, chunk).T
        )
        dtype = np.uint64 if self.width == 64 else np.uint32
        with self._lock:
            if self._np_table is None:
                self._np_table = np.array(self.table, dtype=dtype)
            shift = self._shift_tables.get(chunk)
            if shift is None:
                shift = self._shift_tables[chunk] = [
                    [int(v) for v in t] for t in self._make_shift(np, dtype, chunk)
                ]
        table = self._np_table
        eight = dtype(8)
        low = dtype(0xFF)
        # The raw CRC (zero init) of every chunk at once, column by column.
        state = np.zeros(body.shape[1], dtype=dtype)
        for j in range(chunk):
            idx = (state & low) ^ body[j]
            state = table[idx] ^ (state >> eight)
        # Combine: crc(A || B) = shift_len(B)(crc(A)) xor rawcrc(B).
        tabs = shift
        nbytes = self.width // 8
        for g in state.tolist():
            s = 0
            for k in range(nbytes):
                s ^= tabs[k][(crc >> (8 * k)) & 0xFF]
            crc = s ^ g
        return crc

    def _make_shift(self, np: Any, dtype: Any, length: int) -> list:
        """Tables for the linear map 'feed `length` zero bytes': one table per state byte."""
        nbytes = self.width // 8
        states = np.array(
            [v << (8 * k) for k in range(nbytes) for v in range(256)], dtype=dtype
        )
        table = np.array(self.table, dtype=dtype)
        eight = dtype(8)
        low = dtype(0xFF)
        for _ in range(length):
            states = table[states & low] ^ (states >> eight)
        return [states[k * 256 : (k + 1) * 256] for k in range(nbytes)]


CRC64NVME = ReflectedCrc(64, 0x9A6C9329AC4BC9B5)  # reflected form of 0xad93d23594c93659
CRC32C = ReflectedCrc(32, 0x82F63B78)


def checksum_bytes(data: bytes, algorithm: str) -> bytes:
    algorithm = algorithm.upper()
    if algorithm == "CRC64NVME":
        return CRC64NVME.digest(data).to_bytes(8, "big")
    if algorithm == "CRC32C":
        return CRC32C.digest(data).to_bytes(4, "big")
    if algorithm == "CRC32":
        return binascii.crc32(data).to_bytes(4, "big")
    if algorithm == "SHA1":
        return hashlib.sha1(data).digest()
    if algorithm == "SHA256":
        return hashlib.sha256(data).digest()
    if algorithm == "SHA512":
        return hashlib.sha512(data).digest()
    if algorithm == "MD5":
        return hashlib.md5(data).digest()
    raise ValueError(f"unsupported checksum algorithm {algorithm}")


def checksum_b64(data: bytes, algorithm: str) -> str:
    return base64.b64encode(checksum_bytes(data, algorithm)).decode()


def compute_checksum(body: bytes, algorithm: str, encode_base64: bool = True) -> bytes:
    """moto.s3.utils.compute_checksum with real CRC64NVME/CRC32C."""
    raw = checksum_bytes(body, algorithm or "SHA256")
    return base64.b64encode(raw) if encode_base64 else raw


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------

_local = threading.local()
_ALGORITHMS = ("CRC64NVME", "CRC32C", "CRC32", "SHA256", "SHA1", "SHA512", "MD5")


def _random_etag() -> str:
    return os.urandom(16).hex()


def _latest_key(backend: Any, bucket_name: str, key_name: str) -> Any:
    bucket = backend.get_bucket(bucket_name)
    key = bucket.keys.get(key_name)
    return key if isinstance(key, s3_models.FakeKey) else None


def _set_lazy_checksum(key: Any, algorithm: str) -> None:
    """The key's checksum: FULL_OBJECT, computed from its bytes on first use."""
    key.checksum_algorithm = algorithm
    key.checksum_type = "FULL_OBJECT"
    key.checksum_parts = None
    key.__dict__["_lb_checksum_value"] = None
    key.__dict__["_lb_checksum_lazy"] = True


def _checksum_value_get(self: Any) -> Any:
    d = self.__dict__
    value = d.get("_lb_checksum_value")
    if value is None and d.get("_lb_checksum_lazy"):
        value = checksum_b64(self.value, self.checksum_algorithm)
        d["_lb_checksum_value"] = value
        d["_lb_checksum_lazy"] = False
    return value


def _checksum_value_set(self: Any, value: Any) -> None:
    self.__dict__["_lb_checksum_value"] = value
    self.__dict__["_lb_checksum_lazy"] = False


def _algorithm_from_headers(headers: Any) -> str | None:
    algo = headers.get("x-amz-sdk-checksum-algorithm")
    if algo:
        return algo.upper()
    for name in _ALGORITHMS:
        if headers.get(f"x-amz-checksum-{name.lower()}"):
            return name
    trailer = (headers.get("x-amz-trailer") or "").lower()
    for name in _ALGORITHMS:
        if trailer == f"x-amz-checksum-{name.lower()}":
            return name
    return None


def _etag_matches(condition: str, etag: str) -> bool:
    etag = etag.strip('"')
    return any(c.strip().strip('"') in (etag, "*") for c in condition.split(","))


def _http_date(value: str) -> Any:
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _copy_source(headers: Any) -> tuple[str, str, str | None]:
    copy_source = headers.get("x-amz-copy-source")
    if isinstance(copy_source, bytes):
        copy_source = copy_source.decode("utf-8")
    parsed = urlparse(copy_source)
    src_bucket, src_key = unquote(parsed.path).lstrip("/").split("/", 1)
    version = parse_qs(parsed.query).get("versionId", [None])[0]
    return src_bucket, src_key, version


# ---------------------------------------------------------------------------------------------
# Patches
# ---------------------------------------------------------------------------------------------


def patch_kms_etags() -> None:
    Backend = s3_models.S3Backend
    orig_put_object = Backend.put_object
    orig_create_mpu = Backend.create_multipart_upload
    orig_set_part = s3_models.FakeMultipart.set_part

    def put_object(self: Any, *args: Any, **kwargs: Any) -> Any:
        key = orig_put_object(self, *args, **kwargs)
        if key.encryption in KMS:
            etag = (kwargs.get("etag") or "").strip('"')
            suffix = etag[etag.index("-") :] if "-" in etag else ""
            key._etag = _random_etag() + suffix
        return key

    def create_multipart_upload(
        self: Any, bucket_name: str, key_name: str, metadata: Any, storage_type: str,
        tags: Any, acl: Any, sse_encryption: str, kms_key_id: str,
    ) -> Any:
        bucket = self.get_bucket(bucket_name)
        if not sse_encryption and bucket.encryption:
            default = bucket.encryption["Rule"]["ApplyServerSideEncryptionByDefault"]
            sse_encryption = default["SSEAlgorithm"]
            kms_key_id = kms_key_id or default.get("KMSMasterKeyID")
        return orig_create_mpu(
            self, bucket_name, key_name, metadata, storage_type, tags, acl,
            sse_encryption, kms_key_id,
        )

    def set_part(self: Any, part_id: int, value: bytes) -> Any:
        key = orig_set_part(self, part_id, value)
        if self.sse_encryption in KMS:
            key._etag = _random_etag()
        return key

    Backend.put_object = put_object
    Backend.create_multipart_upload = create_multipart_upload
    s3_models.FakeMultipart.set_part = set_part


def patch_copy_single_part() -> None:
    Backend = s3_models.S3Backend
    orig = Backend.copy_object

    def copy_object(self: Any, src_key: Any, dest_bucket_name: str, dest_key_name: str,
                    *args: Any, **kwargs: Any) -> Any:
        result = orig(self, src_key, dest_bucket_name, dest_key_name, *args, **kwargs)
        new_key = _latest_key(self, dest_bucket_name, dest_key_name)
        if new_key is not None:
            new_key.multipart = None
            if new_key.encryption not in KMS:
                new_key._etag = None  # recomputed: the MD5 of the content
        return result

    Backend.copy_object = copy_object


_sequencer = itertools.count(time.time_ns() // 1000)
_sequencer_lock = threading.Lock()


def _next_sequencer() -> str:
    with _sequencer_lock:
        return f"{next(_sequencer):018X}"


def patch_notifications() -> None:
    orig_send_event = s3_notifications.send_event

    def send_event(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
        if getattr(_local, "suppress_events", False) or key is None:
            return
        if event_name in getattr(_local, "drop_events", ()):
            return
        previous = getattr(_local, "sequencer", None)
        _local.sequencer = _next_sequencer()
        try:
            orig_send_event(account_id, event_name, bucket, key)
        finally:
            _local.sequencer = previous

    def get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict:
        name = event_name[3:] if event_name.startswith("s3:") else event_name
        obj: dict[str, Any] = {"key": quote_plus(key.name, safe="/")}
        if not name.startswith("ObjectRemoved") and hasattr(key, "size"):
            obj["size"] = key.size
            obj["eTag"] = key.etag.replace('"', "")
        if bucket.is_versioned or key.version_id not in (None, "null"):
            obj["versionId"] = key.version_id
        obj["sequencer"] = getattr(_local, "sequencer", None) or _next_sequencer()
        return {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": bucket.region_name,
                    "eventTime": s3_notifications.iso_8601_datetime_with_milliseconds(),
                    "eventName": name,
                    "userIdentity": {"principalId": "AWS:AIDAMOTOLOCALAWS"},
                    "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                    "responseElements": {
                        "x-amz-request-id": os.urandom(8).hex().upper(),
                        "x-amz-id-2": base64.b64encode(os.urandom(48)).decode(),
                    },
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "configurationId": notification_id,
                        "bucket": {
                            "name": bucket.name,
                            "ownerIdentity": {"principalId": bucket.account_id},
                            "arn": bucket.arn,
                        },
                        "object": obj,
                    },
                }
            ]
        }

    orig_event_bridge = s3_notifications._send_event_bridge_message

    def send_event_bridge_message(account_id: str, bucket: Any, event_name: str,
                                  key: Any) -> None:
        # moto's builder with its constant sequencer, then our sequencer in its place: the
        # events backend receives a dict, so rewrite it on the way through send_to_targets.
        try:
            from moto.events import models as events_models
        except Exception:  # pragma: no cover
            return orig_event_bridge(account_id, bucket, event_name, key)
        sequencer = getattr(_local, "sequencer", None) or _next_sequencer()
        Rule = events_models.Rule
        orig_send = Rule.send_to_targets

        def send_to_targets(rule: Any, event: dict, *a: Any, **kw: Any) -> Any:
            detail = event.get("detail") or {}
            obj = detail.get("object") if isinstance(detail, dict) else None
            if isinstance(obj, dict) and event.get("source") == "aws.s3":
                obj["sequencer"] = sequencer
                if not bucket.is_versioned and obj.get("version-id") in (None, "null"):
                    obj.pop("version-id", None)
                if str(event_name).startswith("s3:ObjectRemoved"):
                    obj.pop("size", None)
                    obj.pop("eTag", None)
                    detail["deletion-type"] = (
                        "Delete Marker Created"
                        if event_name.endswith("DeleteMarkerCreated")
                        else "Permanently Deleted"
                    )
            return orig_send(rule, event, *a, **kw)

        with _event_bridge_lock:
            Rule.send_to_targets = send_to_targets
            try:
                orig_event_bridge(account_id, bucket, event_name, key)
            finally:
                Rule.send_to_targets = orig_send

    Backend = s3_models.S3Backend
    orig_delete = Backend.delete_object

    def delete_object(self: Any, bucket_name: str, key_name: str,
                      version_id: str | None = None, bypass: bool = False) -> Any:
        bucket = self.get_bucket(bucket_name)
        if not bucket.is_versioned:
            return orig_delete(self, bucket_name, key_name, version_id, bypass)
        target = None
        if version_id is not None:
            for k in bucket.keys.getlist(key_name, []):
                if str(k.version_id) == str(version_id):
                    target = k
        _local.suppress_events = True
        try:
            result = orig_delete(self, bucket_name, key_name, version_id, bypass)
        finally:
            _local.suppress_events = False
        Event = s3_notifications.S3NotificationEvent
        if version_id is None:
            marker = bucket.keys.get(key_name)
            if isinstance(marker, s3_models.FakeDeleteMarker):
                s3_notifications.send_event(
                    self.account_id, Event.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT,
                    bucket, marker,
                )
        elif target is not None and result[0]:
            s3_notifications.send_event(
                self.account_id, Event.OBJECT_REMOVED_DELETE_EVENT, bucket, target
            )
        return result

    # S3 sends one event per write: no ObjectTagging:Put for the tags a PutObject, CopyObject
    # or CompleteMultipartUpload sets, and no ObjectCreated:Put besides the
    # CompleteMultipartUpload event (moto sent both from its internal calls).
    Event = s3_notifications.S3NotificationEvent

    def dropping(orig: Callable, names: tuple) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            previous = getattr(_local, "drop_events", ())
            _local.drop_events = tuple(previous) + names
            try:
                return orig(*args, **kwargs)
            finally:
                _local.drop_events = previous
        return wrapper

    tagging = (Event.OBJECT_TAGGING_PUT_EVENT,)
    Response = s3_responses.S3Response
    Response.put_object = dropping(Response.put_object, tagging)
    Response.copy_object = dropping(Response.copy_object, tagging)
    Backend.complete_multipart_upload = dropping(
        Backend.complete_multipart_upload, tagging + (Event.OBJECT_CREATED_PUT_EVENT,)
    )

    s3_notifications.send_event = send_event
    s3_notifications._get_s3_event = get_s3_event
    s3_notifications._send_event_bridge_message = send_event_bridge_message
    Backend.delete_object = delete_object


_event_bridge_lock = threading.RLock()


def patch_checksums() -> None:
    # Real CRC64NVME/CRC32C wherever moto computes a checksum.
    for module in (s3_utils, s3_models, s3_responses):
        if hasattr(module, "compute_checksum"):
            module.compute_checksum = compute_checksum

    FakeKey = s3_models.FakeKey
    FakeKey.checksum_value = property(_checksum_value_get, _checksum_value_set)

    # Multipart FULL_OBJECT: computed lazily from the stored bytes, not from a copy of them.
    Builder = s3_models.MultipartChecksumBuilder
    orig_add_part = Builder.addPart
    orig_build = Builder.build

    def add_part(self: Any, part: bytes) -> None:
        if self.checksum_type == "COMPOSITE":
            return orig_add_part(self, part)
        self.part_count += 1

    def build(self: Any) -> Any:
        if self.checksum_type == "COMPOSITE":
            return orig_build(self)
        return (self.checksum_type, None, 1)

    Builder.addPart = add_part
    Builder.build = build

    Backend = s3_models.S3Backend
    orig_complete = Backend.complete_multipart_upload

    def complete_multipart_upload(self: Any, bucket_name: str, multipart_id: str,
                                  body: Any) -> Any:
        multipart = self.get_bucket(bucket_name).multiparts.get(multipart_id)
        key = orig_complete(self, bucket_name, multipart_id, body)
        if key is None or multipart is None:
            return key
        algo = (multipart.metadata.get("x-amz-checksum-algorithm") or "CRC64NVME").upper()
        ctype = (multipart.metadata.get("x-amz-checksum-type") or "").upper()
        if not ctype:
            ctype = "FULL_OBJECT" if algo == "CRC64NVME" else "COMPOSITE"
        if ctype == "FULL_OBJECT":
            _set_lazy_checksum(key, algo)
        else:
            key.checksum_algorithm = algo
            key.checksum_type = "COMPOSITE"
        return key

    Backend.complete_multipart_upload = complete_multipart_upload

    orig_copy = Backend.copy_object

    def copy_object(self: Any, src_key: Any, dest_bucket_name: str, dest_key_name: str,
                    *args: Any, **kwargs: Any) -> Any:
        result = orig_copy(self, src_key, dest_bucket_name, dest_key_name, *args, **kwargs)
        new_key = _latest_key(self, dest_bucket_name, dest_key_name)
        if new_key is not None:
            algo = getattr(_local, "copy_checksum_algorithm", None)
            algo = algo or src_key.checksum_algorithm or "CRC64NVME"
            _set_lazy_checksum(new_key, algo.upper())
        return result

    Backend.copy_object = copy_object

    Response = s3_responses.S3Response
    orig_put = Response.put_object

    def put_object(self: Any) -> Any:
        status, headers, body = orig_put(self)
        if status == 200:
            key = _latest_key(self.backend, self.bucket_name, self.parse_key_name())
            if key is not None:
                algo = _algorithm_from_headers(self.headers) or "CRC64NVME"
                _set_lazy_checksum(key, algo)
                for h in [h for h in headers if h.lower().startswith("x-amz-checksum-")]:
                    headers.pop(h)
                headers[f"x-amz-checksum-{algo.lower()}"] = key.checksum_value
                headers["x-amz-checksum-type"] = "FULL_OBJECT"
        return status, headers, body

    Response.put_object = put_object

    orig_copy_resp = Response.copy_object

    def copy_object_response(self: Any) -> Any:
        algo = self.headers.get("x-amz-checksum-algorithm")
        _local.copy_checksum_algorithm = algo.upper() if algo else None
        try:
            status, headers, body = orig_copy_resp(self)
        finally:
            _local.copy_checksum_algorithm = None
        headers.pop("Checksum", None)  # moto put a dict there
        if status == 200 and isinstance(body, (str, bytes)):
            text = body.decode() if isinstance(body, bytes) else body
            if "<ChecksumType>" not in text and "<Checksum" in text:
                text = text.replace(
                    "</CopyObjectResult>", "<ChecksumType>FULL_OBJECT</ChecksumType></CopyObjectResult>"
                )
                body = text.encode() if isinstance(body, bytes) else text
                headers["content-length"] = str(len(body.encode() if isinstance(body, str) else body))
        return status, headers, body

    Response.copy_object = copy_object_response

    orig_head = Response.head_object

    def head_object(self: Any, bucket_name: str, query: dict, key_name: str,
                    headers: Any) -> Any:
        status, resp_headers, body = orig_head(self, bucket_name, query, key_name, headers)
        if status in (200, 206) and headers.get("x-amz-checksum-mode") == "ENABLED":
            version_id = query.get("versionId", [None])[0]
            key = self.backend.get_object(bucket_name, key_name, version_id=version_id)
            if key is not None and key.checksum_algorithm and key.checksum_value:
                for h in [h for h in resp_headers if h.lower().startswith("x-amz-checksum-")]:
                    resp_headers.pop(h)
                value = key.checksum_value
                if key.checksum_type == "COMPOSITE" and key.checksum_parts:
                    value = f"{value}-{key.checksum_parts}"
                resp_headers[f"x-amz-checksum-{key.checksum_algorithm.lower()}"] = value
                resp_headers["x-amz-checksum-type"] = key.checksum_type or "FULL_OBJECT"
        return status, resp_headers, body

    Response.head_object = head_object


def patch_conditional_writes() -> None:
    Response = s3_responses.S3Response
    orig_copy = Response.copy_object

    def copy_object(self: Any) -> Any:
        headers = self.headers
        src_bucket, src_key_name, src_version = _copy_source(headers)
        src = self.backend.get_object(src_bucket, src_key_name, version_id=src_version)
        if src is not None:
            cond = headers.get("x-amz-copy-source-if-match")
            if cond and not _etag_matches(cond, src.etag):
                raise PreconditionFailed("x-amz-copy-source-If-Match")
            since = headers.get("x-amz-copy-source-if-unmodified-since")
            when = _http_date(since) if since else None
            if when is not None and not cond and src.last_modified.replace(microsecond=0) > when:
                raise PreconditionFailed("x-amz-copy-source-If-Unmodified-Since")
            since = headers.get("x-amz-copy-source-if-modified-since")
            when = _http_date(since) if since else None
            if (when is not None and "x-amz-copy-source-if-none-match" not in headers
                    and src.last_modified.replace(microsecond=0) <= when):
                raise PreconditionFailed("x-amz-copy-source-If-Modified-Since")
        dest_name = self.parse_key_name()
        existing = self.backend.get_object(self.bucket_name, dest_name)
        if_none_match = headers.get("If-None-Match")
        if if_none_match == "*" and existing is not None:
            raise PreconditionFailed("If-None-Match")
        if_match = headers.get("If-Match")
        if if_match:
            if existing is None:
                raise s3_responses.MissingKey(key=dest_name)
            if not _etag_matches(if_match, existing.etag):
                raise PreconditionFailed("If-Match")
        return orig_copy(self)

    Response.copy_object = copy_object

    orig_post = Response._key_response_post

    def key_response_post(self: Any, request: Any, body: bytes, bucket_name: str,
                          query: dict, key_name: str) -> Any:
        if_match = request.headers.get("If-Match")
        if query.get("uploadId") and if_match:
            existing = self.backend.get_object(bucket_name, key_name)
            same_upload = (existing is not None and existing.multipart is not None
                           and existing.multipart.id == query["uploadId"][0])
            if not same_upload:
                if existing is None:
                    raise s3_responses.MissingKey(key=key_name)
                if not _etag_matches(if_match, existing.etag):
                    raise PreconditionFailed("If-Match")
        return orig_post(self, request, body, bucket_name, query, key_name)

    Response._key_response_post = key_response_post


def _access_denied() -> tuple[int, dict, str]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        "<Message>Access Denied</Message><RequestId>LOCALAWS</RequestId></Error>"
    )
    return 403, {"content-type": "application/xml"}, body


def patch_expected_bucket_owner() -> None:
    Response = s3_responses.S3Response

    def owner_mismatch(self: Any, request: Any, full_url: str) -> bool:
        expected = request.headers.get("x-amz-expected-bucket-owner")
        if expected:
            try:
                name = self.parse_bucket_name_from_url(request, full_url)
                bucket = self.backend.get_bucket(name) if name else None
            except Exception:
                bucket = None
            if bucket is not None and bucket.account_id != expected:
                return True
        expected = request.headers.get("x-amz-source-expected-bucket-owner")
        if expected and request.headers.get("x-amz-copy-source"):
            try:
                src_bucket, _, _ = _copy_source(request.headers)
                bucket = self.backend.get_bucket(src_bucket)
            except Exception:
                bucket = None
            if bucket is not None and bucket.account_id != expected:
                return True
        return False

    orig_key = Response._key_response
    orig_bucket = Response._bucket_response

    def key_response(self: Any, request: Any, full_url: str) -> Any:
        if owner_mismatch(self, request, full_url):
            return _access_denied()
        return orig_key(self, request, full_url)

    def bucket_response(self: Any, request: Any, full_url: str) -> Any:
        if owner_mismatch(self, request, full_url):
            return _access_denied()
        return orig_bucket(self, request, full_url)

    Response._key_response = key_response
    Response._bucket_response = bucket_response


def glue_resource_arns(region: str, account: str, action: str, params: dict) -> list[str]:
    """The resources IAM authorizes a Glue Data Catalog request against (catalog, database,
    table), from the request's parameters."""
    base = f"arn:aws:glue:{region}:{account}"
    arns = [f"{base}:catalog"]
    database = params.get("DatabaseName")
    if action in ("CreateDatabase", "UpdateDatabase"):
        database = (params.get("DatabaseInput") or {}).get("Name") or params.get("Name")
    elif action in ("GetDatabase", "DeleteDatabase"):
        database = params.get("Name")
    if not database:
        return arns
    arns.append(f"{base}:database/{database}")
    table = params.get("Name") or params.get("TableName")
    if action in ("CreateTable", "UpdateTable"):
        table = (params.get("TableInput") or {}).get("Name")
    elif action in ("GetTables", "BatchDeleteTable", "SearchTables"):
        table = "*"
    if table and action not in ("CreateDatabase", "UpdateDatabase", "GetDatabase", "DeleteDatabase"):
        arns.append(f"{base}:table/{database}/{table}")
    return arns


def patch_glue_resources() -> None:
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.glue.responses import GlueResponse
    from moto.iam.access_control import IAMRequest
    from moto import settings

    def authorize(self: Any, resource: str = "*") -> None:
        enforced = ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT
        if not enforced:
            return self._authenticate_and_authorize_action(IAMRequest, resource)
        try:
            params = json.loads(self.body or "{}")
        except ValueError:
            params = {}
        for arn in glue_resource_arns(self.region, self.current_account, self._get_action(), params):
            self._authenticate_and_authorize_action(IAMRequest, arn)

    orig_call = GlueResponse.call_action

    def call_action(self: Any) -> Any:
        response = orig_call(self)
        status, headers, body = response
        text = body.decode() if isinstance(body, bytes) else str(body)
        if status == 403 and "<Code>AccessDenied</Code>" in text:
            message = re.search(r"<Message>(.*?)</Message>", text)
            body = json.dumps({"__type": "AccessDeniedException",
                               "message": message.group(1) if message else "Access denied"})
            headers = dict(headers)
            headers["content-type"] = "application/x-amz-json-1.1"
            headers.pop("Content-Length", None)
            headers.pop("content-length", None)
            return status, headers, body
        return response

    GlueResponse._authenticate_and_authorize_normal_action = authorize
    GlueResponse.call_action = call_action


# SQS's batch actions are authorized by the permission of their single action (AWS: "the
# permission for SendMessageBatch is sqs:SendMessage", and so for DeleteMessageBatch and
# ChangeMessageVisibilityBatch); moto asks IAM for an action named after the batch call, which
# no policy can grant.
IAM_ACTION_OF = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}


def patch_iam_batch_actions() -> None:
    from moto.iam.access_control import IAMRequestBase

    orig_init = IAMRequestBase.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        orig_init(self, *args, **kwargs)
        self._action = IAM_ACTION_OF.get(self._action, self._action)

    IAMRequestBase.__init__ = init


def patch_sqs_event_source_mappings() -> None:
    from moto.awslambda.models import LambdaBackend
    from moto.sqs.models import sqs_backends

    orig_create = LambdaBackend.create_event_source_mapping

    def create(self: Any, spec: dict[str, Any]) -> Any:
        esm = orig_create(self, spec)
        # Unhook it from the queue's send path (the Lambda API still knows it).
        for queue in sqs_backends[self.account_id][self.region_name].queues.values():
            if queue.queue_arn == spec.get("EventSourceArn"):
                queue.lambda_event_source_mappings.pop(esm.function_arn, None)
        return esm

    LambdaBackend.create_event_source_mapping = create


APPLY: dict[str, Callable[[], None]] = {
    "kms_etags": patch_kms_etags,
    "copy_single_part": patch_copy_single_part,
    "notifications": patch_notifications,
    "checksums": patch_checksums,
    "conditional_writes": patch_conditional_writes,
    "expected_bucket_owner": patch_expected_bucket_owner,
    "glue_resources": patch_glue_resources,
    "iam_batch_actions": patch_iam_batch_actions,
    "sqs_event_source_mappings": patch_sqs_event_source_mappings,
}
_applied: list[str] = []


def enabled_patches(environ: dict | None = None) -> list[str]:
    environ = os.environ if environ is None else environ
    off = {p.strip() for p in environ.get("LOCAL_AWS_PATCHES_OFF", "").split(",") if p.strip()}
    unknown = off - set(PATCHES) - {"all"}
    if unknown:
        raise SystemExit(f"local_aws: unknown patch names in LOCAL_AWS_PATCHES_OFF: {sorted(unknown)}")
    if "all" in off:
        return []
    return [p for p in PATCHES if p not in off]


def apply_patches(names: list[str]) -> list[str]:
    """Apply the named patches once (idempotent per process)."""
    for name in names:
        if name not in _applied:
            APPLY[name]()
            _applied.append(name)
    return list(_applied)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)))
    args = parser.parse_args(argv)
    if moto.__version__ != MOTO_VERSION:
        print(f"local_aws: warning: patches written for moto {MOTO_VERSION}, "
              f"running {moto.__version__}", file=sys.stderr)
    names = apply_patches(enabled_patches())
    print(f"local_aws: patches on: {', '.join(names) or '(none)'}", file=sys.stderr, flush=True)
    from moto.server import main as moto_main

    moto_main(["-H", args.host, "-p", str(args.port)])


if __name__ == "__main__":
    main()
