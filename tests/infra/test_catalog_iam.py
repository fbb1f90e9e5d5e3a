"""The Glue Data Catalog side of the walls (#16): the verifier reads the configured databases
and writes the captured definitions, the restorer creates and updates entries in those
databases only and deletes none, and the lake's writers can do nothing to the captured copies
in the backup. Identity policies are evaluated with the policy model (moto does not enforce
Glue permissions by resource)."""
from __future__ import annotations

import pytest

from iam_model import bucket_actions, decide
from test_policy_documents import BACKUP_KEYS, resolve, writer

REGION = "eu-west-1"
CAPTURE_KEY = "_lifeboat/catalog/sales/orders/2026-11-20T10-00-00.000Z-0a1b2c3d.json"


def glue_arn(account: str, kind: str, database: str, table: str | None = None) -> str:
    name = f"{database}/{table}" if table else database
    return f"arn:aws:glue:{REGION}:{account}:{kind}/{name}"


def can(dep, role: str, action: str, resource: str) -> bool:
    who = dep.role(role)
    # Glue sets aws:ResourceAccount to the account in the resource's ARN.
    context = {"aws:ResourceAccount": resource.split(":")[4], "aws:PrincipalArn": who.arn}
    return decide(who.identity_policies, action, resource, None, context) == "allow"


@pytest.fixture(params=["two-accounts", "single-account"])
def dep(request):
    return resolve(request.param, GlueDatabases="sales,finance")


def test_verifier_reads_the_configured_databases_only(dep):
    acct = dep.source_account
    for db in ("sales", "finance"):
        for action in ("glue:GetTable", "glue:GetTables", "glue:GetTableVersions"):
            assert can(dep, "VerifierRole", action, glue_arn(acct, "table", db, "orders")), (db, action)
        assert can(dep, "VerifierRole", "glue:GetDatabase", glue_arn(acct, "database", db))
    assert can(dep, "VerifierRole", "glue:GetTable", f"arn:aws:glue:{REGION}:{acct}:catalog")
    assert not can(dep, "VerifierRole", "glue:GetTable", glue_arn(acct, "table", "hr", "salaries"))
    # Another account's catalog with a database of the same name is out of reach.
    assert not can(dep, "VerifierRole", "glue:GetTable", glue_arn("999999999999", "table", "sales", "orders"))
    for action in ("glue:CreateTable", "glue:UpdateTable", "glue:DeleteTable"):
        assert not can(dep, "VerifierRole", action, glue_arn(acct, "table", "sales", "orders")), action


def test_restorer_registers_in_the_configured_databases_only_and_deletes_nothing(dep):
    acct = dep.source_account
    for db in ("sales", "finance"):
        for action in ("glue:CreateTable", "glue:UpdateTable", "glue:GetTable"):
            assert can(dep, "RestorerRole", action, glue_arn(acct, "table", db, "orders")), (db, action)
    for action in ("glue:CreateTable", "glue:UpdateTable"):
        assert not can(dep, "RestorerRole", action, glue_arn(acct, "table", "hr", "salaries")), action
    for action in ("glue:DeleteTable", "glue:BatchDeleteTable", "glue:DeleteDatabase", "glue:CreateDatabase"):
        assert not can(dep, "RestorerRole", action, glue_arn(acct, "table", "sales", "orders")), action
    assert not can(dep, "ReplicatorRole", "glue:GetTable", glue_arn(acct, "table", "sales", "orders"))


def test_verifier_writes_the_captured_definitions_and_nobody_rewrites_them(dep):
    assert dep.on_backup(dep.role("VerifierRole"), "s3:PutObject", CAPTURE_KEY)
    # The replicator puts anywhere in the backup (put-only; Object Lock keeps every version);
    # the restorer writes nothing there.
    assert not dep.on_backup(dep.role("RestorerRole"), "s3:PutObject", CAPTURE_KEY)
    lake_writer = writer(dep)
    assert {a for a in bucket_actions() if dep.on_backup(lake_writer, a, CAPTURE_KEY)} == set()
    for who in (dep.role("VerifierRole"), dep.role("RestorerRole"), lake_writer):
        assert not dep.on_backup(who, "s3:DeleteObjectVersion", CAPTURE_KEY)
    assert BACKUP_KEYS  # the same deployment as the bucket-wall tests


def test_without_databases_no_role_touches_the_catalog():
    plain = resolve("single-account")
    for role in ("VerifierRole", "RestorerRole", "ReplicatorRole"):
        for action in ("glue:GetTable", "glue:CreateTable"):
            assert not can(plain, role, action, glue_arn(plain.source_account, "table", "sales", "orders")), role
    assert not plain.on_backup(plain.role("VerifierRole"), "s3:PutObject", CAPTURE_KEY)
    assert "CatalogChangeRule" not in plain.backup
