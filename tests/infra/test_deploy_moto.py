"""Both templates deployed with CloudFormation into moto, single-account variant, two source
buckets: what CloudFormation built, what had to be applied with the API because moto skips it,
and the event path from a source bucket to the replicator's queue."""
from __future__ import annotations

import json
import time

import pytest

import lifeboat_infra as infra

SOURCES = ["lake-a", "lake-b"]
BACKUP = "lifeboat-backup-test"
BACKUP_PARAMS = {
    "ObjectLockRetentionDays": "7",
    "VerifySchedule": "rate(15 minutes)",
    "Tables": "s3://lake-a/sales,s3://lake-b/events",
    "StorageClass": "STANDARD_IA",
    "AlarmEmail": "oncall@example.com",
}


@pytest.fixture(scope="module")
def deployed(admin):
    return infra.deploy_local_stacks(
        admin, stack_name="lifeboat", source_buckets=SOURCES, backup_bucket=BACKUP,
        backup_parameters=BACKUP_PARAMS,
    )


def resolved(deployed, logical):
    return deployed["backup"]["resolver"].resources()[logical]["Properties"]


def test_stacks_are_created_with_the_outputs_a_user_needs(admin, deployed):
    cfn = admin.client("cloudformation")
    names = ["lifeboat"] + [s["stack_name"] for s in deployed["sources"]]
    for name in names:
        assert cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    out = deployed["backup"]["outputs"]
    assert out["BackupBucketName"] == BACKUP
    for key in ("EventsQueueArn", "EventsQueueUrl", "DeadLetterQueueUrl", "ReplicatorRoleArn", "VerifierRoleArn",
                "RestorerRoleArn", "BreakGlassRoleArn", "ReplicateFunctionName", "VerifyFunctionName",
                "RestoreFunctionName", "AlarmTopicArn", "BackupKeyArn"):
        assert out[key], key
    assert out["RestoreFunctionName"] in out["RestoreDryRunCommand"]


def test_functions_are_configured_from_the_parameters(admin, deployed):
    out = deployed["backup"]["outputs"]
    lam = admin.client("lambda")
    common = {
        "LIFEBOAT_BACKUP_BUCKET": BACKUP,
        "LIFEBOAT_BACKUP_PREFIX": "{bucket}/",
        "LIFEBOAT_SOURCE_BUCKETS": "lake-a,lake-b",
        # Single-account: both owners are this account.
        "LIFEBOAT_BACKUP_ACCOUNT_ID": "123456789012", "LIFEBOAT_SOURCE_ACCOUNT_ID": "123456789012",
    }
    expected = {
        "ReplicateFunctionName": (out["ReplicatorRoleArn"], 300, {
            **common, "LIFEBOAT_INCLUDE_PREFIXES": "", "LIFEBOAT_EXCLUDE_PATTERNS": "",
            "LIFEBOAT_MULTIPART_THRESHOLD_BYTES": "5368709120", "LIFEBOAT_PART_SIZE_BYTES": "268435456",
            "LIFEBOAT_COPY_CONCURRENCY": "64", "LIFEBOAT_STORAGE_CLASS": "STANDARD_IA",
            "LIFEBOAT_KMS_KEY_ID": out["BackupKeyArn"], "LIFEBOAT_CONDITIONAL_COPY": "false",
            "LIFEBOAT_PER_TABLE_METRICS": "false", "RUST_LOG": "info"}),
        "VerifyFunctionName": (out["VerifierRoleArn"], 900, {
            **common, "LIFEBOAT_INCLUDE_PREFIXES": "", "LIFEBOAT_EXCLUDE_PATTERNS": "",
            "LIFEBOAT_QUEUE_URL": out["EventsQueueUrl"], "LIFEBOAT_TABLES": "s3://lake-a/sales,s3://lake-b/events",
            "LIFEBOAT_VERIFY_QUEUE_URL": out["VerifyQueueUrl"], "LIFEBOAT_FULL_PROOF_HOURS": "24",
            "LIFEBOAT_PER_TABLE_METRICS": "false", "LIFEBOAT_GLUE_DATABASES": "", "RUST_LOG": "info"}),
        "RestoreFunctionName": (out["RestorerRoleArn"], 900, {
            **common, "LIFEBOAT_MULTIPART_THRESHOLD_BYTES": "5368709120", "LIFEBOAT_PART_SIZE_BYTES": "268435456",
            "LIFEBOAT_COPY_CONCURRENCY": "64", "LIFEBOAT_GLUE_DATABASES": "",
            "LIFEBOAT_RESTORE_QUEUE_URL": out["RestoreQueueUrl"], "LIFEBOAT_RESTORE_SHARD_THRESHOLD": "10000",
            "RUST_LOG": "info"}),
    }
    for output, (role, timeout, env) in expected.items():
        config = lam.get_function_configuration(FunctionName=out[output])
        assert config["Runtime"] == "provided.al2023"
        assert config["Handler"] == "bootstrap"
        assert config["Role"] == role
        assert config["Timeout"] == timeout
        # moto keeps CloudFormation's numbers as numbers; Lambda hands every value over as text.
        assert {k: str(v) for k, v in config["Environment"]["Variables"].items()} == env
    # moto drops Architectures from CloudFormation (it reports x86_64): checked on the template.
    for logical in ("ReplicateFunction", "VerifyFunction", "RestoreFunction"):
        assert resolved(deployed, logical)["Architectures"] == ["arm64"]


def test_queue_feeds_the_replicator_with_partial_batch_failures_and_a_dead_letter_queue(admin, deployed):
    out = deployed["backup"]["outputs"]
    sqs = admin.client("sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=out["EventsQueueUrl"], AttributeNames=["All"])["Attributes"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=out["DeadLetterQueueUrl"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    timeout = admin.client("lambda").get_function_configuration(FunctionName=out["ReplicateFunctionName"])["Timeout"]
    assert int(attrs["VisibilityTimeout"]) >= 6 * timeout
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq_arn
    assert int(redrive["maxReceiveCount"]) == 5
    # Applied with the API (moto skips AWS::SQS::QueuePolicy): S3 may send, from these buckets.
    policy = json.loads(attrs["Policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert set(statements) == {"DenyPurgeToEveryone", "SourceBucketNotifications"}
    assert statements["DenyPurgeToEveryone"]["Resource"] == [out["EventsQueueArn"], dlq_arn]
    # The same document on the dead-letter queue (one AWS::SQS::QueuePolicy for both).
    assert json.loads(sqs.get_queue_attributes(QueueUrl=out["DeadLetterQueueUrl"], AttributeNames=["Policy"])[
        "Attributes"]["Policy"]) == policy
    stmt = statements["SourceBucketNotifications"]
    assert stmt["Principal"] == {"Service": "s3.amazonaws.com"}
    assert stmt["Condition"]["ArnLike"]["aws:SourceArn"] == ["arn:aws:s3:::lake-a", "arn:aws:s3:::lake-b"]
    assert stmt["Condition"]["StringEquals"]["aws:SourceAccount"] == "123456789012"

    (mapping,) = admin.client("lambda").list_event_source_mappings(FunctionName=out["ReplicateFunctionName"])["EventSourceMappings"]
    assert mapping["EventSourceArn"] == out["EventsQueueArn"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10
    # Deployed paused: moto cannot run the function (deploy_local_stacks explains why).
    assert mapping["State"] == "Disabled"


def test_verifier_runs_on_the_schedule(admin, deployed):
    out = deployed["backup"]["outputs"]
    events = admin.client("events")
    lam = admin.client("lambda")
    verify_arn = lam.get_function_configuration(FunctionName=out["VerifyFunctionName"])["FunctionArn"]
    (rule,) = events.list_rule_names_by_target(TargetArn=verify_arn)["RuleNames"]
    described = events.describe_rule(Name=rule)
    assert described["ScheduleExpression"] == "rate(15 minutes)"
    assert described["State"] == "ENABLED"
    (stmt,) = json.loads(lam.get_policy(FunctionName=out["VerifyFunctionName"])["Policy"])["Statement"]
    assert stmt["Principal"] == {"Service": "events.amazonaws.com"}
    assert list(stmt["Condition"]["ArnLike"].values()) == [described["Arn"]]


def test_backup_bucket_settings_equal_the_template(admin, deployed):
    """moto's CloudFormation skips these; deploy_local_stacks applied them from the resolved
    template. Read back from S3, they must hold the template's values."""
    s3 = admin.client("s3")
    out = deployed["backup"]["outputs"]
    assert s3.get_bucket_versioning(Bucket=BACKUP)["Status"] == "Enabled"
    lock = s3.get_object_lock_configuration(Bucket=BACKUP)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert lock["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
    assert lock["Rule"]["DefaultRetention"]["Days"] == 7
    assert s3.get_public_access_block(Bucket=BACKUP)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    (rule,) = s3.get_bucket_encryption(Bucket=BACKUP)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": out["BackupKeyArn"]}
    assert rule["BucketKeyEnabled"] is True
    (lifecycle,) = s3.get_bucket_lifecycle_configuration(Bucket=BACKUP)["Rules"]
    assert lifecycle["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert "Expiration" not in lifecycle and "NoncurrentVersionExpiration" not in lifecycle

    applied = json.loads(s3.get_bucket_policy(Bucket=BACKUP)["Policy"])
    template = resolved(deployed, "BackupBucketPolicy")["PolicyDocument"]
    assert applied["Statement"] == [
        s for s in template["Statement"] if s["Sid"] not in infra.MOTO_UNEVALUABLE_STATEMENTS]
    assert sorted(deployed["backup"]["skips"]["left_out"]) == sorted(
        f"BackupBucketPolicy.{sid}" for sid in infra.MOTO_UNEVALUABLE_STATEMENTS)
    # Applied locally: the unconditional deny, which holds for break-glass too.
    assert [s["Sid"] for s in applied["Statement"]] == ["DenyDestructionToEveryone"]
    assert "Condition" not in applied["Statement"][0]


def test_role_policies_in_iam_are_the_template_documents(admin, deployed):
    iam = admin.client("iam")
    resources = deployed["backup"]["resolver"].resources()
    out = deployed["backup"]["outputs"]
    for logical, output in [("ReplicatorRole", "ReplicatorRoleArn"), ("VerifierRole", "VerifierRoleArn"),
                            ("RestorerRole", "RestorerRoleArn"), ("BreakGlassRole", "BreakGlassRoleArn")]:
        name = out[output].rsplit("/", 1)[1]
        (policy,) = resources[logical]["Properties"]["Policies"]
        stored = iam.get_role_policy(RoleName=name, PolicyName=policy["PolicyName"])["PolicyDocument"]
        stored = json.loads(stored) if isinstance(stored, str) else stored
        assert stored == policy["PolicyDocument"]
        assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == []


def test_alarms_watch_restorability_rpo_dead_letters_and_errors(admin, deployed):
    out = deployed["backup"]["outputs"]
    alarms = admin.client("cloudwatch").describe_alarms()["MetricAlarms"]
    watched = {(a["Namespace"], a["MetricName"], tuple((d["Name"], d["Value"]) for d in a["Dimensions"])): a for a in alarms}
    dlq_name = out["DeadLetterQueueUrl"].rsplit("/", 1)[1]
    for key in [
        ("Lifeboat", "UnrestorableTables", (("Function", "verify"),)),
        ("Lifeboat", "MaxRpoSeconds", (("Function", "verify"),)),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", (("QueueName", dlq_name),)),
        ("Lifeboat", "Errors", (("Function", "replicate"),)),
        ("Lifeboat", "Conflicts", (("Function", "replicate"),)),
        ("AWS/Lambda", "Errors", (("FunctionName", out["ReplicateFunctionName"]),)),
    ]:
        assert key in watched, key
        assert watched[key]["AlarmActions"] == [out["AlarmTopicArn"]]
    unrestorable = watched[("Lifeboat", "UnrestorableTables", (("Function", "verify"),))]
    assert unrestorable["Threshold"] == 1 and unrestorable["TreatMissingData"] == "breaching"
    subs = admin.client("sns").list_subscriptions_by_topic(TopicArn=out["AlarmTopicArn"])["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subs] == [("email", "oncall@example.com")]


def test_source_buckets_are_versioned_and_readable_by_the_lifeboat_roles(admin, deployed):
    s3 = admin.client("s3")
    out = deployed["backup"]["outputs"]
    for bucket in SOURCES:
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        readers = next(s for s in policy["Statement"] if s["Sid"] == "LifeboatReadSource")
        assert sorted(readers["Principal"]["AWS"]) == sorted(
            [out["ReplicatorRoleArn"], out["VerifierRoleArn"], out["RestorerRoleArn"]])


def receive_all(sqs, url: str, want: int, timeout: float = 10) -> list[dict]:
    records, deadline = [], time.monotonic() + timeout
    while len(records) < want and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            body = json.loads(message["Body"])
            records += body.get("Records", [])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return records


def test_object_events_from_every_source_bucket_reach_the_queue(admin, deployed):
    s3, sqs = admin.client("s3"), admin.client("sqs")
    url = deployed["backup"]["outputs"]["EventsQueueUrl"]
    versions = {}
    for bucket in SOURCES:
        put = s3.put_object(Bucket=bucket, Key="sales/_delta_log/00000000000000000000.json", Body=b"{}")
        versions[bucket] = put["VersionId"]
    # A permanent delete (moto sends no event for a delete marker, ObjectRemoved:DeleteMarkerCreated).
    s3.delete_object(Bucket="lake-a", Key="sales/_delta_log/00000000000000000000.json", VersionId=versions["lake-a"])
    records = receive_all(sqs, url, want=3)
    seen = sorted((r["s3"]["bucket"]["name"], r["eventName"].split(":")[0]) for r in records)
    assert seen == [("lake-a", "ObjectCreated"), ("lake-a", "ObjectRemoved"), ("lake-b", "ObjectCreated")]
    # Nothing was consumed behind our back, and nothing went to the dead-letter queue.
    dlq = deployed["backup"]["outputs"]["DeadLetterQueueUrl"]
    assert sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_redeploying_is_an_update_that_keeps_everything(admin, deployed):
    again = infra.deploy_local_stacks(
        admin, stack_name="lifeboat", source_buckets=SOURCES, backup_bucket=BACKUP,
        backup_parameters=BACKUP_PARAMS,
    )
    assert again["backup"]["outputs"] == deployed["backup"]["outputs"]
    assert admin.client("s3").get_object_lock_configuration(Bucket=BACKUP)["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"


def test_two_account_variant_deploys_from_the_same_templates(admin):
    """Backup stack in this account, source stack in another (moto keeps accounts apart by
    credentials). moto does not deliver a notification across accounts, so delivery is shown in
    the single-account test above and the cross-account queue policy is checked here and on the
    document."""
    source_account = "111111111111"
    creds = admin.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{source_account}:role/lake-admin", RoleSessionName="deploy-source")["Credentials"]
    lake_admin = admin.with_credentials({
        "aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
        "aws_session_token": creds["SessionToken"]})
    assert lake_admin.client("sts").get_caller_identity()["Account"] == source_account

    backup = infra.deploy_local_stacks(
        admin, stack_name="lifeboat-x", source_buckets=[], backup_bucket="lifeboat-backup-x",
        backup_parameters={"SourceBucketNames": "lake-x", "SourceAccountId": source_account},
    )
    out = backup["backup"]["outputs"]
    params = {
        "SourceBucketName": "lake-x", "CreateSourceBucket": "true", "EventsQueueArn": out["EventsQueueArn"],
        "ReplicatorRoleArn": out["ReplicatorRoleArn"], "VerifierRoleArn": out["VerifierRoleArn"],
        "RestorerRoleArn": out["RestorerRoleArn"],
    }
    stack = infra.create_or_update_stack(lake_admin, "lifeboat-source-lake-x", infra.SOURCE_TEMPLATE, params)
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    source = infra.deployed_context(lake_admin, infra.load_template(infra.SOURCE_TEMPLATE), "lifeboat-source-lake-x", params)
    infra.apply_moto_skips(lake_admin, source)

    # The bucket lives in the source account only, notifying the backup account's queue...
    assert "lake-x" in [b["Name"] for b in lake_admin.client("s3").list_buckets()["Buckets"]]
    assert "lake-x" not in [b["Name"] for b in admin.client("s3").list_buckets()["Buckets"]]
    (queue,) = lake_admin.client("s3").get_bucket_notification_configuration(Bucket="lake-x")["QueueConfigurations"][:1]
    assert queue["QueueArn"] == out["EventsQueueArn"] and out["EventsQueueArn"].split(":")[4] == "123456789012"
    # ...whose policy accepts events from that account's bucket,
    attrs = admin.client("sqs").get_queue_attributes(QueueUrl=out["EventsQueueUrl"], AttributeNames=["Policy"])["Attributes"]
    (condition,) = [s["Condition"] for s in json.loads(attrs["Policy"])["Statement"] if s["Sid"] == "SourceBucketNotifications"]
    assert condition == {"ArnLike": {"aws:SourceArn": ["arn:aws:s3:::lake-x"]}, "StringEquals": {"aws:SourceAccount": source_account}}
    # ...and the bucket policy lets the backup account's roles in.
    policy = json.loads(lake_admin.client("s3").get_bucket_policy(Bucket="lake-x")["Policy"])
    principals = {p for s in policy["Statement"] for p in infra_as_list(s["Principal"]["AWS"])}
    assert principals == {out["ReplicatorRoleArn"], out["VerifierRoleArn"], out["RestorerRoleArn"]}
    assert all(p.split(":")[4] == "123456789012" for p in principals)


def infra_as_list(value):
    return value if isinstance(value, list) else [value]
