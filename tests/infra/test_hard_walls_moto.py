"""The hard walls, live: both stacks deployed into moto (single account), bucket settings
applied from the template, IAM enforcement switched on, and every principal acting with its
own credentials (the roles through sts:AssumeRole).

What moto does not enforce is not pretended here (see test_policy_documents.py for those):
principals and conditions in bucket policies (a Deny applies to everyone, so the
"everyone but Lifeboat" wall is left out locally), DeleteObjects per action, copy-source read
checks, and the IAM names of PutObjectRetention / PutObjectLegalHold /
AbortMultipartUpload (moto checks them as PutObject / PutObject / DeleteObject).
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

import pytest
from botocore.exceptions import ClientError

import lifeboat_infra as infra

SOURCE = "lake"
BACKUP = "lifeboat-backup-walls"
SEED_KEY = "sales/_delta_log/00000000000000000000.json"  # in the source
SEED_BACKUP_KEY = f"{SOURCE}/{SEED_KEY}"  # its copy in the backup
RETENTION_DAYS = 3


def allow_all(actions: str, resources: list[str]) -> dict:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources}]}


def content_md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()


def checksum_header_on_copies(client) -> None:
    """moto refuses CopyObject into a bucket with default Object Lock retention unless the
    request names a checksum algorithm (AWS does not); the header changes nothing else."""
    def add(request, **_):
        request.headers["x-amz-sdk-checksum-algorithm"] = "CRC32"
    client.meta.events.register("before-sign.s3.CopyObject", add)
    client.meta.events.register("before-sign.s3.UploadPartCopy", add)


class Actor:
    """One principal's clients."""

    def __init__(self, name: str, session: infra.LocalSession):
        self.name = name
        self.s3 = session.client("s3")
        checksum_header_on_copies(self.s3)
        self.sqs = session.client("sqs")


@pytest.fixture(scope="module")
def world(moto, admin):
    deployed = infra.deploy_local_stacks(
        admin, stack_name="walls", source_buckets=[SOURCE], backup_bucket=BACKUP,
        backup_parameters={"ObjectLockRetentionDays": str(RETENTION_DAYS)},
    )
    out = deployed["backup"]["outputs"]
    iam = admin.client("iam")

    def user(name: str, policy: dict) -> dict:
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="access", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}

    # The source's own writer: everything on its bucket, nothing granted elsewhere.
    writer = user("etl-writer", allow_all("s3:*", [f"arn:aws:s3:::{SOURCE}", f"arn:aws:s3:::{SOURCE}/*"]))
    # An administrator of the account, for the Object Lock checks.
    account_admin = user("account-admin", allow_all("*", ["*"]))
    # The only thing this user may do is assume roles; the roles' own policies do the rest.
    assumer = user("role-assumer", allow_all("sts:AssumeRole", ["*"]))
    sts = admin.with_credentials(assumer).client("sts")
    roles = {}
    for role in ("Replicator", "Verifier", "Restorer", "BreakGlass"):
        creds = sts.assume_role(RoleArn=out[f"{role}RoleArn"], RoleSessionName=f"test-{role.lower()}")["Credentials"]
        roles[role] = {
            "aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        }

    # Seed: one object in the source, its copy in the backup, one compliance-locked version.
    s3 = admin.client("s3")
    body = b'{"commitInfo":{}}\n'
    s3.put_object(Bucket=SOURCE, Key=SEED_KEY, Body=body)
    s3.put_object(Bucket=BACKUP, Key=SEED_BACKUP_KEY, Body=body, ContentMD5=content_md5(body))
    locked = s3.put_object(
        Bucket=BACKUP, Key=f"{SOURCE}/compliance/part-0.parquet", Body=b"PAR1", ContentMD5=content_md5(b"PAR1"),
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1),
    )

    # The bucket default is COMPLIANCE; an explicitly GOVERNANCE-locked version too.
    governed = s3.put_object(
        Bucket=BACKUP, Key=f"{SOURCE}/governance/part-0.parquet", Body=b"PAR1", ContentMD5=content_md5(b"PAR1"),
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1),
    )

    applied_policy = s3.get_bucket_policy(Bucket=BACKUP)["Policy"]

    moto.set_auth(enforce=True)
    try:
        actors = {
            "writer": Actor("source writer", admin.with_credentials(writer)),
            "admin": Actor("account admin", admin.with_credentials(account_admin)),
            "replicator": Actor("replicator", admin.with_credentials(roles["Replicator"])),
            "verifier": Actor("verifier", admin.with_credentials(roles["Verifier"])),
            "restorer": Actor("restorer", admin.with_credentials(roles["Restorer"])),
            "breakglass": Actor("break-glass", admin.with_credentials(roles["BreakGlass"])),
        }
        yield {"out": out, "actors": actors, "compliance_version": locked["VersionId"],
               "governance_version": governed["VersionId"], "applied_policy": applied_policy}
    finally:
        moto.set_auth(enforce=False)


def denied(call, **kwargs) -> str:
    """Runs a request that must be refused for lack of permission and returns the error code.
    Any other outcome (success, a 404, a malformed request) fails the test: a request that
    breaks for another reason proves nothing about the wall."""
    try:
        call(**kwargs)
    except ClientError as e:
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert status == 403, f"{call.__name__} failed with {status} {e.response['Error']}, not a denial"
        return e.response["Error"].get("Code", "403")
    pytest.fail(f"{call.__name__}({kwargs}) was allowed")


def delete_objects_refused(s3, bucket: str, objects: list[dict]) -> None:
    """DeleteObjects answers 200 and reports refusals per key."""
    try:
        response = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects})
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        return
    assert response.get("Deleted", []) == []
    assert sorted(e["Key"] for e in response["Errors"]) == sorted(o["Key"] for o in objects)
    assert {e["Code"] for e in response["Errors"]} == {"AccessDenied"}


def backup_versions(world) -> list[tuple[str, str]]:
    # Read as the verifier, who may list the backup.
    s3 = world["actors"]["verifier"].s3
    listing = s3.list_object_versions(Bucket=BACKUP)
    assert not listing.get("DeleteMarkers"), "a delete marker appeared in the backup"
    return sorted((v["Key"], v["VersionId"]) for v in listing.get("Versions", []))


def seed_version(world) -> str:
    s3 = world["actors"]["verifier"].s3
    return s3.head_object(Bucket=BACKUP, Key=SEED_BACKUP_KEY)["VersionId"]


def settings_changes(bucket: str) -> list[tuple]:
    return [
        ("put_bucket_policy", {"Bucket": bucket, "Policy": json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]})}),
        ("delete_bucket_policy", {"Bucket": bucket}),
        ("put_bucket_versioning", {"Bucket": bucket, "VersioningConfiguration": {"Status": "Suspended"}}),
        ("put_bucket_lifecycle_configuration", {"Bucket": bucket, "LifecycleConfiguration": {"Rules": [
            {"ID": "expire", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}]}}),
        ("put_object_lock_configuration", {"Bucket": bucket, "ObjectLockConfiguration": {
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}}}),
        ("put_public_access_block", {"Bucket": bucket, "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False, "RestrictPublicBuckets": False}}),
        ("put_bucket_encryption", {"Bucket": bucket, "ServerSideEncryptionConfiguration": {
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}}),
        ("delete_bucket", {"Bucket": bucket}),
    ]


def deletes(bucket: str, key: str, version: str) -> list[tuple]:
    return [
        ("delete_object", {"Bucket": bucket, "Key": key}),
        ("delete_object", {"Bucket": bucket, "Key": key, "VersionId": version}),
        ("delete_object", {"Bucket": bucket, "Key": key, "VersionId": version, "BypassGovernanceRetention": True}),
        ("delete_object_tagging", {"Bucket": bucket, "Key": key}),
    ]


def test_source_writer_cannot_read_write_list_or_delete_the_backup(world):
    writer = world["actors"]["writer"].s3
    before = backup_versions(world)
    version = seed_version(world)

    # Its own bucket works: the credentials are good, the refusals below are the wall.
    writer.put_object(Bucket=SOURCE, Key="scratch/x.json", Body=b"{}")
    assert writer.get_object(Bucket=SOURCE, Key="scratch/x.json")["Body"].read() == b"{}"
    assert writer.list_objects_v2(Bucket=SOURCE)["KeyCount"] >= 2
    writer.delete_object(Bucket=SOURCE, Key="scratch/x.json")

    body = b"overwrite"
    requests = [
        # reads
        ("get_object", {"Bucket": BACKUP, "Key": SEED_BACKUP_KEY}),
        ("get_object", {"Bucket": BACKUP, "Key": SEED_BACKUP_KEY, "VersionId": version}),
        ("head_object", {"Bucket": BACKUP, "Key": SEED_BACKUP_KEY}),
        ("get_object_tagging", {"Bucket": BACKUP, "Key": SEED_BACKUP_KEY}),
        ("get_object_retention", {"Bucket": BACKUP, "Key": SEED_BACKUP_KEY}),
        ("get_bucket_policy", {"Bucket": BACKUP}),
        ("get_bucket_versioning", {"Bucket": BACKUP}),
        ("get_object_lock_configuration", {"Bucket": BACKUP}),
        # lists
        ("list_objects_v2", {"Bucket": BACKUP}),
        ("list_objects", {"Bucket": BACKUP}),
        ("list_object_versions", {"Bucket": BACKUP}),
        ("list_multipart_uploads", {"Bucket": BACKUP}),
        # writes
        ("put_object", {"Bucket": BACKUP, "Key": SEED_BACKUP_KEY, "Body": body, "ContentMD5": content_md5(body)}),
        ("put_object", {"Bucket": BACKUP, "Key": f"{SOURCE}/new/file.json", "Body": body, "ContentMD5": content_md5(body)}),
        ("copy_object", {"Bucket": BACKUP, "Key": f"{SOURCE}/copied.json", "CopySource": {"Bucket": SOURCE, "Key": SEED_KEY}}),
        ("create_multipart_upload", {"Bucket": BACKUP, "Key": f"{SOURCE}/big.bin"}),
        ("put_object_tagging", {"Bucket": BACKUP, "Key": SEED_BACKUP_KEY, "Tagging": {"TagSet": []}}),
        ("put_object_retention", {"Bucket": BACKUP, "Key": SEED_BACKUP_KEY, "VersionId": version,
                                  "Retention": {"Mode": "GOVERNANCE", "RetainUntilDate": dt.datetime(2020, 1, 1)}}),
        ("put_object_legal_hold", {"Bucket": BACKUP, "Key": SEED_BACKUP_KEY, "LegalHold": {"Status": "OFF"}}),
        *deletes(BACKUP, SEED_BACKUP_KEY, version),
        *settings_changes(BACKUP),
    ]
    for method, kwargs in requests:
        denied(getattr(writer, method), **kwargs)
    delete_objects_refused(writer, BACKUP, [{"Key": SEED_BACKUP_KEY, "VersionId": version}])
    assert backup_versions(world) == before


def test_replicator_copies_in_but_cannot_delete_or_change_settings(world):
    rep = world["actors"]["replicator"].s3
    src = world["actors"]["writer"].s3
    before = backup_versions(world)

    # Single copy, pinned to the source version, with the source described in metadata.
    put = src.put_object(Bucket=SOURCE, Key="sales/part-00001.parquet", Body=b"PAR1 data")
    rep.copy_object(
        Bucket=BACKUP, Key=f"{SOURCE}/sales/part-00001.parquet",
        CopySource={"Bucket": SOURCE, "Key": "sales/part-00001.parquet", "VersionId": put["VersionId"]},
        MetadataDirective="REPLACE", Metadata={"lifeboat-source-version": put["VersionId"]},
    )
    copied = rep.head_object(Bucket=BACKUP, Key=f"{SOURCE}/sales/part-00001.parquet")
    assert copied["Metadata"] == {"lifeboat-source-version": put["VersionId"]}
    # The bucket's default retention (template value) locked the copy.
    assert copied["ObjectLockMode"] == "COMPLIANCE"
    until = copied["ObjectLockRetainUntilDate"] - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(days=RETENTION_DAYS - 1) < until <= dt.timedelta(days=RETENTION_DAYS)

    # Multipart copy, as for objects above the threshold.
    big = b"x" * (5 * 1024 * 1024) + b"tail"
    src.put_object(Bucket=SOURCE, Key="sales/big.bin", Body=big)
    upload = rep.create_multipart_upload(Bucket=BACKUP, Key=f"{SOURCE}/sales/big.bin")["UploadId"]
    parts = []
    for number, byte_range in ((1, f"bytes=0-{5 * 1024 * 1024 - 1}"), (2, f"bytes={5 * 1024 * 1024}-{len(big) - 1}")):
        part = rep.upload_part_copy(
            Bucket=BACKUP, Key=f"{SOURCE}/sales/big.bin", UploadId=upload, PartNumber=number,
            CopySource={"Bucket": SOURCE, "Key": "sales/big.bin"}, CopySourceRange=byte_range,
        )
        parts.append({"PartNumber": number, "ETag": part["CopyPartResult"]["ETag"]})
    rep.complete_multipart_upload(Bucket=BACKUP, Key=f"{SOURCE}/sales/big.bin", UploadId=upload,
                                  MultipartUpload={"Parts": parts})
    assert rep.get_object(Bucket=BACKUP, Key=f"{SOURCE}/sales/big.bin")["Body"].read() == big

    # A later, different content under an existing key becomes a new version, never a replacement.
    body = b'{"different": true}\n'
    rep.put_object(Bucket=BACKUP, Key=SEED_BACKUP_KEY, Body=body, ContentMD5=content_md5(body))
    after = backup_versions(world)
    assert set(before) <= set(after)
    assert [k for k, _ in after].count(SEED_BACKUP_KEY) == [k for k, _ in before].count(SEED_BACKUP_KEY) + 1

    version = seed_version(world)
    for method, kwargs in deletes(BACKUP, SEED_BACKUP_KEY, version) + settings_changes(BACKUP):
        denied(getattr(rep, method), **kwargs)
    delete_objects_refused(rep, BACKUP, [{"Key": SEED_BACKUP_KEY}, {"Key": SEED_BACKUP_KEY, "VersionId": version}])
    # The source is only read.
    denied(rep.put_object, Bucket=SOURCE, Key="sales/evil.json", Body=b"{}")
    denied(rep.delete_object, Bucket=SOURCE, Key=SEED_KEY)
    delete_objects_refused(rep, SOURCE, [{"Key": SEED_KEY}])
    assert backup_versions(world) == after


def test_verifier_reads_everything_and_writes_only_reports(world):
    ver = world["actors"]["verifier"]
    out = world["out"]
    before = backup_versions(world)

    assert ver.s3.get_object(Bucket=BACKUP, Key=SEED_BACKUP_KEY)["Body"].read()
    assert ver.s3.list_objects_v2(Bucket=BACKUP, Prefix=f"{SOURCE}/")["KeyCount"] >= 1
    assert ver.s3.get_object(Bucket=SOURCE, Key=SEED_KEY)["Body"].read()
    assert ver.s3.list_objects_v2(Bucket=SOURCE)["KeyCount"] >= 1
    report = json.dumps({"tables": []}).encode()
    ver.s3.put_object(Bucket=BACKUP, Key="_lifeboat/reports/2026-11-20T10-00-00Z.json", Body=report,
                      ContentMD5=content_md5(report))
    # Missing objects go back to the replicator's queue.
    ver.sqs.send_message(QueueUrl=out["EventsQueueUrl"], MessageBody=json.dumps({"Records": []}))

    for key in (SEED_BACKUP_KEY, f"{SOURCE}/sales/new.parquet", "_lifeboat/restores/state.json",
                "_lifeboat/reportsx/evil.json"):
        denied(ver.s3.put_object, Bucket=BACKUP, Key=key, Body=report, ContentMD5=content_md5(report))
    denied(ver.s3.copy_object, Bucket=BACKUP, Key=f"{SOURCE}/copied.json", CopySource={"Bucket": SOURCE, "Key": SEED_KEY})
    denied(ver.s3.put_object, Bucket=SOURCE, Key="sales/evil.json", Body=b"{}")
    denied(ver.s3.delete_object, Bucket=SOURCE, Key=SEED_KEY)
    for method, kwargs in deletes(BACKUP, "_lifeboat/reports/2026-11-20T10-00-00Z.json", seed_version(world)) + settings_changes(BACKUP):
        denied(getattr(ver.s3, method), **kwargs)
    delete_objects_refused(ver.s3, BACKUP, [{"Key": "_lifeboat/reports/2026-11-20T10-00-00Z.json"}])
    # It feeds the queue but does not consume it.
    denied(ver.sqs.receive_message, QueueUrl=out["EventsQueueUrl"])
    after = backup_versions(world)
    assert set(before) <= set(after)
    assert {k for k, _ in after} - {k for k, _ in before} == {"_lifeboat/reports/2026-11-20T10-00-00Z.json"}


def test_restorer_reads_the_backup_writes_the_source_and_deletes_nothing(world):
    res = world["actors"]["restorer"].s3
    before = backup_versions(world)
    version = seed_version(world)

    assert res.get_object(Bucket=BACKUP, Key=SEED_BACKUP_KEY, VersionId=version)["Body"].read()
    assert res.list_object_versions(Bucket=BACKUP, Prefix=f"{SOURCE}/")["Versions"]
    # Copy a file back, and write a new commit and restore state into the source.
    res.copy_object(Bucket=SOURCE, Key="restored/_delta_log/00000000000000000000.json",
                    CopySource={"Bucket": BACKUP, "Key": SEED_BACKUP_KEY, "VersionId": version})
    res.put_object(Bucket=SOURCE, Key="restored/_delta_log/00000000000000000001.json", Body=b'{"commitInfo":{"operation":"RESTORE"}}\n')
    assert res.get_object(Bucket=SOURCE, Key="restored/_delta_log/00000000000000000001.json")["Body"].read()
    assert res.list_objects_v2(Bucket=SOURCE, Prefix="restored/")["KeyCount"] == 2

    source_version = res.head_object(Bucket=SOURCE, Key="restored/_delta_log/00000000000000000000.json")["VersionId"]
    for method, kwargs in deletes(SOURCE, "restored/_delta_log/00000000000000000000.json", source_version):
        denied(getattr(res, method), **kwargs)
    delete_objects_refused(res, SOURCE, [{"Key": "restored/_delta_log/00000000000000000000.json"}])
    for method, kwargs in settings_changes(SOURCE):
        denied(getattr(res, method), **kwargs)

    body = b"{}"
    denied(res.put_object, Bucket=BACKUP, Key=SEED_BACKUP_KEY, Body=body, ContentMD5=content_md5(body))
    denied(res.create_multipart_upload, Bucket=BACKUP, Key=f"{SOURCE}/big.bin")
    for method, kwargs in deletes(BACKUP, SEED_BACKUP_KEY, version) + settings_changes(BACKUP):
        denied(getattr(res, method), **kwargs)
    delete_objects_refused(res, BACKUP, [{"Key": SEED_BACKUP_KEY, "VersionId": version}])
    assert backup_versions(world) == before


def test_a_locked_version_cannot_be_deleted_by_anyone(world, moto, admin):
    actors = world["actors"]
    default_locked = seed_version(world)  # default retention from the template: COMPLIANCE
    compliance_key = f"{SOURCE}/compliance/part-0.parquet"
    governance_key = f"{SOURCE}/governance/part-0.parquet"
    targets = [(SEED_BACKUP_KEY, default_locked), (compliance_key, world["compliance_version"]),
               (governance_key, world["governance_version"])]
    before = backup_versions(world)
    assert set(targets) <= set(before)

    def try_everything(who: Actor) -> None:
        for key, version in targets:
            for bypass in (False, True):
                kwargs = {"Bucket": BACKUP, "Key": key, "VersionId": version}
                if bypass:
                    kwargs["BypassGovernanceRetention"] = True
                denied(who.s3.delete_object, **kwargs)
            delete_objects_refused(who.s3, BACKUP, [{"Key": key, "VersionId": version}])

    # 1. With the bucket policy in place: nobody, and break-glass cannot lift the policy.
    for who in actors.values():
        try_everything(who)
    denied(actors["breakglass"].s3.delete_bucket_policy, Bucket=BACKUP)
    denied(actors["breakglass"].s3.put_bucket_policy, Bucket=BACKUP, Policy=world["applied_policy"])
    assert backup_versions(world) == before

    # 2. Only the account root can remove a bucket policy (S3's lockout protection; it fires
    #    BackupBucketTamperRule). Without it, the identity policies still refuse every delete,
    #    and Object Lock refuses an administrator who may do anything.
    moto.set_auth(enforce=False)
    admin.client("s3").delete_bucket_policy(Bucket=BACKUP)
    moto.set_auth(enforce=True)
    try:
        for name in ("writer", "replicator", "verifier", "restorer", "breakglass"):
            for key, version in targets:
                code = denied(actors[name].s3.delete_object, Bucket=BACKUP, Key=key, VersionId=version)
                assert code == "AccessDenied", (name, code)
                # Without a version id a delete would only add a delete marker, which Object
                # Lock allows: so this refusal is the identity policy's alone.
                code = denied(actors[name].s3.delete_object, Bucket=BACKUP, Key=key)
                assert code == "AccessDenied", (name, code)
        account_admin = actors["admin"].s3
        for key, version in targets:
            denied(account_admin.delete_object, Bucket=BACKUP, Key=key, VersionId=version)
        for key, version in targets[:2]:  # COMPLIANCE: not even with the bypass
            denied(account_admin.delete_object, Bucket=BACKUP, Key=key, VersionId=version, BypassGovernanceRetention=True)
        response = account_admin.delete_objects(
            Bucket=BACKUP, Delete={"Objects": [{"Key": k, "VersionId": v} for k, v in targets]})
        assert response.get("Deleted", []) == [] and len(response["Errors"]) == len(targets)
        assert backup_versions(world) == before
    finally:
        moto.set_auth(enforce=False)
        admin.client("s3").put_bucket_policy(Bucket=BACKUP, Policy=world["applied_policy"])
        restored = admin.client("s3").get_bucket_policy(Bucket=BACKUP)["Policy"]
        moto.set_auth(enforce=True)
    assert json.loads(restored) == json.loads(world["applied_policy"])
