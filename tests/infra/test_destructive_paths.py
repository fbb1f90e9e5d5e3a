"""Every destructive path against the backup, for the principals #15 names, evaluated with the
policy model on the resolved templates (both variants): the lake writer widened to s3:* on *,
a source-account admin with iam:*, kms:*, lambda:*, sts:* (and s3:*), a backup-account admin
who is not break-glass, and the backup account's root.

Each path is refused in IAM, or, where IAM cannot refuse it (a same-account admin calling
Lambda or SQS, assuming break-glass, the root rewriting a bucket policy), a tamper rule
matches the CloudTrail event the call produces and pages: the test names which. Some paths
must be refused for everyone whatever the alarms: deleting or overwriting a locked version,
bypassing retention, purging the queue."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest

from event_pattern import matches
from iam_model import Principal, is_allowed, role_policies
from test_policy_documents import BACKUP_ACCOUNT, BACKUP_BUCKET, BACKUP_KEYS, REGION, Deployment, resolve
from test_tamper_rules import load_event, rules, substitutions


@dataclass(frozen=True)
class Path:
    name: str
    action: str
    resource: Callable[[Deployment], str]
    policy: Callable[[Deployment], dict | None]
    fixture: str | None  # the CloudTrail event the call produces (None: a data event, never alarmed)
    must_refuse: bool = False


def bucket_object(dep: Deployment) -> str:
    return f"arn:aws:s3:::{BACKUP_BUCKET}/{BACKUP_KEYS[0]}"


def bucket(dep: Deployment) -> str:
    return f"arn:aws:s3:::{BACKUP_BUCKET}"


def bucket_policy(dep: Deployment) -> dict:
    return dep.bucket_policy


def key(dep: Deployment) -> str:
    return dep.resolver.getatt("BackupKey", "Arn")


def key_policy(dep: Deployment) -> dict:
    return dep.backup["BackupKey"]["Properties"]["KeyPolicy"]


def function(name: str) -> Callable[[Deployment], str]:
    return lambda dep: dep.resolver.getatt(name, "Arn")


def function_policy(name: str) -> Callable[[Deployment], dict | None]:
    """A function's resource policy: the template's Lambda permissions on it."""
    def policy(dep: Deployment) -> dict | None:
        arn = dep.resolver.getatt(name, "Arn")
        statements = [
            {"Effect": "Allow", "Principal": ({"Service": p["Principal"]} if p["Principal"].endswith(".amazonaws.com")
                                              else {"AWS": p["Principal"]}),
             "Action": p["Action"], "Resource": arn}
            for r in dep.backup.values() if r["Type"] == "AWS::Lambda::Permission"
            for p in [r["Properties"]] if p["FunctionName"] == dep.resolver.ref[name]
        ]
        return {"Statement": statements} if statements else None
    return policy


def mapping(dep: Deployment) -> str:
    return f"arn:aws:lambda:{REGION}:{BACKUP_ACCOUNT}:event-source-mapping:{dep.resolver.ref['ReplicateEventSourceMapping']}"


def queue(dep: Deployment) -> str:
    return dep.resolver.getatt("EventsQueue", "Arn")


def queue_policy(dep: Deployment) -> dict:
    return dep.backup["EventsQueuePolicy"]["Properties"]["PolicyDocument"]


def break_glass(dep: Deployment) -> str:
    return dep.role_arn("BreakGlassRole")


def trust(dep: Deployment) -> dict:
    return dep.backup["BreakGlassRole"]["Properties"]["AssumeRolePolicyDocument"]


PATHS = [
    Path("delete a locked version", "s3:DeleteObjectVersion", bucket_object, bucket_policy, None, must_refuse=True),
    Path("hide a version behind a delete marker", "s3:DeleteObject", bucket_object, bucket_policy, None, must_refuse=True),
    Path("overwrite a backed-up key", "s3:PutObject", bucket_object, bucket_policy, None, must_refuse=True),
    Path("shorten a version's retention", "s3:PutObjectRetention", bucket_object, bucket_policy, None, must_refuse=True),
    Path("bypass governance retention", "s3:BypassGovernanceRetention", bucket_object, bucket_policy, None, must_refuse=True),
    Path("lower the default retention", "s3:PutBucketObjectLockConfiguration", bucket, bucket_policy,
         "s3-PutBucketObjectLockConfiguration.json"),
    Path("add a lifecycle expiration", "s3:PutLifecycleConfiguration", bucket, bucket_policy, "s3-PutBucketLifecycle.json"),
    Path("rewrite the bucket policy", "s3:PutBucketPolicy", bucket, bucket_policy, "s3-PutBucketPolicy.json"),
    Path("remove the bucket policy", "s3:DeleteBucketPolicy", bucket, bucket_policy, "s3-DeleteBucketPolicy.json"),
    Path("change the bucket's encryption", "s3:PutEncryptionConfiguration", bucket, bucket_policy, "s3-PutBucketEncryption.json"),
    Path("delete the bucket", "s3:DeleteBucket", bucket, bucket_policy, "s3-DeleteBucket.json", must_refuse=True),
    Path("disable the key", "kms:DisableKey", key, key_policy, "kms-DisableKey.json"),
    Path("schedule the key's deletion", "kms:ScheduleKeyDeletion", key, key_policy, "kms-ScheduleKeyDeletion.json"),
    Path("rewrite the key policy", "kms:PutKeyPolicy", key, key_policy, "kms-PutKeyPolicy.json"),
    Path("grant the key to someone", "kms:CreateGrant", key, key_policy, "kms-CreateGrant.json"),
    Path("swap the replicator's code", "lambda:UpdateFunctionCode", function("ReplicateFunction"),
         function_policy("ReplicateFunction"), "lambda-UpdateFunctionCode.json"),
    Path("reconfigure the verifier", "lambda:UpdateFunctionConfiguration", function("VerifyFunction"),
         function_policy("VerifyFunction"), "lambda-UpdateFunctionConfiguration.json"),
    Path("throttle the replicator to zero", "lambda:PutFunctionConcurrency", function("ReplicateFunction"),
         function_policy("ReplicateFunction"), "lambda-PutFunctionConcurrency.json"),
    Path("disable the event source mapping", "lambda:UpdateEventSourceMapping", mapping, lambda dep: None,
         "lambda-UpdateEventSourceMapping.json"),
    Path("delete the event source mapping", "lambda:DeleteEventSourceMapping", mapping, lambda dep: None,
         "lambda-DeleteEventSourceMapping.json"),
    Path("purge the queue", "sqs:PurgeQueue", queue, queue_policy, "sqs-PurgeQueue.json", must_refuse=True),
    Path("rewrite the queue policy", "sqs:SetQueueAttributes", queue, queue_policy, "sqs-SetQueueAttributes.json"),
    Path("assume break-glass", "sts:AssumeRole", break_glass, trust, "sts-AssumeRole-break-glass.json"),
]


def allow(*actions: str) -> list[dict]:
    return [{"Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]}]


def principals(dep: Deployment) -> dict[str, Principal]:
    src, bak = dep.source_account, dep.backup_account
    return {
        "lake writer (s3:* on *)": Principal(f"arn:aws:iam::{src}:role/etl-writer", src, allow("s3:*")),
        "source-account admin (iam, kms, lambda, sts, s3)": Principal(
            f"arn:aws:iam::{src}:role/LakeAdmin", src, allow("iam:*", "kms:*", "lambda:*", "sts:*", "s3:*"), mfa=True),
        "backup-account admin (not break-glass)": Principal(
            f"arn:aws:iam::{bak}:role/Administrator", bak, allow("*"), mfa=True),
        "backup-account root": Principal(f"arn:aws:iam::{bak}:root", bak, allow("*"), mfa=True),
    }


PRINCIPAL_NAMES = list(principals(resolve("two-accounts")))
VARIANTS = ["two-accounts", "single-account"]
_DEPLOYMENTS: dict[str, Deployment] = {}


def deployment(variant: str) -> Deployment:
    if variant not in _DEPLOYMENTS:
        _DEPLOYMENTS[variant] = resolve(variant)
    return _DEPLOYMENTS[variant]


def alarm_for(dep: Deployment, path: Path) -> str | None:
    """The tamper rule that pages on this path's CloudTrail event, if any."""
    if path.fixture is None:
        return None
    event = load_event(path.fixture, {**substitutions(dep.resolver), "bucket": BACKUP_BUCKET})
    matched = [logical for logical, props in rules(dep.backup).items() if matches(props["EventPattern"], event)]
    return matched[0] if matched else None


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("who", PRINCIPAL_NAMES)
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_destructive_path_is_refused_or_pages(variant, who, path):
    dep = deployment(variant)
    principal = principals(dep)[who]
    allowed = is_allowed(principal, path.action, path.resource(dep), resource_policy=path.policy(dep),
                         resource_account=dep.backup_account)
    if path.must_refuse:
        assert not allowed, f"{who} may {path.name} ({path.action}) in the {variant} variant"
    if allowed:
        rule = alarm_for(dep, path)
        assert rule, f"{who} may {path.name} ({path.action}) in the {variant} variant, and no tamper rule pages"


@pytest.mark.parametrize("who", PRINCIPAL_NAMES[:2])
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_the_source_account_reaches_nothing_in_the_backup_account(who, path):
    """Two accounts: whatever the source account's principals hold, every path is refused."""
    dep = deployment("two-accounts")
    assert not is_allowed(principals(dep)[who], path.action, path.resource(dep), resource_policy=path.policy(dep),
                          resource_account=dep.backup_account)


def test_the_lake_writer_is_refused_everything_even_in_one_account():
    dep = deployment("single-account")
    writer = principals(dep)["lake writer (s3:* on *)"]
    for path in PATHS:
        assert not is_allowed(writer, path.action, path.resource(dep), resource_policy=path.policy(dep),
                              resource_account=dep.backup_account), path.name


def test_what_iam_cannot_refuse_is_named_with_its_alarm():
    """The IAM gaps, as this model finds them: who can do what, and which rule pages. A
    same-account admin can swap code, reconfigure functions and the mapping, rewrite the
    queue policy and assume break-glass; the root can rewrite or remove the bucket policy.
    Nobody can touch the key or lower retention without being a key admin or break-glass."""
    gaps = {}
    for variant in VARIANTS:
        dep = deployment(variant)
        for who, principal in principals(dep).items():
            for path in PATHS:
                if is_allowed(principal, path.action, path.resource(dep), resource_policy=path.policy(dep),
                              resource_account=dep.backup_account):
                    gaps[(variant, who, path.name)] = alarm_for(dep, path)
    assert gaps, "the model finds no gap at all: it is not evaluating what it should"
    assert all(gaps.values()), {k: v for k, v in gaps.items() if not v}
    # Key destruction and retention changes are refused in IAM for all of them.
    assert not [k for k in gaps if k[2] in ("disable the key", "schedule the key's deletion", "rewrite the key policy",
                                            "lower the default retention", "add a lifecycle expiration")]
    # The bucket policy can be rewritten only by the root (S3's lockout protection).
    assert {k[1] for k in gaps if k[2] == "rewrite the bucket policy"} == {"backup-account root"}
    # The lake writer appears nowhere; the source admin only when it is the same account.
    assert {k[0] for k in gaps if k[1].startswith("source-account admin")} == {"single-account"}
    assert not [k for k in gaps if k[1].startswith("lake writer")]


def test_break_glass_escalation_still_cannot_destroy():
    """An admin who assumes break-glass (paged) gets its settings rights, but still no path to
    delete a version, bypass retention, rewrite the policy or touch the key."""
    dep = deployment("two-accounts")
    bg = Principal(dep.role_arn("BreakGlassRole"), BACKUP_ACCOUNT,
                   role_policies(dep.backup["BreakGlassRole"]["Properties"]), mfa=True)
    for path in PATHS:
        allowed = is_allowed(bg, path.action, path.resource(dep), resource_policy=path.policy(dep),
                             resource_account=dep.backup_account)
        if path.action == "s3:PutObjectRetention":
            # Break-glass may extend a version's retention. Shortening it is refused by Object
            # Lock itself: COMPLIANCE never allows it, GOVERNANCE only with the bypass, which the
            # bucket policy denies to everyone (checked on the next path).
            assert allowed
            continue
        if path.must_refuse or path.action.startswith(("kms:", "lambda:", "sqs:")) or path.action in (
                "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"):
            assert not allowed, path.name
        if allowed:
            assert alarm_for(dep, path), path.name
    assert dep.backup["BackupBucket"]["Properties"]["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
