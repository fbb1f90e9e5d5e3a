"""The backup template's production wiring, with default parameters: what a local deployment
changes (the paused event source mapping) or what moto drops (architectures, deletion
policies) is checked here on the document."""
from __future__ import annotations

import pytest

import lifeboat_infra as infra
from iam_model import Principal, decide, role_policies

ACCOUNT = "222222222222"
REGION = "eu-west-1"
DESIGN_VARIABLES = {
    "LIFEBOAT_BACKUP_BUCKET", "LIFEBOAT_BACKUP_PREFIX", "LIFEBOAT_SOURCE_BUCKETS", "LIFEBOAT_INCLUDE_PREFIXES",
    "LIFEBOAT_EXCLUDE_PATTERNS", "LIFEBOAT_MULTIPART_THRESHOLD_BYTES", "LIFEBOAT_PART_SIZE_BYTES",
    "LIFEBOAT_COPY_CONCURRENCY", "LIFEBOAT_STORAGE_CLASS", "LIFEBOAT_KMS_KEY_ID", "LIFEBOAT_QUEUE_URL", "LIFEBOAT_TABLES",
    # Beyond DESIGN.md's table: one request per new object where If-None-Match is honoured.
    "LIFEBOAT_CONDITIONAL_COPY",
    # Per-table metrics, off by default (#15).
    "LIFEBOAT_PER_TABLE_METRICS",
    # The Glue Data Catalog databases captured and re-registered (#16).
    "LIFEBOAT_GLUE_DATABASES",
    # ExpectedBucketOwner on every S3 call (#15).
    "LIFEBOAT_BACKUP_ACCOUNT_ID", "LIFEBOAT_SOURCE_ACCOUNT_ID",
    # The restore work queue and when a restore goes in shards (#17).
    "LIFEBOAT_RESTORE_QUEUE_URL", "LIFEBOAT_RESTORE_SHARD_THRESHOLD",
    # The verify queue the scheduled run fans out to, and the full re-proof cadence (#17).
    "LIFEBOAT_VERIFY_QUEUE_URL", "LIFEBOAT_FULL_PROOF_HOURS",
}


@pytest.fixture(scope="module")
def template():
    return infra.load_template(infra.BACKUP_TEMPLATE)


@pytest.fixture(scope="module")
def resources(template):
    resolver = infra.synthetic_context(
        template, account=ACCOUNT, region=REGION, stack_name="lifeboat",
        parameters={"SourceBucketNames": "lake-a", "CodeBucket": "artifacts", "SourceAccountId": "111111111111",
                    "ReplicateCodeVersion": "v-rep", "VerifyCodeVersion": "v-ver", "RestoreCodeVersion": "v-res"},
    )
    return resolver.resources()


def props(resources, logical):
    return resources[logical]["Properties"]


def test_functions_are_arm64_custom_runtime_from_the_code_bucket(resources):
    for logical, key, version in [("ReplicateFunction", "lifeboat/replicate.zip", "v-rep"),
                                  ("VerifyFunction", "lifeboat/verify.zip", "v-ver"),
                                  ("RestoreFunction", "lifeboat/restore.zip", "v-res")]:
        p = props(resources, logical)
        assert p["Runtime"] == "provided.al2023"
        assert p["Handler"] == "bootstrap"
        assert p["Architectures"] == ["arm64"]
        # Pinned to the uploaded object version: a zip overwritten in the bucket changes nothing.
        assert p["Code"] == {"S3Bucket": "artifacts", "S3Key": key, "S3ObjectVersion": version}
        env = p["Environment"]["Variables"]
        assert {k for k in env if k.startswith("LIFEBOAT_")} <= DESIGN_VARIABLES
        assert env["LIFEBOAT_BACKUP_BUCKET"] == "lifeboat-backup-222222222222-eu-west-1"
        assert env["LIFEBOAT_BACKUP_PREFIX"] == "{bucket}/"
        assert env["LIFEBOAT_SOURCE_BUCKETS"] == "lake-a"
        # Every S3 call names the bucket's expected owner: a source bucket deleted and taken by
        # another account is refused, not read or written.
        assert (env["LIFEBOAT_BACKUP_ACCOUNT_ID"], env["LIFEBOAT_SOURCE_ACCOUNT_ID"]) == (ACCOUNT, "111111111111")
    # Only the replicator encrypts with the backup key explicitly (the bucket default does the
    # rest); the restorer must not put the backup account's key on source objects.
    assert "LIFEBOAT_KMS_KEY_ID" in props(resources, "ReplicateFunction")["Environment"]["Variables"]
    assert "LIFEBOAT_KMS_KEY_ID" not in props(resources, "RestoreFunction")["Environment"]["Variables"]
    assert {"LIFEBOAT_QUEUE_URL", "LIFEBOAT_TABLES"} <= set(props(resources, "VerifyFunction")["Environment"]["Variables"])


def test_replication_is_on_by_default_with_partial_batch_failures(resources):
    mapping = props(resources, "ReplicateEventSourceMapping")
    assert mapping["Enabled"] is True
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = props(resources, "EventsQueue")
    assert int(queue["VisibilityTimeout"]) >= 6 * int(props(resources, "ReplicateFunction")["Timeout"])
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 5


def test_verifier_schedule_is_a_parameter(template, resources):
    assert template["Parameters"]["VerifySchedule"]["Default"] == "rate(1 hour)"
    rule = props(resources, "VerifyScheduleRule")
    assert rule["ScheduleExpression"] == "rate(1 hour)"
    assert rule["Targets"][0]["Arn"].endswith(":function:lifeboat-verify")


def test_restorer_may_invoke_only_itself(resources):
    policies = role_policies(props(resources, "RestorerRole"))
    fn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:lifeboat-"
    assert decide(policies, "lambda:InvokeFunction", fn + "restore", None, {}) == "allow"
    # The follow-up goes to the ARN it was invoked with, which may name an alias or version.
    assert decide(policies, "lambda:InvokeFunction", fn + "restore:live", None, {}) == "allow"
    assert decide(policies, "lambda:InvokeFunction", fn + "restore-other", None, {}) == "none"
    for other in ("replicate", "verify"):
        assert decide(policies, "lambda:InvokeFunction", fn + other, None, {}) == "none"
    for logical in ("ReplicatorRole", "VerifierRole"):
        assert decide(role_policies(props(resources, logical)), "lambda:InvokeFunction", fn + "restore", None, {}) == "none"


def test_only_the_verifier_sends_to_the_queue_and_only_the_replicator_consumes(resources):
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:lifeboat-EventsQueue"
    verdict = {
        logical: {a: decide(role_policies(props(resources, logical)), a, queue, None, {})
                  for a in ("sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage")}
        for logical in ("ReplicatorRole", "VerifierRole", "RestorerRole", "BreakGlassRole")
    }
    assert verdict["VerifierRole"] == {"sqs:SendMessage": "allow", "sqs:ReceiveMessage": "none", "sqs:DeleteMessage": "none"}
    assert verdict["ReplicatorRole"] == {"sqs:SendMessage": "none", "sqs:ReceiveMessage": "allow", "sqs:DeleteMessage": "allow"}
    assert set(verdict["RestorerRole"].values()) == {"none"}
    assert set(verdict["BreakGlassRole"].values()) == {"none"}


def test_the_backup_outlives_its_stack(template):
    for logical in ("BackupBucket", "BackupKey"):
        assert template["Resources"][logical]["DeletionPolicy"] == "Retain"
        assert template["Resources"][logical]["UpdateReplacePolicy"] == "Retain"


def test_bucket_is_versioned_locked_private_and_never_expires_versions(resources):
    bucket = props(resources, "BackupBucket")
    assert bucket["ObjectLockEnabled"] is True
    assert bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"] == {"Mode": "COMPLIANCE", "Days": "30"}
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    for rule in bucket["LifecycleConfiguration"]["Rules"]:
        assert set(rule) <= {"Id", "Status", "AbortIncompleteMultipartUpload"}


def test_alarms_cover_restorability_rpo_dead_letters_and_replication_errors(resources):
    alarms = {(p["Namespace"], p["MetricName"]) for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"
              for p in [r["Properties"]]}
    assert {("Lifeboat", "UnrestorableTables"), ("Lifeboat", "MaxRpoSeconds"), ("Lifeboat", "Errors"),
            ("Lifeboat", "CriticalFindings"), ("Lifeboat", "DeletionsSeen"),
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible")} <= alarms


def test_the_verify_queue_fans_tables_out_to_the_verify_function(resources):
    # The scheduled run sends tables to the verify queue; the function consumes it in small
    # batches, reporting partial failures; a message failing 3 times lands in its dead-letter
    # queue, which alarms.
    queue = props(resources, "VerifyQueue")
    assert queue["VisibilityTimeout"] >= 6 * props(resources, "VerifyFunction")["Timeout"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 3
    mapping = props(resources, "VerifyEventSourceMapping")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] <= 10
    alarm = props(resources, "VerifyDeadLetterQueueAlarm")
    assert alarm["Namespace"] == "AWS/SQS" and alarm["Threshold"] == 0
    env = props(resources, "VerifyFunction")["Environment"]["Variables"]
    assert env["LIFEBOAT_FULL_PROOF_HOURS"] == "24"
    assert "LIFEBOAT_VERIFY_QUEUE_URL" in env
    # The verifier writes its reports and its per-table state, nothing else: not the
    # restores' progress records beside that state.
    statements = props(resources, "VerifierRole")["Policies"][0]["PolicyDocument"]["Statement"]
    puts = sorted(s["Resource"] for s in statements if s.get("Action") == "s3:PutObject")
    assert all(p.endswith(("/_lifeboat/reports/*", "/_lifeboat/state/tables/*", "/_lifeboat/catalog/*"))
               for p in puts), puts
    assert any(p.endswith("/_lifeboat/state/tables/*") for p in puts), puts
