"""A small model of AWS policy evaluation, for what moto cannot evaluate: principals and
conditions in resource policies, cross-account access, and every S3 action by name.

It follows the documented evaluation logic closely enough for Lifeboat's documents: an
explicit Deny in any applicable policy wins; within one account a principal needs an Allow in
its identity policy or in the resource policy; across accounts it needs both. NotAction is
modelled (a statement applies to every action it does not list); elements it does not model
(NotPrincipal, NotResource, unknown condition operators) raise, so a template that starts
using them cannot pass unnoticed.

One AWS exception is modelled because the walls depend on it: the root user of the account
that owns a bucket may always read, put and delete the bucket's policy, whatever the policy
says (S3's lockout protection).
"""
from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cfnlint


def as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@lru_cache(maxsize=1)
def s3_catalogue() -> dict[str, list[str]]:
    """Every S3 IAM action (lower case) with the resource types it applies to, from the AWS
    service authorization data that cfn-lint ships."""
    path = Path(cfnlint.__file__).parent / "data" / "AdditionalSpecs" / "Policies.json"
    data = json.loads(path.read_text())
    return {f"s3:{name}": spec.get("Resources", []) for name, spec in data["s3"]["Actions"].items()}


def bucket_actions() -> list[str]:
    """S3 actions that apply to a bucket or to the objects in it."""
    return sorted(a for a, kinds in s3_catalogue().items() if {"bucket", "object"} & set(kinds))


def resource_for(action: str, bucket: str, key: str = "some/table/part-0.parquet") -> str:
    """The ARN an action is authorized against: the object for object actions, else the bucket."""
    kinds = s3_catalogue()[action.lower()]
    return f"arn:aws:s3:::{bucket}/{key}" if "object" in kinds else f"arn:aws:s3:::{bucket}"


def action_matches(pattern: str, action: str) -> bool:
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


def resource_matches(pattern: str, arn: str) -> bool:
    # In IAM, * and ? match any characters, "/" included; fnmatch does the same (no brackets
    # appear in these ARNs).
    return fnmatch.fnmatchcase(arn, pattern)


def statements(policy: dict) -> list[dict]:
    return as_list(policy["Statement"])


@dataclass
class Principal:
    arn: str  # role ARN (what aws:PrincipalArn holds for a role session), user ARN, or service
    account: str
    identity_policies: list[dict] = field(default_factory=list)
    service: str | None = None
    mfa: bool = False


def principal_matches(element, who: Principal) -> bool:
    if element == "*":
        return True
    if not isinstance(element, dict):
        raise NotImplementedError(f"principal element {element!r}")
    for kind, values in element.items():
        for value in as_list(values):
            if kind == "AWS":
                if value == "*" or value == who.arn:
                    return True
                if value in (who.account, f"arn:aws:iam::{who.account}:root") and who.service is None:
                    return True
            elif kind == "Service":
                if who.service == value:
                    return True
            else:
                raise NotImplementedError(f"principal kind {kind}")
    return False


def condition_holds(condition: dict | None, context: dict[str, str]) -> bool:
    for operator, tests in (condition or {}).items():
        if_exists = operator.endswith("IfExists")
        operator = operator.removesuffix("IfExists")
        for key, expected in tests.items():
            actual = context.get(key)
            if if_exists and actual is None:
                continue
            expected = [str(e) for e in as_list(expected)]
            if operator in ("ArnEquals", "StringEquals"):
                ok = actual in expected
            elif operator in ("ArnNotEquals", "StringNotEquals"):
                ok = actual not in expected
            elif operator in ("ArnLike", "StringLike"):
                ok = actual is not None and any(fnmatch.fnmatchcase(actual, e) for e in expected)
            elif operator in ("ArnNotLike", "StringNotLike"):
                ok = actual is None or not any(fnmatch.fnmatchcase(actual, e) for e in expected)
            elif operator == "Bool":
                ok = actual is not None and actual.lower() in [e.lower() for e in expected]
            else:
                raise NotImplementedError(f"condition operator {operator}")
            if not ok:
                return False
    return True


def statement_applies(stmt: dict, action: str, resource: str, who: Principal | None, context: dict) -> bool:
    for unsupported in ("NotPrincipal", "NotResource"):
        if unsupported in stmt:
            raise NotImplementedError(f"{unsupported} in {stmt.get('Sid')}")
    if ("Action" in stmt) == ("NotAction" in stmt):
        raise ValueError(f"statement {stmt.get('Sid')} needs exactly one of Action and NotAction")
    if who is not None and "Principal" in stmt and not principal_matches(stmt["Principal"], who):
        return False
    if "Action" in stmt:
        if not any(action_matches(p, action) for p in as_list(stmt["Action"])):
            return False
    elif any(action_matches(p, action) for p in as_list(stmt["NotAction"])):
        return False
    if "Resource" in stmt and not any(resource_matches(p, resource) for p in as_list(stmt["Resource"])):
        return False
    return condition_holds(stmt.get("Condition"), context)


def decide(policies: list[dict], action: str, resource: str, who: Principal | None, context: dict) -> str:
    """"deny", "allow" or "none" for one set of policy documents."""
    result = "none"
    for policy in policies:
        for stmt in statements(policy):
            if statement_applies(stmt, action, resource, who, context):
                if stmt["Effect"] == "Deny":
                    return "deny"
                result = "allow"
    return result


def is_allowed(
    who: Principal,
    action: str,
    resource: str,
    *,
    resource_policy: dict | None,
    resource_account: str,
    secure_transport: bool = True,
) -> bool:
    context = {
        "aws:PrincipalArn": who.arn,
        "aws:PrincipalAccount": who.account,
        "aws:SecureTransport": "true" if secure_transport else "false",
        "aws:MultiFactorAuthPresent": "true" if who.mfa else "false",
        "s3:ResourceAccount": resource_account,
        "aws:ResourceAccount": resource_account,
        "aws:PrincipalIsAWSService": "true" if who.service else "false",
    }
    identity = decide(who.identity_policies, action, resource, None, context)
    # The root's bucket-policy exception yields to an explicit deny on the identity side (an
    # SCP reaches a member account's root), but not to the bucket policy itself.
    if is_root(who) and who.account == resource_account and action.lower() in BUCKET_POLICY_ACTIONS:
        return identity != "deny"
    resource_side = decide([resource_policy] if resource_policy else [], action, resource, who, context)
    if "deny" in (identity, resource_side):
        return False
    if who.account == resource_account:
        return "allow" in (identity, resource_side)
    return identity == "allow" and resource_side == "allow"


BUCKET_POLICY_ACTIONS = {"s3:getbucketpolicy", "s3:putbucketpolicy", "s3:deletebucketpolicy"}


def is_root(who: Principal) -> bool:
    return who.arn == f"arn:aws:iam::{who.account}:root"


def role_policies(role_properties: dict) -> list[dict]:
    return [p["PolicyDocument"] for p in role_properties.get("Policies", [])]
