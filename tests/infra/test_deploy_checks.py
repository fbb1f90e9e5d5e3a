"""What `make deploy` decides before and after it calls AWS: the single-account refusal, the
notices for weaker choices, the alarm-subscriber warning, the walled artifact bucket, the code
version pins, the bucket-policy merge for existing source buckets, and the restore permission
for the named operators only. Pure functions of their inputs, table-driven."""
from __future__ import annotations

import json

import pytest

import lifeboat_infra as infra
from conftest import ROOT
from iam_model import Principal, is_allowed
from test_targets import make

ROLES = {"ReplicatorRoleArn": "arn:aws:iam::2:role/r", "VerifierRoleArn": "arn:aws:iam::2:role/v",
         "RestorerRoleArn": "arn:aws:iam::2:role/w"}


@pytest.mark.parametrize("params,account,refused", [
    ({"SourceAccountId": ""}, None, True),
    ({}, None, True),
    ({"SourceAccountId": "", "AcknowledgeSingleAccount": "true"}, None, False),
    ({"SourceAccountId": "111111111111"}, None, False),
    ({"SourceAccountId": "111111111111"}, "222222222222", False),
    ({"SourceAccountId": "222222222222"}, "222222222222", True),  # the backup account itself
    ({"SourceAccountId": "222222222222", "AcknowledgeSingleAccount": "true"}, "222222222222", False),
])
def test_single_account_needs_an_acknowledgement(params, account, refused):
    problem = infra.single_account_problem(params, account)
    assert (problem is not None) == refused
    if refused:
        assert "AcknowledgeSingleAccount" in problem and "non-admin writers" in problem


def test_the_template_refuses_it_too():
    rule = infra.load_template(infra.BACKUP_TEMPLATE)["Rules"]["SingleAccountNeedsAcknowledgement"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "SourceAccountId"}, ""]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Equals": [{"Ref": "AcknowledgeSingleAccount"}, "true"]}


def test_deploy_refuses_single_account_before_calling_aws(tmp_path):
    params = json.loads((ROOT / "infra" / "params.example.json").read_text())
    params["backup"]["parameters"]["SourceAccountId"] = ""
    (tmp_path / "params.json").write_text(json.dumps(params))
    done = make("deploy", f"INFRA_PARAMS={tmp_path / 'params.json'}")
    assert done.returncode != 0
    assert "single-account deployment" in done.stderr and "AcknowledgeSingleAccount" in done.stderr
    assert "+ " not in done.stdout


@pytest.mark.parametrize("params,expected", [
    ({"SourceAccountId": "1" * 12}, []),
    ({"SourceAccountId": "1" * 12, "ObjectLockMode": "COMPLIANCE"}, []),
    ({"SourceAccountId": "1" * 12, "ObjectLockMode": "GOVERNANCE"}, ["GOVERNANCE"]),
    ({"SourceAccountId": "", "AcknowledgeSingleAccount": "true"}, ["single-account"]),
])
def test_deploy_says_what_weaker_choices_give_up(params, expected):
    notices = infra.deploy_notices(params)
    assert len(notices) == len(expected)
    for notice, word in zip(notices, expected):
        assert word in notice
    if expected == ["GOVERNANCE"]:
        assert "root" in notices[0] and "BypassGovernanceRetention" in notices[0]


@pytest.mark.parametrize("subscriptions,warns", [
    ([], "no subscriber"),
    ([{"SubscriptionArn": "PendingConfirmation", "Endpoint": "oncall@example.com", "Protocol": "email"}], "unconfirmed"),
    ([{"SubscriptionArn": "arn:aws:sns:eu-west-1:2:t:abc", "Endpoint": "oncall@example.com", "Protocol": "email"}], None),
    ([{"SubscriptionArn": "PendingConfirmation", "Endpoint": "a@example.com"},
      {"SubscriptionArn": "arn:aws:sns:eu-west-1:2:t:abc", "Endpoint": "https://global.sns-api.chatbot.amazonaws.com"}], None),
])
def test_deploy_warns_when_no_one_receives_alarms(subscriptions, warns):
    warning = infra.alarm_topic_warning(subscriptions, "arn:aws:sns:eu-west-1:2:t")
    if warns is None:
        assert warning is None
    else:
        assert warns in warning and "Chatbot" in warning


@pytest.mark.parametrize("region,located", [("us-east-1", False), ("eu-west-1", True)])
def test_artifact_bucket_is_created_walled_and_versioned(region, located):
    commands = infra.artifact_bucket_commands("acme-artifacts", region)
    by_call = {c[1]: c for c in commands}
    assert commands[0][1] == "create-bucket"
    assert ("--create-bucket-configuration" in commands[0]) == located
    assert set(by_call) == {"create-bucket", "put-public-access-block", "put-bucket-ownership-controls",
                            "put-bucket-versioning", "put-bucket-encryption", "put-bucket-policy"}
    assert by_call["put-bucket-versioning"][-1] == "Status=Enabled"
    assert all(f"{k}=true" in by_call["put-public-access-block"][-1]
               for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"))
    policy = json.loads(by_call["put-bucket-policy"][-1])
    anyone = Principal("arn:aws:iam::2:role/deployer", "2", [{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}])
    for secure, allowed in ((True, True), (False, False)):
        assert is_allowed(anyone, "s3:GetObject", "arn:aws:s3:::acme-artifacts/lifeboat/x.zip", resource_policy=policy,
                          resource_account="2", secure_transport=secure) is allowed


def test_every_function_pins_the_uploaded_version():
    code = {f: (f"lifeboat/{f}-abc.zip", f"v-{f}") for f in infra.FUNCTIONS}
    params = infra.code_parameters("acme-artifacts", code)
    assert params == {
        "CodeBucket": "acme-artifacts",
        "ReplicateCodeKey": "lifeboat/replicate-abc.zip", "ReplicateCodeVersion": "v-replicate",
        "VerifyCodeKey": "lifeboat/verify-abc.zip", "VerifyCodeVersion": "v-verify",
        "RestoreCodeKey": "lifeboat/restore-abc.zip", "RestoreCodeVersion": "v-restore",
    }
    assert set(params) - {"CodeBucket"} <= infra.BACKUP_PARAMETERS_FROM_TOOL
    with pytest.raises(ValueError, match="VersionId"):
        infra.code_parameters("acme-artifacts", {**code, "verify": ("k", "")})


EXISTING = {"Version": "2012-10-17", "Statement": [
    {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::lake/*",
     "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    {"Sid": "LifeboatReadSource", "Effect": "Allow", "Principal": {"AWS": "old"}, "Action": "s3:GetObject",
     "Resource": "arn:aws:s3:::lake/*"},
    {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::lake/*",
     "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}},
]}


@pytest.mark.parametrize("existing", [None, EXISTING, {"Version": "2012-10-17", "Statement": EXISTING["Statement"][0]}])
def test_source_bucket_policy_is_merged_never_replaced(existing):
    ours = infra.lifeboat_source_statements({"SourceBucketName": "lake", **ROLES})
    merged = infra.merged_bucket_policy(existing, ours)
    theirs = [] if existing is None else (existing["Statement"] if isinstance(existing["Statement"], list)
                                          else [existing["Statement"]])
    assert merged["Statement"] == [s for s in theirs if not s.get("Sid", "").startswith("Lifeboat")] + ours
    assert infra.merged_bucket_policy(merged, ours) == merged  # idempotent
    assert existing is None or existing.get("Statement") is not merged["Statement"]


def test_source_stack_sets_a_policy_only_on_a_bucket_it_creates():
    template = infra.load_template(infra.SOURCE_TEMPLATE)
    policy = template["Resources"]["SourceBucketPolicy"]
    assert policy["Condition"] == "CreateBucket" and policy["DeletionPolicy"] == "Retain"
    assert "ManageBucketPolicy" not in template["Parameters"]
    resolved = infra.synthetic_context(
        template, account="1", region="eu-west-1", stack_name="s",
        parameters={"SourceBucketName": "lake", "CreateSourceBucket": "true", "EventsQueueArn": "q", **ROLES},
    ).resources()
    assert resolved["SourceBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"] == \
        infra.lifeboat_source_statements({"SourceBucketName": "lake", **ROLES})


def restore_permissions(operators: str) -> list[str]:
    resources = infra.synthetic_context(
        infra.load_template(infra.BACKUP_TEMPLATE), account="2", region="eu-west-1", stack_name="lifeboat",
        parameters={"SourceBucketNames": "lake", "CodeBucket": "a", "SourceAccountId": "111111111111",
                    "OperatorPrincipalArns": operators,
                    "ReplicateCodeVersion": "1", "VerifyCodeVersion": "2", "RestoreCodeVersion": "3"},
    ).resources()
    permissions = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    for p in permissions:
        if p["Principal"] != "events.amazonaws.com":
            assert (p["Action"], p["FunctionName"]) == ("lambda:InvokeFunction", "lifeboat-restore")
    return sorted(p["Principal"] for p in permissions if p["Principal"] != "events.amazonaws.com")


@pytest.mark.parametrize("operators", [
    [], ["arn:aws:iam::2:role/oncall"], ["arn:aws:iam::2:role/a", "arn:aws:iam::3:role/b"],
    [f"arn:aws:iam::2:role/o{i}" for i in range(4)],
])
def test_restore_may_be_invoked_by_the_named_operators_only(operators):
    assert restore_permissions(",".join(operators)) == sorted(operators)


def test_more_operators_than_permissions_are_refused():
    assert infra.operator_problems({"OperatorPrincipalArns": ",".join(f"arn:aws:iam::2:role/o{i}" for i in range(5))})
    assert infra.operator_problems({"OperatorPrincipalArns": "oncall"})
    assert infra.operator_problems({"OperatorPrincipalArns": "arn:aws:iam::2:role/a,arn:aws:iam::2:role/b"}) == []


@pytest.mark.parametrize("variant,account", [("two", "111111111111"), ("single", "222222222222")])
def test_restore_writes_only_into_source_buckets_of_the_source_account(variant, account):
    from iam_model import role_policies
    resources = infra.synthetic_context(
        infra.load_template(infra.BACKUP_TEMPLATE), account="222222222222", region="eu-west-1", stack_name="lifeboat",
        parameters={"SourceBucketNames": "lake", "CodeBucket": "a",
                    "SourceAccountId": account if variant == "two" else "", "AcknowledgeSingleAccount": "true",
                    "ReplicateCodeVersion": "1", "VerifyCodeVersion": "2", "RestoreCodeVersion": "3"},
    ).resources()
    restorer = Principal("arn:aws:iam::222222222222:role/lifeboat-RestorerRole", "222222222222",
                         role_policies(resources["RestorerRole"]["Properties"]))
    open_policy = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject", "Resource": "*"}]}
    # The right bucket in the right account: yes. A bucket of that name owned by anyone else
    # (a deleted source bucket's name taken over): no, even if its policy lets everyone write.
    assert is_allowed(restorer, "s3:PutObject", "arn:aws:s3:::lake/t/x", resource_policy=open_policy, resource_account=account)
    assert not is_allowed(restorer, "s3:PutObject", "arn:aws:s3:::lake/t/x", resource_policy=open_policy,
                          resource_account="999999999999")
    # Another bucket of the source account: the restorer's own policy grants nothing there.
    assert not is_allowed(restorer, "s3:PutObject", "arn:aws:s3:::other/t/x", resource_policy=None,
                          resource_account=account)
