"""The hard walls, checked on the policy documents themselves.

Moto ignores principals and conditions in bucket policies, authorizes DeleteObjects against
the bucket only, does not check read access on a copy source, and maps several S3 actions to
the wrong IAM names. So the walls are also proven here, where nothing is simulated away: the
templates are resolved exactly as CloudFormation would (both the two-account and the
single-account variant) and every S3 action AWS defines for buckets and objects is evaluated,
per principal, with the policy-evaluation model in iam_model.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

import lifeboat_infra as infra
from iam_model import (
    Principal,
    action_matches,
    as_list,
    bucket_actions,
    decide,
    is_allowed,
    resource_for,
    role_policies,
    s3_catalogue,
    statements,
)

BACKUP_ACCOUNT = "222222222222"
SOURCE_ACCOUNT = "111111111111"
REGION = "eu-west-1"
SOURCES = ["lake-a", "lake-b"]
BACKUP_BUCKET = "acme-lifeboat-backup"

# What Lifeboat does on the backup bucket (DESIGN.md, "Hard walls"): read objects and their
# tags and versions, list, put (with tags), and tidy up its own multipart uploads. Written
# down here from the design, not read from the template: every other S3 action in AWS's
# catalogue must be denied to every principal but break-glass.
LIFEBOAT_NEEDS = {
    "s3:getobject", "s3:getobjectversion", "s3:getobjecttagging", "s3:getobjectversiontagging",
    "s3:listbucket", "s3:listbucketversions", "s3:listbucketmultipartuploads", "s3:getbucketlocation",
    "s3:putobject", "s3:putobjecttagging", "s3:abortmultipartupload", "s3:listmultipartuploadparts",
}
# The ones a hand-written blocklist missed (#15), by name, so a catalogue change cannot hollow
# the check out.
ONCE_MISSED = [
    "s3:UpdateObjectEncryption", "s3:PutIntelligentTieringConfiguration", "s3:PutInventoryConfiguration",
    "s3:CreateBucketMetadataTableConfiguration", "s3:PutObjectVersionTagging", "s3:RestoreObject",
]


def protected_actions() -> set[str]:
    """Every S3 bucket/object action but what Lifeboat needs."""
    return set(bucket_actions()) - LIFEBOAT_NEEDS


def destructive_actions() -> set[str]:
    """What nobody may do, break-glass included: every delete, rewriting the bucket policy,
    bypassing governance retention, suspending versioning, and replicating deletes."""
    return {a for a in bucket_actions() if a.startswith("s3:delete")} | {
        "s3:putbucketpolicy", "s3:bypassgovernanceretention", "s3:putbucketversioning",
        "s3:putreplicationconfiguration", "s3:replicatedelete"}


# Keys the backup holds: replicated objects, and the verifier's reports.
BACKUP_KEYS = ["lake-a/sales/_delta_log/00000000000000000000.json", "_lifeboat/reports/2026-11-20.json"]


def is_read(action: str) -> bool:
    return action.startswith(("s3:get", "s3:list"))


@dataclass
class Deployment:
    backup: dict  # logical id -> resolved resource
    sources: dict[str, dict]  # bucket -> resolved source-stack resources
    backup_account: str
    source_account: str
    params: dict
    resolver: infra.Resolver | None = None

    def role_arn(self, logical: str) -> str:
        return f"arn:aws:iam::{self.backup_account}:role/lifeboat-{logical}"

    def role(self, logical: str, mfa: bool = False) -> Principal:
        return Principal(
            arn=self.role_arn(logical), account=self.backup_account,
            identity_policies=role_policies(self.backup[logical]["Properties"]), mfa=mfa,
        )

    @property
    def bucket_policy(self) -> dict:
        return self.backup["BackupBucketPolicy"]["Properties"]["PolicyDocument"]

    def source_policy(self, bucket: str) -> dict:
        """The lake's own policy with Lifeboat's statements merged in, as make deploy leaves an
        existing bucket."""
        return infra.merged_bucket_policy(LAKE_POLICY(bucket), infra.lifeboat_source_statements({
            "SourceBucketName": bucket, **{f"{r}Arn": self.role_arn(r) for r in ("ReplicatorRole", "VerifierRole", "RestorerRole")}}))

    def on_backup(self, who: Principal, action: str, key: str = BACKUP_KEYS[0], secure: bool = True) -> bool:
        return is_allowed(
            who, action, resource_for(action, BACKUP_BUCKET, key),
            resource_policy=self.bucket_policy, resource_account=self.backup_account,
            secure_transport=secure,
        )

    def on_source(self, who: Principal, action: str, bucket: str = "lake-a") -> bool:
        return is_allowed(
            who, action, resource_for(action, bucket, "sales/part-00000.parquet"),
            resource_policy=self.source_policy(bucket), resource_account=self.source_account,
        )


def resolve(variant: str, **extra: str) -> Deployment:
    two = variant == "two-accounts"
    source_account = SOURCE_ACCOUNT if two else BACKUP_ACCOUNT
    params = {
        "SourceBucketNames": ",".join(SOURCES),
        "BackupBucketName": BACKUP_BUCKET,
        "CodeBucket": "acme-artifacts",
        "ReplicateCodeVersion": "v1", "VerifyCodeVersion": "v2", "RestoreCodeVersion": "v3",
        "SourceAccountId": SOURCE_ACCOUNT if two else "",
        "AcknowledgeSingleAccount": "false" if two else "true",
        **extra,
    }
    backup_template = infra.load_template(infra.BACKUP_TEMPLATE)
    backup = infra.synthetic_context(
        backup_template, account=BACKUP_ACCOUNT, region=REGION, stack_name="lifeboat", parameters=params,
    )
    # Role names as CloudFormation would make them are random; these are recognizable.
    backup.getatt = _role_names(backup.getatt, backup_template)
    resources = backup.resources()
    arn = {r: f"arn:aws:iam::{BACKUP_ACCOUNT}:role/lifeboat-{r}" for r in ("ReplicatorRole", "VerifierRole", "RestorerRole")}
    sources = {}
    for bucket in SOURCES:
        source = infra.synthetic_context(
            infra.load_template(infra.SOURCE_TEMPLATE), account=source_account, region=REGION,
            stack_name=f"lifeboat-source-{bucket}",
            parameters={
                "SourceBucketName": bucket,
                "EventsQueueArn": backup.getatt("EventsQueue", "Arn"),
                "ReplicatorRoleArn": arn["ReplicatorRole"],
                "VerifierRoleArn": arn["VerifierRole"],
                "RestorerRoleArn": arn["RestorerRole"],
            },
        )
        sources[bucket] = source.resources()
    return Deployment(resources, sources, BACKUP_ACCOUNT, source_account, params, backup)


def LAKE_POLICY(bucket: str) -> dict:
    """An existing lake bucket policy that Lifeboat must keep: a TLS deny and an ETL grant."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": "EtlReads", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:role/etl"},
         "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"},
    ]}


def _role_names(getatt, template):
    def wrapped(logical: str, attr: str):
        if template["Resources"][logical]["Type"] == "AWS::IAM::Role" and attr == "Arn":
            return f"arn:aws:iam::{BACKUP_ACCOUNT}:role/lifeboat-{logical}"
        return getatt(logical, attr)

    return wrapped


@pytest.fixture(params=["two-accounts", "single-account"])
def dep(request) -> Deployment:
    return resolve(request.param)


def writer(dep: Deployment) -> Principal:
    """A source writer at its most powerful: every S3 action on every resource."""
    return Principal(
        arn=f"arn:aws:iam::{dep.source_account}:role/etl-writer", account=dep.source_account,
        identity_policies=[{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}],
    )


def backup_admin(dep: Deployment) -> Principal:
    return Principal(
        arn=f"arn:aws:iam::{dep.backup_account}:role/Administrator", account=dep.backup_account,
        identity_policies=[{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}],
    )


# ----------------------------------------------------------------------- the bucket policy
def test_the_catalogue_knows_the_actions_we_reason_about():
    catalogue = s3_catalogue()
    for action in ("s3:deleteobjectversion", "s3:putbucketpolicy", "s3:putbucketobjectlockconfiguration",
                   "s3:putlifecycleconfiguration", "s3:bypassgovernanceretention", "s3:putobject"):
        assert action in catalogue
    assert len(bucket_actions()) > 100


def widened(who: Principal) -> Principal:
    """The same principal with s3:* on * in its own policy: only the bucket policy limits it."""
    return Principal(arn=who.arn, account=who.account, mfa=who.mfa,
                     identity_policies=[{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}])


def test_allowlist_denies_every_catalogue_action_lifeboat_does_not_need(dep):
    """A Lifeboat role widened to s3:* passes the wall; the allowlist still refuses it every
    action of the full catalogue but the twelve Lifeboat needs."""
    assert LIFEBOAT_NEEDS <= set(bucket_actions()), LIFEBOAT_NEEDS - set(bucket_actions())
    for logical in ("ReplicatorRole", "VerifierRole", "RestorerRole"):
        who = widened(dep.role(logical))
        allowed = {a for a in bucket_actions() if any(dep.on_backup(who, a, key) for key in BACKUP_KEYS)}
        assert allowed == LIFEBOAT_NEEDS, (logical, sorted(allowed ^ LIFEBOAT_NEEDS))
    for action in ONCE_MISSED:
        assert action.lower() in s3_catalogue(), action
        assert not dep.on_backup(widened(dep.role("ReplicatorRole")), action), action


def test_allowlist_is_a_not_action_deny_exempting_only_break_glass(dep):
    (stmt,) = [s for s in statements(dep.bucket_policy) if s["Sid"] == "DenyAllButLifeboatActionsExceptBreakGlass"]
    assert stmt["Effect"] == "Deny" and stmt["Principal"] == "*" and "Action" not in stmt
    assert sorted(as_list(stmt["Resource"])) == [f"arn:aws:s3:::{BACKUP_BUCKET}", f"arn:aws:s3:::{BACKUP_BUCKET}/*"]
    assert stmt["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": dep.role_arn("BreakGlassRole")}}


def test_nobody_destroys_not_even_break_glass_widened_to_s3_star(dep):
    """Break-glass with s3:* in its own policy (an IAM admin could give it that) is still
    refused every delete, the policy rewrite and the governance bypass."""
    bg = widened(dep.role("BreakGlassRole", mfa=True))
    for action in sorted(destructive_actions()):
        assert not any(dep.on_backup(bg, action, key) for key in BACKUP_KEYS), action
    (stmt,) = [s for s in statements(dep.bucket_policy) if s["Sid"] == "DenyDestructionToEveryone"]
    assert "Condition" not in stmt and stmt["Principal"] == "*"


def test_no_other_statement_denies_or_allows_something_a_role_needs(dep):
    """Besides the settings deny, the policy has only the wall and the TLS deny, and neither
    blocks a Lifeboat role over TLS."""
    sids = {s["Sid"] for s in statements(dep.bucket_policy)}
    assert sids == {"DenyDestructionToEveryone", "DenyAllButLifeboatActionsExceptBreakGlass",
                    "DenyEveryoneButLifeboat", "DenyInsecureTransport"}
    assert all(s["Effect"] == "Deny" for s in statements(dep.bucket_policy))
    for logical, action, key in [
        ("ReplicatorRole", "s3:PutObject", BACKUP_KEYS[0]),
        ("ReplicatorRole", "s3:GetObject", BACKUP_KEYS[0]),
        ("VerifierRole", "s3:ListBucket", BACKUP_KEYS[0]),
        ("VerifierRole", "s3:PutObject", BACKUP_KEYS[1]),
        ("RestorerRole", "s3:GetObjectVersion", BACKUP_KEYS[0]),
    ]:
        assert dep.on_backup(dep.role(logical), action, key), (logical, action)
        assert not dep.on_backup(dep.role(logical), action, key, secure=False), (logical, action, "over http")


def test_moto_leaves_out_only_statements_it_cannot_evaluate(dep):
    """The statements the local deployment leaves out are exactly the principal- or
    condition-scoped denies that would lock everyone out in moto; they are checked here."""
    by_sid = {s["Sid"]: s for s in statements(dep.bucket_policy)}
    for sid in infra.MOTO_UNEVALUABLE_STATEMENTS:
        assert sid in by_sid
        assert by_sid[sid]["Effect"] == "Deny" and by_sid[sid]["Condition"]


# ----------------------------------------------------------------------- the role policies
@pytest.mark.parametrize("logical", ["ReplicatorRole", "VerifierRole", "RestorerRole"])
def test_no_role_but_break_glass_may_delete_or_change_settings_on_the_backup(dep, logical):
    policies = role_policies(dep.backup[logical]["Properties"])
    for action in sorted(protected_actions()):
        for key in BACKUP_KEYS:
            resource = resource_for(action, BACKUP_BUCKET, key)
            assert decide(policies, action, resource, None, {}) != "allow", (logical, action, resource)


def test_break_glass_changes_alarmed_settings_but_cannot_delete_or_rewrite_the_policy(dep):
    bg = dep.role("BreakGlassRole", mfa=True)
    # Each of these fires BackupBucketTamperRule (test_destructive_paths.py).
    for action in ("s3:PutLifecycleConfiguration", "s3:PutBucketObjectLockConfiguration",
                   "s3:PutEncryptionConfiguration", "s3:PutObjectRetention", "s3:GetObject"):
        assert dep.on_backup(bg, action), action
    # It cannot grant itself deletes through the policy, nor delete, nor bypass retention.
    for action in ("s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutBucketVersioning", "s3:DeleteObject",
                   "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention", "s3:PutObject", "s3:DeleteBucket"):
        assert not dep.on_backup(bg, action), action


def test_hard_wall_matrix_on_the_backup_bucket(dep):
    """Every S3 bucket/object action, for every principal, with the full bucket policy."""
    allowed: dict[str, set[str]] = {}
    principals = {
        "source writer": writer(dep),
        "backup-account admin": backup_admin(dep),
        "replicator": dep.role("ReplicatorRole"),
        "verifier": dep.role("VerifierRole"),
        "restorer": dep.role("RestorerRole"),
    }
    for name, who in principals.items():
        allowed[name] = {a for a in bucket_actions() if any(dep.on_backup(who, a, key) for key in BACKUP_KEYS)}

    assert allowed["source writer"] == set()
    assert allowed["backup-account admin"] == set()

    assert {"s3:putobject", "s3:getobject", "s3:listbucket", "s3:abortmultipartupload"} <= allowed["replicator"]
    assert {a for a in allowed["replicator"] if not is_read(a)} == {
        "s3:putobject", "s3:putobjecttagging", "s3:abortmultipartupload"}

    assert {"s3:getobject", "s3:getobjectversion", "s3:listbucket", "s3:listbucketversions", "s3:putobject"} <= allowed["verifier"]
    assert {a for a in allowed["verifier"] if not is_read(a)} == {"s3:putobject"}

    assert {"s3:getobject", "s3:getobjectversion", "s3:listbucket", "s3:listbucketversions"} <= allowed["restorer"]
    assert {a for a in allowed["restorer"] if not is_read(a)} == set()


def test_verifier_writes_only_reports(dep):
    verifier = dep.role("VerifierRole")
    assert dep.on_backup(verifier, "s3:PutObject", "_lifeboat/reports/2026-11-20T10-00-00Z.json")
    for key in ["lake-a/sales/_delta_log/00000000000000000007.json", "_lifeboat/restores/x.json",
                "_lifeboat/reports", "_lifeboat/reportsx/evil.json", "x/_lifeboat/reports/r.json"]:
        assert not dep.on_backup(verifier, "s3:PutObject", key), key


def test_source_side_read_for_replication_write_for_restore_delete_for_nobody(dep):
    replicator, verifier, restorer = (dep.role(r) for r in ("ReplicatorRole", "VerifierRole", "RestorerRole"))
    for bucket in SOURCES:
        for who in (replicator, verifier, restorer):
            assert dep.on_source(who, "s3:GetObject", bucket)
            assert dep.on_source(who, "s3:ListBucket", bucket)
        assert dep.on_source(restorer, "s3:PutObject", bucket)
        for who in (replicator, verifier):
            assert not dep.on_source(who, "s3:PutObject", bucket)
        for who in (replicator, verifier, restorer):
            writes = {a for a in bucket_actions() if not is_read(a) and dep.on_source(who, a, bucket)}
            assert not any(a.startswith("s3:delete") for a in writes), writes
            assert not any(action_matches(p, a) for a in writes for p in ("s3:PutBucket*", "s3:PutLifecycleConfiguration")), writes
    assert {a for a in bucket_actions() if not is_read(a) and dep.on_source(restorer, a)} == {
        "s3:putobject", "s3:putobjecttagging", "s3:abortmultipartupload"}


def test_source_buckets_not_listed_are_out_of_reach(dep):
    other = "someone-elses-bucket"
    for logical in ("ReplicatorRole", "VerifierRole", "RestorerRole"):
        policies = role_policies(dep.backup[logical]["Properties"])
        for action in ("s3:GetObject", "s3:PutObject", "s3:ListBucket"):
            assert decide(policies, action, resource_for(action, other), None, {}) != "allow", (logical, action)


def test_source_stack_grants_nothing_on_the_backup_and_creates_no_identities(dep):
    for bucket, resources in dep.sources.items():
        assert not [r for r in resources.values() if r["Type"].startswith("AWS::IAM::")]
        for stmt in infra.lifeboat_source_statements({
                "SourceBucketName": bucket,
                **{f"{r}Arn": dep.role_arn(r) for r in ("ReplicatorRole", "VerifierRole", "RestorerRole")}}):
            assert stmt["Effect"] == "Allow"
            for resource in as_list(stmt["Resource"]):
                assert resource in (f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*")
            principals = as_list(stmt["Principal"]["AWS"])
            assert set(principals) <= {dep.role_arn(r) for r in ("ReplicatorRole", "VerifierRole", "RestorerRole")}


# ----------------------------------------------------------------------- trust, key, queue
@pytest.mark.parametrize("logical", ["ReplicatorRole", "VerifierRole", "RestorerRole"])
def test_function_roles_are_assumable_by_lambda_only(dep, logical):
    trust = dep.backup[logical]["Properties"]["AssumeRolePolicyDocument"]
    role_arn = dep.role_arn(logical)
    lam = Principal(arn="lambda.amazonaws.com", account="", service="lambda.amazonaws.com")
    assert decide([trust], "sts:AssumeRole", role_arn, lam, {}) == "allow"
    for who in (writer(dep), backup_admin(dep), dep.role("BreakGlassRole", mfa=True)):
        assert decide([trust], "sts:AssumeRole", role_arn, who, {}) == "none", who.arn


def test_break_glass_needs_mfa(dep):
    trust = dep.backup["BreakGlassRole"]["Properties"]["AssumeRolePolicyDocument"]
    role_arn = dep.role_arn("BreakGlassRole")
    admin = backup_admin(dep)
    assert decide([trust], "sts:AssumeRole", role_arn, admin, {"aws:MultiFactorAuthPresent": "true"}) == "allow"
    assert decide([trust], "sts:AssumeRole", role_arn, admin, {"aws:MultiFactorAuthPresent": "false"}) == "none"
    assert decide([trust], "sts:AssumeRole", role_arn, writer(dep), {"aws:MultiFactorAuthPresent": "true"}) == (
        "allow" if dep.source_account == dep.backup_account else "none")


KEY_ADMIN_ACTIONS = ("kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:CreateGrant")


@pytest.mark.parametrize("path", ["/lifeboat-key-admin/", "/security/kms-admins/"])
def test_only_key_admins_can_destroy_or_rewrite_the_backup_key(path):
    dep = resolve("two-accounts", KeyAdminRolePath=path)
    key_policy = dep.backup["BackupKey"]["Properties"]["KeyPolicy"]
    key = f"arn:aws:kms:{REGION}:{BACKUP_ACCOUNT}:key/00000000-0000-0000-0000-000000000000"
    everyone = {
        "key admin": Principal(arn=f"arn:aws:iam::{BACKUP_ACCOUNT}:role{path}alice", account=BACKUP_ACCOUNT),
        "admin": backup_admin(dep),
        "break-glass": dep.role("BreakGlassRole", mfa=True),
        "root": Principal(arn=f"arn:aws:iam::{BACKUP_ACCOUNT}:root", account=BACKUP_ACCOUNT),
        "other path": Principal(arn=f"arn:aws:iam::{BACKUP_ACCOUNT}:role/lifeboat-key-admins-not/bob", account=BACKUP_ACCOUNT),
    }
    for action in KEY_ADMIN_ACTIONS:
        verdict = {name: decide([key_policy], action, key, who, {"aws:PrincipalArn": who.arn})
                   for name, who in everyone.items()}
        assert verdict == {"key admin": "allow", "admin": "deny", "break-glass": "deny", "root": "deny",
                           "other path": "deny"}, (action, verdict)
    # Using the key is untouched: the roles decrypt through IAM.
    assert decide([key_policy], "kms:Decrypt", key, everyone["admin"], {"aws:PrincipalArn": everyone["admin"].arn}) == "allow"
    assert dep.backup["BackupKey"]["Properties"]["BypassPolicyLockoutSafetyCheck"] is True


def test_backup_bucket_is_encrypted_with_its_own_key(dep):
    key = f"arn:aws:kms:{REGION}:{BACKUP_ACCOUNT}:key/00000000-0000-0000-0000-000000000000"
    assert dep.backup["BackupBucket"]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}


def test_queue_accepts_events_only_from_the_source_buckets(dep):
    policy = dep.backup["EventsQueuePolicy"]["Properties"]["PolicyDocument"]
    queue = dep.backup["EventsQueuePolicy"]["Properties"]["Queues"][0]
    queue_arn = f"arn:aws:sqs:{REGION}:{BACKUP_ACCOUNT}:{queue.rsplit('/', 1)[1]}"
    s3 = Principal(arn="s3.amazonaws.com", account="", service="s3.amazonaws.com")

    def send(bucket: str, account: str) -> str:
        ctx = {"aws:SourceArn": f"arn:aws:s3:::{bucket}", "aws:SourceAccount": account}
        return decide([policy], "sqs:SendMessage", queue_arn, s3, ctx)

    for bucket in SOURCES:
        assert send(bucket, dep.source_account) == "allow"
        assert send(bucket, "999999999999") == "none"
    assert send("lake-c", dep.source_account) == "none"


def test_operators_pass_the_wall_but_still_cannot_delete():
    dep = resolve("two-accounts", OperatorPrincipalArns=f"arn:aws:iam::{BACKUP_ACCOUNT}:role/IncidentResponder")
    responder = Principal(
        arn=f"arn:aws:iam::{BACKUP_ACCOUNT}:role/IncidentResponder", account=BACKUP_ACCOUNT,
        identity_policies=[{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}],
    )
    assert dep.on_backup(responder, "s3:GetObject")
    assert dep.on_backup(responder, "s3:ListBucket")
    for action in sorted(protected_actions()):
        assert not dep.on_backup(responder, action), action
    # The Lifeboat roles are still let through next to the operators.
    assert dep.on_backup(dep.role("ReplicatorRole"), "s3:PutObject")
    assert not dep.on_backup(backup_admin(dep), "s3:GetObject")
