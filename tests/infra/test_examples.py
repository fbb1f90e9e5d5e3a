"""The example guardrails in infra/examples/: valid policy documents naming only actions AWS
defines (cfn-lint's catalogue), and the SCP closes the gaps IAM inside the account leaves
(test_destructive_paths.py) but break-glass itself, which stays usable and paged."""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import cfnlint
import pytest

from iam_model import Principal, action_matches, as_list, is_allowed, statements
from test_destructive_paths import PATHS, alarm_for, deployment, principals

EXAMPLES = Path(__file__).resolve().parents[2] / "infra" / "examples"
NAMES = {"BACKUP_ACCOUNT": "222222222222", "SOURCE_ACCOUNT": "111111111111", "BACKUP_BUCKET": "acme-lifeboat-backup",
         "STACK_NAME": "lifeboat", "BREAK_GLASS_ROLE_NAME": "lifeboat-BreakGlassRole", "DEPLOY_ROLE_NAME": "Deployer",
         "OPERATOR_ROLE_NAME": "oncall", "SECURITY_ADMIN_ROLE_NAME": "SecurityAdmin"}


def example(name: str, fill: bool = True) -> dict:
    text = (EXAMPLES / name).read_text()
    if fill:
        for key, value in NAMES.items():
            text = text.replace(key, value)
    return json.loads(text)


@lru_cache(maxsize=1)
def catalogue() -> set[str]:
    data = json.loads((Path(cfnlint.__file__).parent / "data" / "AdditionalSpecs" / "Policies.json").read_text())
    return {f"{service}:{action}" for service, spec in data.items() for action in spec.get("Actions", {})}


@pytest.mark.parametrize("name,kind", [("scp-backup-account.json", "scp"), ("rcp-backup-account.json", "rcp")])
def test_examples_are_policies_of_known_actions(name, kind):
    policy = example(name, fill=False)
    assert policy["Version"] == "2012-10-17"
    for stmt in statements(policy):
        assert stmt["Sid"] and stmt["Effect"] == "Deny"
        assert ("Principal" in stmt) == (kind == "rcp")
        for action in as_list(stmt["Action"]):
            if action.endswith("*"):
                continue
            assert action.lower() in catalogue(), f"{name}: {action} is not an IAM action"
    placeholders = set(re.findall(r"\b[A-Z][A-Z]+(?:_[A-Z]+)+\b", (EXAMPLES / name).read_text()))
    assert placeholders and placeholders <= set(NAMES), placeholders - set(NAMES)


def test_the_scp_turns_every_in_account_gap_but_break_glass_into_a_refusal():
    scp = example("scp-backup-account.json")
    dep = deployment("single-account")
    closed, open_ = [], []
    for who, principal in principals(dep).items():
        guarded = Principal(principal.arn, principal.account, principal.identity_policies + [scp], mfa=principal.mfa)
        for path in PATHS:
            args = dict(resource_policy=path.policy(dep), resource_account=dep.backup_account)
            if is_allowed(principal, path.action, path.resource(dep), **args):
                (open_ if is_allowed(guarded, path.action, path.resource(dep), **args) else closed).append(
                    (who, path.name))
    assert closed, "the SCP closes nothing"
    assert {name for _, name in open_} == {"assume break-glass"}, open_
    assert alarm_for(dep, next(p for p in PATHS if p.name == "assume break-glass"))


def test_the_rcp_refuses_other_accounts_even_where_a_policy_lets_them_in():
    rcp = example("rcp-backup-account.json")
    stranger = Principal("arn:aws:iam::999999999999:role/x", "999999999999",
                         [{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}])
    careless = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}] +
                statements(rcp)}
    bucket_object = "arn:aws:s3:::acme-lifeboat-backup/lake/x"
    assert not is_allowed(stranger, "s3:GetObject", bucket_object, resource_policy=careless, resource_account="222222222222")
    insider = Principal("arn:aws:iam::222222222222:role/lifeboat-VerifierRole", "222222222222",
                        [{"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}])
    assert is_allowed(insider, "s3:GetObject", bucket_object, resource_policy=careless, resource_account="222222222222")
