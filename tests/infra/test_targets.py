"""The infrastructure's entry points: cfn-lint on the templates, the make targets of
infra/infra.mk, the documented parameters file, and `make deploy-local` end to end."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

import lifeboat_infra as infra
from conftest import ROOT, VENV_BIN, MotoServer, free_port

MAKEFILE = ROOT / "infra" / "infra.mk"
VENV = VENV_BIN.parent


def make(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MAKE"))}
    return subprocess.run(
        ["make", "--no-print-directory", "-f", str(MAKEFILE), f"VENV={VENV}", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def test_cfn_lint_passes_on_every_template():
    templates = sorted((ROOT / "infra").glob("*.yaml"))
    assert [t.name for t in templates] == ["backup-account.yaml", "source-account.yaml"]
    done = make("lint-infra")
    assert done.returncode == 0, done.stdout + done.stderr


def test_cfn_lint_target_fails_on_a_broken_template(tmp_path):
    """The lint target really checks: a template with an unknown resource property fails it."""
    broken = (ROOT / "infra" / "source-account.yaml").read_text().replace(
        "      BucketName: !Ref SourceBucketName", "      BucketNam: !Ref SourceBucketName")
    (tmp_path / "broken.yaml").write_text(broken)
    done = subprocess.run([str(VENV_BIN / "cfn-lint"), str(tmp_path / "broken.yaml")], capture_output=True, text=True)
    assert done.returncode != 0
    assert "BucketNam" in done.stdout


def test_infra_targets_are_documented_for_make_help():
    documented = re.findall(r"^([a-z-]+):.*## (.+)$", MAKEFILE.read_text(), flags=re.M)
    assert sorted(name for name, _ in documented) == ["build", "deploy", "deploy-local", "lint-infra"]


def test_build_fails_with_a_clear_message_when_the_rust_target_is_missing():
    done = make("build", "LAMBDA_RUST_TARGET=no-such-target-lifeboat", timeout=60)
    assert done.returncode != 0
    assert "the Rust target no-such-target-lifeboat is not installed" in done.stderr
    assert "cargo-lambda" not in done.stdout  # stopped before building anything


def test_params_example_fits_the_templates():
    params = json.loads((ROOT / "infra" / "params.example.json").read_text())
    assert params["region"] and params["artifact_bucket"] and params["backup"]["stack_name"]
    assert infra.parameter_problems(
        infra.BACKUP_TEMPLATE, params["backup"]["parameters"], infra.BACKUP_PARAMETERS_FROM_TOOL) == []
    assert params["sources"]
    for source in params["sources"]:
        assert source["stack_name"]
        assert infra.parameter_problems(
            infra.SOURCE_TEMPLATE, source["parameters"], infra.SOURCE_PARAMETERS_FROM_TOOL) == []
    # The source buckets of the source stacks are the ones the backup stack replicates.
    assert sorted(s["parameters"]["SourceBucketName"] for s in params["sources"]) == sorted(
        params["backup"]["parameters"]["SourceBucketNames"].split(","))


def test_deploy_rejects_a_params_file_with_mistakes(tmp_path):
    params = json.loads((ROOT / "infra" / "params.example.json").read_text())
    params["backup"]["parameters"]["ObjectLockDays"] = "30"
    del params["backup"]["parameters"]["SourceBucketNames"]
    (tmp_path / "params.json").write_text(json.dumps(params))
    done = make("deploy", f"INFRA_PARAMS={tmp_path / 'params.json'}")
    assert done.returncode != 0
    assert "unknown parameter ObjectLockDays" in done.stderr
    assert "required parameter SourceBucketNames" in done.stderr
    assert "+ " not in done.stdout  # no AWS CLI call was made


def test_deploy_local_into_a_running_moto(moto, admin, tmp_path):
    done = make("deploy-local", f"LOCAL_ENDPOINT={moto.endpoint}", "LOCAL_SOURCE_BUCKETS=demo-a,demo-b",
                "LOCAL_BACKUP_BUCKET=demo-backup", f"LOCAL_STATE_DIR={tmp_path}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"export LIFEBOAT_BACKUP_BUCKET=demo-backup" in done.stdout
    assert "export LIFEBOAT_SOURCE_BUCKETS=demo-a,demo-b" in done.stdout
    assert "left out (moto cannot evaluate it; checked on the document): BackupBucketPolicy.DenyEveryoneButLifeboat" in done.stdout
    assert "started moto_server" not in done.stdout
    s3 = admin.client("s3")
    assert s3.get_object_lock_configuration(Bucket="demo-backup")["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    for bucket in ("demo-a", "demo-b"):
        assert s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    # Again: an update, not a failure.
    again = make("deploy-local", f"LOCAL_ENDPOINT={moto.endpoint}", "LOCAL_SOURCE_BUCKETS=demo-a,demo-b",
                 "LOCAL_BACKUP_BUCKET=demo-backup", f"LOCAL_STATE_DIR={tmp_path}")
    assert again.returncode == 0, again.stdout + again.stderr


def test_deploy_local_starts_moto_when_none_answers(tmp_path):
    endpoint = f"http://127.0.0.1:{free_port()}"
    done = make("deploy-local", f"LOCAL_ENDPOINT={endpoint}", f"LOCAL_STATE_DIR={tmp_path}")
    pid_file = tmp_path / "moto-server.pid"
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"started moto_server (pid {pid_file.read_text().strip()}) on {endpoint}" in done.stdout
        session = infra.LocalSession(endpoint)
        stack = session.client("cloudformation").describe_stacks(StackName="lifeboat")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
    finally:
        if pid_file.exists():
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)


def test_notification_for_an_existing_bucket_is_merged_not_replaced():
    queue = "arn:aws:sqs:eu-west-1:222222222222:lifeboat-EventsQueue-X"
    existing = {
        "ResponseMetadata": {},
        "LambdaFunctionConfigurations": [{"Id": "thumbnails", "LambdaFunctionArn": "arn:aws:lambda:eu-west-1:1:function:t",
                                          "Events": ["s3:ObjectCreated:*"],
                                          "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "images/"}]}}}],
        "QueueConfigurations": [{"Id": "audit", "QueueArn": "arn:aws:sqs:eu-west-1:1:audit", "Events": ["s3:ObjectRestore:*"]}],
    }
    merged = infra.merged_notification(existing, queue)
    assert merged["LambdaFunctionConfigurations"] == existing["LambdaFunctionConfigurations"]
    assert merged["QueueConfigurations"][0]["Id"] == "audit"
    assert merged["QueueConfigurations"][1] == {
        "Id": "lifeboat", "QueueArn": queue, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
    assert "ResponseMetadata" not in merged
    assert infra.merged_notification(merged, queue) == merged  # idempotent
