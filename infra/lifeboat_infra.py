#!/usr/bin/env python3
"""Deployment helper for Lifeboat's CloudFormation templates.

Commands (run with the venv's python; `make deploy` / `make deploy-local` call them):

  deploy --params infra/params.json
      Real AWS, through the AWS CLI: refuses a single-account deployment without
      AcknowledgeSingleAccount, creates the artifact bucket walled and versioned, uploads
      dist/*.zip (each function pins the upload's version), deploys the backup stack, then one
      source stack per source bucket with the backup stack's outputs, then merges the queue
      notification and the bucket-policy statements into existing source buckets; warns when
      the alarm topic has no confirmed subscriber.
  deploy-local [--endpoint URL]
      A local moto server ($AWS_ENDPOINT_URL, started if nothing answers): deploys both
      templates with CloudFormation, then applies with the API what moto's CloudFormation
      skips (see MOTO_SKIPS below), and prints the LIFEBOAT_* environment for the CLI.
  attach-notification --bucket B --queue-arn ARN [--profile P]
      Merges Lifeboat's queue notification into an existing bucket's notification
      configuration (CloudFormation cannot change a bucket it did not create).
  attach-bucket-policy --bucket B --replicator-role-arn ... --verifier-role-arn ... --restorer-role-arn ...
      Merges Lifeboat's statements (Sids starting with "Lifeboat") into an existing bucket's
      policy, keeping every other statement: the source stack never replaces a bucket policy.

The template reading and intrinsic-function resolution below is shared with tests/infra, so
the tests check the very documents this tool applies.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any, Callable

INFRA = Path(__file__).resolve().parent
ROOT = INFRA.parent
BACKUP_TEMPLATE = INFRA / "backup-account.yaml"
SOURCE_TEMPLATE = INFRA / "source-account.yaml"
FUNCTIONS = ("replicate", "verify", "restore")
# The alarm contract: metrics and finding kinds -> alarms, disasters -> alarms, CloudTrail
# events -> tamper rules. The functions emit what it names; the drills print from it.
ALARM_CONTRACT = INFRA / "alarms.json"

# What moto's CloudFormation accepts but does not apply (measured with moto 5.2): these
# resources and bucket properties are applied with the API after the stack is created.
MOTO_SKIPPED_BUCKET_PROPERTIES = (
    "VersioningConfiguration",
    "ObjectLockConfiguration",
    "PublicAccessBlockConfiguration",
    "LifecycleConfiguration",
    "OwnershipControls",
    "NotificationConfiguration",
)
MOTO_SKIPPED_RESOURCE_TYPES = (
    "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::SNS::Subscription",
)
# Moto's CloudFormation stores a role's inline policies as parsed objects, which its own IAM
# enforcement cannot read (a server error on every request the role makes), and does not
# update them on stack updates. They are put again, as the same JSON documents, with the API.
MOTO_REPUT_RESOURCE_TYPES = ("AWS::IAM::Role",)
# Bucket-policy statements moto cannot evaluate. Moto ignores principals and conditions, so a
# Deny that exempts some principals by condition denies everyone there. The delete/settings
# Deny is still applied (everyone a local test acts as is denied by it in AWS too); these two
# would lock the Lifeboat roles out of the backup in moto, and are verified on the document
# instead (tests/infra/test_policy_documents.py).
MOTO_UNEVALUABLE_STATEMENTS = {
    "DenyAllButLifeboatActionsExceptBreakGlass": "exempts break-glass by aws:PrincipalArn condition",
    "DenyEveryoneButLifeboat": "exempts the Lifeboat roles by aws:PrincipalArn condition",
    "DenyInsecureTransport": "depends on the aws:SecureTransport condition",
}


def load_alarm_contract() -> dict:
    return json.loads(ALARM_CONTRACT.read_text())


def contract_alarms(contract: dict) -> dict[str, dict]:
    """Every Lifeboat-metric alarm of the contract: logical id -> {metric, dimensions}."""
    alarms = {a["alarm"]: {"metric": a["metric"], "dimensions": dict(a["dimensions"])} for a in contract["metrics"]}
    finding = contract["finding_metric"]
    for kind, alarm in contract["findings"].items():
        dimensions = {k: (kind if v == "<finding kind>" else v) for k, v in finding["dimensions"].items()}
        alarms[alarm] = {"metric": finding["metric"], "dimensions": dimensions}
    return alarms


# --------------------------------------------------------------------------- templates
def load_template(path: str | Path) -> dict:
    """Parses a CloudFormation YAML template, turning short-form tags (!Ref, !Sub, ...) into
    their long form ({"Ref": ...}, {"Fn::Sub": ...})."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if suffix == "Ref":
            return {"Ref": value}
        if suffix == "Condition":
            return {"Condition": value}
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {f"Fn::{suffix}": value}

    Loader.add_multi_constructor("!", construct)
    # Keep "2010-09-09" and the like as strings, as CloudFormation does.
    Loader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    with open(path) as f:
        return yaml.load(f, Loader=Loader)  # noqa: S506 (SafeLoader subclass)


class _NoValue:
    """AWS::NoValue: the enclosing property or list item disappears."""


NO_VALUE = _NoValue()


class Resolver:
    """Evaluates the intrinsic functions of one template for given parameters.

    `ref` maps a logical id to what !Ref returns for a resource; `getatt(logical_id, attr)`
    returns an attribute. Both come from a deployed stack (deployed_context) or are made up
    consistently for document tests (synthetic_context)."""

    def __init__(
        self,
        template: dict,
        parameters: dict[str, str],
        *,
        account: str,
        region: str,
        stack_name: str,
        ref: dict[str, str],
        getatt: Callable[[str, str], Any],
        partition: str = "aws",
    ):
        self.template = template
        self.account = account
        self.region = region
        self.stack_name = stack_name
        self.partition = partition
        self.ref = ref
        self.getatt = getatt
        self.params: dict[str, Any] = {}
        for name, spec in template.get("Parameters", {}).items():
            if name in parameters:
                value: Any = str(parameters[name])
            elif "Default" in spec:
                value = str(spec["Default"])
            else:
                raise ValueError(f"parameter {name} has no value and no default")
            if spec["Type"] == "CommaDelimitedList":
                value = [v.strip() for v in value.split(",")] if value != "" else [""]
            self.params[name] = value
        unknown = set(parameters) - set(self.params)
        if unknown:
            raise ValueError(f"unknown parameters: {sorted(unknown)}")
        self.conditions: dict[str, bool] = {}
        for name in template.get("Conditions", {}):
            self.condition(name)

    def pseudo(self, name: str) -> Any:
        return {
            "AWS::AccountId": self.account,
            "AWS::Region": self.region,
            "AWS::StackName": self.stack_name,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }[name]

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self.conditions[name]

    def lookup(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.params:
            return self.params[name]
        return self.ref[name]

    def sub(self, text: str, variables: dict[str, Any]) -> str:
        out, i = [], 0
        while i < len(text):
            start = text.find("${", i)
            if start < 0:
                out.append(text[i:])
                break
            out.append(text[i:start])
            end = text.index("}", start)
            name = text[start + 2 : end]
            if name.startswith("!"):  # ${!Literal}
                out.append("${" + name[1:] + "}")
            elif name in variables:
                out.append(str(variables[name]))
            elif "." in name and not name.startswith("AWS::"):
                logical, attr = name.split(".", 1)
                out.append(str(self.getatt(logical, attr)))
            else:
                out.append(str(self.lookup(name)))
            i = end + 1
        return "".join(out)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(v) for v in node]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.lookup(arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::GetAtt":
                return self.getatt(arg[0], arg[1])
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self.sub(arg, {})
                text, variables = arg
                return self.sub(text, {k: self.resolve(v) for k, v in variables.items()})
            if key == "Fn::Join":
                delimiter, values = arg
                values = self.resolve(values)
                return delimiter.join(str(v) for v in values)
            if key == "Fn::Split":
                delimiter, value = arg
                return self.resolve(value).split(delimiter)
            if key == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                a, b = self.resolve(arg)
                return a == b
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(arg))
            if key == "Fn::Or":
                return any(self.resolve(arg))
            if key == "Fn::Select":
                index, values = self.resolve(arg)
                return values[int(index)]
            if key.startswith("Fn::"):
                raise NotImplementedError(key)
        out = {}
        for k, v in node.items():
            value = self.resolve(v)
            if value is not NO_VALUE:
                out[k] = value
        return out

    def resources(self) -> dict[str, dict]:
        """The template's resources whose condition holds, with properties resolved."""
        result = {}
        for logical, spec in self.template["Resources"].items():
            if "Condition" in spec and not self.condition(spec["Condition"]):
                continue
            result[logical] = {
                "Type": spec["Type"],
                "Properties": self.resolve(spec.get("Properties", {})),
            }
        return result


def synthetic_context(
    template: dict, *, account: str, region: str, stack_name: str, parameters: dict[str, str]
) -> Resolver:
    """A Resolver for a template that is not deployed: physical ids and ARNs are made up the
    way AWS shapes them, so the resolved policies can be checked as documents."""
    resolver: Resolver

    def physical(logical: str) -> str:
        spec = template["Resources"][logical]
        kind = spec["Type"]
        props = spec.get("Properties", {})
        if kind == "AWS::S3::Bucket":
            return resolver.resolve(props["BucketName"]) if "BucketName" in props else f"{stack_name}-{logical.lower()}"
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{region}.amazonaws.com/{account}/{stack_name}-{logical}"
        if kind == "AWS::Lambda::Function":
            return resolver.resolve(props.get("FunctionName", f"{stack_name}-{logical}"))
        if kind == "AWS::KMS::Key":
            return "00000000-0000-0000-0000-000000000000"
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{region}:{account}:{stack_name}-{logical}"
        return f"{stack_name}-{logical}"

    def getatt(logical: str, attr: str) -> str:
        kind = template["Resources"][logical]["Type"]
        pid = physical(logical)
        if kind == "AWS::S3::Bucket" and attr == "Arn":
            return f"arn:aws:s3:::{pid}"
        if kind == "AWS::IAM::Role" and attr == "Arn":
            return f"arn:aws:iam::{account}:role/{pid}"
        if kind == "AWS::SQS::Queue" and attr == "Arn":
            return f"arn:aws:sqs:{region}:{account}:{pid.rsplit('/', 1)[1]}"
        if kind == "AWS::SQS::Queue" and attr == "QueueName":
            return pid.rsplit("/", 1)[1]
        if kind == "AWS::KMS::Key" and attr == "Arn":
            return f"arn:aws:kms:{region}:{account}:key/{pid}"
        if kind == "AWS::Lambda::Function" and attr == "Arn":
            return f"arn:aws:lambda:{region}:{account}:function:{pid}"
        if kind == "AWS::Events::Rule" and attr == "Arn":
            return f"arn:aws:events:{region}:{account}:rule/{pid}"
        raise KeyError(f"{logical}.{attr}")

    class Refs(dict):
        def __missing__(self, logical: str) -> str:
            return physical(logical)

    resolver = Resolver(
        template, parameters, account=account, region=region, stack_name=stack_name,
        ref=Refs(), getatt=getatt,
    )
    return resolver


def deployed_context(session: Any, template: dict, stack_name: str, parameters: dict[str, str]) -> Resolver:
    """A Resolver whose references are the physical resources of a deployed stack."""
    cfn = session.client("cloudformation")
    account = session.client("sts").get_caller_identity()["Account"]
    summaries = cfn.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    physical = {s["LogicalResourceId"]: s.get("PhysicalResourceId", "") for s in summaries}
    resolver_partition = "aws-cn" if session.region_name.startswith("cn-") else (
        "aws-us-gov" if session.region_name.startswith("us-gov-") else "aws")

    def getatt(logical: str, attr: str) -> str:
        kind = template["Resources"][logical]["Type"]
        pid = physical[logical]
        if kind == "AWS::S3::Bucket" and attr == "Arn":
            return f"arn:aws:s3:::{pid}"
        if kind == "AWS::IAM::Role" and attr == "Arn":
            return session.client("iam").get_role(RoleName=pid)["Role"]["Arn"]
        if kind == "AWS::SQS::Queue" and attr in ("Arn", "QueueName"):
            arn = session.client("sqs").get_queue_attributes(QueueUrl=pid, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            return arn if attr == "Arn" else arn.rsplit(":", 1)[1]
        if kind == "AWS::KMS::Key" and attr == "Arn":
            # Built, not described: moto 5.2 answers DescribeKey on a key made by CloudFormation
            # with a server error.
            return f"arn:{resolver_partition}:kms:{session.region_name}:{account}:key/{pid}"
        if kind == "AWS::Lambda::Function" and attr == "Arn":
            return session.client("lambda").get_function(FunctionName=pid)["Configuration"]["FunctionArn"]
        if kind == "AWS::Events::Rule" and attr == "Arn":
            return session.client("events").describe_rule(Name=pid)["Arn"]
        raise KeyError(f"{logical}.{attr}")

    return Resolver(
        template, parameters, account=account, region=session.region_name,
        stack_name=stack_name, ref=physical, getatt=getatt,
    )


# --------------------------------------------------------------------------- local (moto)
def apply_moto_skips(session: Any, resolver: Resolver) -> dict[str, list[str]]:
    """Applies, with the API, what moto's CloudFormation left out of a deployed stack, from the
    same resolved template values. Returns what was applied and what was left out, by kind."""
    s3 = session.client("s3")
    report: dict[str, list[str]] = {"applied": [], "left_out": []}
    resources = resolver.resources()
    for logical, res in resources.items():
        props = res["Properties"]
        if res["Type"] == "AWS::S3::Bucket":
            bucket = resolver.ref[logical]
            if "BucketEncryption" in props:
                s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=_encryption(props["BucketEncryption"]))
                report["applied"].append(f"{logical}.BucketEncryption")
            if "VersioningConfiguration" in props:
                s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]})
                report["applied"].append(f"{logical}.VersioningConfiguration")
            if "ObjectLockConfiguration" in props:
                rule = props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
                retention = {"Mode": rule["Mode"]}
                retention.update({k: int(rule[k]) for k in ("Days", "Years") if k in rule})
                s3.put_object_lock_configuration(
                    Bucket=bucket,
                    ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": retention}},
                )
                report["applied"].append(f"{logical}.ObjectLockConfiguration")
            if "PublicAccessBlockConfiguration" in props:
                s3.put_public_access_block(
                    Bucket=bucket,
                    PublicAccessBlockConfiguration={k: bool(v) for k, v in props["PublicAccessBlockConfiguration"].items()},
                )
                report["applied"].append(f"{logical}.PublicAccessBlockConfiguration")
            if "OwnershipControls" in props:
                s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=props["OwnershipControls"])
                report["applied"].append(f"{logical}.OwnershipControls")
            if "LifecycleConfiguration" in props:
                rules = []
                for rule in props["LifecycleConfiguration"]["Rules"]:
                    out = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
                    if "AbortIncompleteMultipartUpload" in rule:
                        days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
                        out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
                    rules.append(out)
                s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
                report["applied"].append(f"{logical}.LifecycleConfiguration")
            if "NotificationConfiguration" in props:
                queues = [
                    {"QueueArn": q["Queue"], "Events": [q["Event"]]}
                    for q in props["NotificationConfiguration"].get("QueueConfigurations", [])
                ]
                s3.put_bucket_notification_configuration(
                    Bucket=bucket, NotificationConfiguration={"QueueConfigurations": queues}
                )
                report["applied"].append(f"{logical}.NotificationConfiguration")
        elif res["Type"] == "AWS::IAM::Role":
            iam = session.client("iam")
            for policy in props.get("Policies", []):
                iam.put_role_policy(
                    RoleName=resolver.ref[logical], PolicyName=policy["PolicyName"],
                    PolicyDocument=json.dumps(policy["PolicyDocument"]),
                )
            report["applied"].append(f"{logical}.Policies")
        elif res["Type"] == "AWS::S3::BucketPolicy":
            policy = dict(props["PolicyDocument"])
            kept = []
            for statement in policy["Statement"]:
                if statement.get("Sid") in MOTO_UNEVALUABLE_STATEMENTS:
                    report["left_out"].append(f"{logical}.{statement['Sid']}")
                else:
                    kept.append(statement)
            policy["Statement"] = kept
            s3.put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(policy))
            report["applied"].append(logical)
        elif res["Type"] == "AWS::SQS::QueuePolicy":
            for url in props["Queues"]:
                session.client("sqs").set_queue_attributes(
                    QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
                )
            report["applied"].append(logical)
        elif res["Type"] == "AWS::SNS::Subscription":
            session.client("sns").subscribe(
                TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"]
            )
            report["applied"].append(logical)
        elif res["Type"] == "AWS::CloudWatch::Alarm":
            alarm = {k: v for k, v in props.items()}
            for number in ("Period", "EvaluationPeriods"):
                alarm[number] = int(alarm[number])
            alarm["Threshold"] = float(alarm["Threshold"])
            alarm.setdefault("AlarmName", f"{resolver.stack_name}-{logical}")
            session.client("cloudwatch").put_metric_alarm(**alarm)
            report["applied"].append(logical)
    return report


def _encryption(props: dict) -> dict:
    rules = []
    for rule in props["ServerSideEncryptionConfiguration"]:
        default = rule["ServerSideEncryptionByDefault"]
        out: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": default["SSEAlgorithm"]}}
        if "KMSMasterKeyID" in default:
            out["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] = default["KMSMasterKeyID"]
        if "BucketKeyEnabled" in rule:
            out["BucketKeyEnabled"] = bool(rule["BucketKeyEnabled"])
        rules.append(out)
    return {"Rules": rules}


def artifact_key(name: str, body: bytes) -> str:
    """Content-addressed key of a function zip: a new build is a new key (and version)."""
    return f"lifeboat/{name}-{hashlib.sha256(body).hexdigest()[:16]}.zip"


def code_parameters(code_bucket: str, code: dict[str, tuple[str, str]]) -> dict[str, str]:
    """The backup stack's code parameters from {function: (key, version id)}: every function
    pins the exact object version it was uploaded as."""
    params = {"CodeBucket": code_bucket}
    for name in FUNCTIONS:
        key, version = code[name]
        if not version:
            raise ValueError(f"{name}: the artifact upload returned no VersionId (is the bucket versioned?)")
        params[f"{name.capitalize()}CodeKey"] = key
        params[f"{name.capitalize()}CodeVersion"] = version
    return params


def dummy_function_zip() -> bytes:
    """A zip moto accepts as Lambda code; moto cannot run Lambdas anyway."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\necho 'placeholder: build with make build' >&2\nexit 1\n")
    return buf.getvalue()


def wait_for_stack(cfn: Any, stack_name: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"stack {stack_name} still {stack['StackStatus']}")
        time.sleep(0.2)
    if stack["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        failures = [
            f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
            for e in cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
            if e["ResourceStatus"].endswith("FAILED")
        ]
        raise RuntimeError(f"stack {stack_name} is {stack['StackStatus']}: {failures}")
    return stack


def outputs_of(stack: dict) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def create_or_update_stack(session: Any, stack_name: str, template_path: Path, parameters: dict[str, str]) -> dict:
    cfn = session.client("cloudformation")
    args = dict(
        StackName=stack_name,
        TemplateBody=template_path.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    try:
        cfn.describe_stacks(StackName=stack_name)
        exists = True
    except cfn.exceptions.ClientError:
        exists = False
    if exists:
        try:
            cfn.update_stack(**args)
        except cfn.exceptions.ClientError as e:
            if "No updates are to be performed" not in str(e):
                raise
    else:
        cfn.create_stack(**args)
    return wait_for_stack(cfn, stack_name)


def deploy_local_stacks(
    session: Any,
    *,
    stack_name: str = "lifeboat",
    source_buckets: list[str],
    backup_bucket: str = "lifeboat-backup",
    code_bucket: str = "lifeboat-artifacts",
    backup_parameters: dict[str, str] | None = None,
    source_parameters: dict[str, str] | None = None,
    zips: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Deploys the backup stack and one source stack per bucket (single account) into moto,
    then applies what moto skipped. Returns the stacks' outputs, resolvers and skip reports."""
    s3 = session.client("s3")
    try:
        s3.head_bucket(Bucket=code_bucket)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=code_bucket)
    # Versioned, as make deploy makes the artifact bucket: the functions pin S3ObjectVersion.
    s3.put_bucket_versioning(Bucket=code_bucket, VersioningConfiguration={"Status": "Enabled"})
    code = {}
    for name in FUNCTIONS:
        body = (zips or {}).get(name) or dummy_function_zip()
        key = artifact_key(name, body)
        code[name] = (key, s3.put_object(Bucket=code_bucket, Key=key, Body=body)["VersionId"])

    backup_params = {
        "SourceBucketNames": ",".join(source_buckets),
        "BackupBucketName": backup_bucket,
        **code_parameters(code_bucket, code),
        # A local moto is one account by nature.
        "AcknowledgeSingleAccount": "true",
        # moto cannot run Lambdas: an enabled mapping makes it try (through Docker) on every
        # message and push the events toward the dead-letter queue. Local runs drive the
        # replicator from the queue themselves.
        "ReplicationEnabled": "false",
        # moto ignores If-None-Match on CopyObject (S3 honours it): locally the replicator
        # looks before it copies.
        "ConditionalCopy": "false",
    }
    backup_params.update(backup_parameters or {})
    backup_template = load_template(BACKUP_TEMPLATE)
    backup_stack = create_or_update_stack(session, stack_name, BACKUP_TEMPLATE, backup_params)
    backup = deployed_context(session, backup_template, stack_name, backup_params)
    result: dict[str, Any] = {
        "backup": {"outputs": outputs_of(backup_stack), "resolver": backup, "parameters": backup_params},
        "sources": [],
    }
    result["backup"]["skips"] = apply_moto_skips(session, backup)
    outputs = result["backup"]["outputs"]

    source_template = load_template(SOURCE_TEMPLATE)
    for bucket in source_buckets:
        params = {
            "SourceBucketName": bucket,
            "CreateSourceBucket": "true",
            "EventsQueueArn": outputs["EventsQueueArn"],
            "ReplicatorRoleArn": outputs["ReplicatorRoleArn"],
            "VerifierRoleArn": outputs["VerifierRoleArn"],
            "RestorerRoleArn": outputs["RestorerRoleArn"],
        }
        params.update(source_parameters or {})
        name = f"{stack_name}-source-{bucket}"[:128]
        stack = create_or_update_stack(session, name, SOURCE_TEMPLATE, params)
        resolver = deployed_context(session, source_template, name, params)
        skips = apply_moto_skips(session, resolver)
        result["sources"].append(
            {"stack_name": name, "outputs": outputs_of(stack), "resolver": resolver, "parameters": params, "skips": skips}
        )
    return result


def moto_answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def start_moto(endpoint: str, log_path: Path, pid_path: Path) -> int:
    from urllib.parse import urlparse

    url = urlparse(endpoint)
    host, port = url.hostname or "127.0.0.1", url.port or 5000
    moto = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [moto, "-H", host, "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    pid_path.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 30
    while not moto_answers(endpoint):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"moto_server did not start on {endpoint}; see {log_path}")
        time.sleep(0.2)
    return proc.pid


class LocalSession:
    """The slice of boto3.Session the helpers use, bound to one endpoint and one set of
    credentials (without touching the process environment)."""

    def __init__(self, endpoint: str, region: str = "us-east-1", credentials: dict[str, str] | None = None):
        import boto3
        from botocore.config import Config

        self.endpoint = endpoint
        self.region_name = region
        self.credentials = credentials or {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
        self._boto3 = boto3
        self._config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2, "mode": "standard"})

    def client(self, service: str) -> Any:
        return self._boto3.client(
            service, endpoint_url=self.endpoint, region_name=self.region_name,
            config=self._config, **self.credentials,
        )

    def with_credentials(self, credentials: dict[str, str]) -> "LocalSession":
        return LocalSession(self.endpoint, self.region_name, credentials)


def local_session(endpoint: str, region: str) -> LocalSession:
    return LocalSession(
        endpoint, region,
        {
            "aws_access_key_id": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
            "aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        },
    )


def cmd_deploy_local(args: argparse.Namespace) -> int:
    endpoint = args.endpoint.rstrip("/")
    if not moto_answers(endpoint):
        if "127.0.0.1" not in endpoint and "localhost" not in endpoint:
            print(f"nothing answers at {endpoint}, and it is not local: not starting moto there", file=sys.stderr)
            return 1
        state = Path(args.state_dir)
        pid = start_moto(endpoint, state / "moto-server.log", state / "moto-server.pid")
        print(f"started moto_server (pid {pid}) on {endpoint}; stop it with: kill {pid}")
    session = local_session(endpoint, args.region)
    zips = {}
    for name in FUNCTIONS:
        path = ROOT / "dist" / f"{name}.zip"
        if path.exists():
            zips[name] = path.read_bytes()
    result = deploy_local_stacks(
        session,
        stack_name=args.stack_name,
        source_buckets=[b.strip() for b in args.source_buckets.split(",") if b.strip()],
        backup_bucket=args.backup_bucket,
    )
    out = result["backup"]["outputs"]
    print(f"deployed stack {args.stack_name} and {len(result['sources'])} source stack(s) into {endpoint}")
    for item in [result["backup"]] + result["sources"]:
        for what in item["skips"]["applied"]:
            print(f"  applied with the API (moto skips it in CloudFormation): {what}")
        for what in item["skips"]["left_out"]:
            print(f"  left out (moto cannot evaluate it; checked on the document): {what}")
    print("environment for the lifeboat CLI:")
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": args.region,
        "LIFEBOAT_BACKUP_BUCKET": out["BackupBucketName"],
        "LIFEBOAT_SOURCE_BUCKETS": args.source_buckets,
        "LIFEBOAT_QUEUE_URL": out["EventsQueueUrl"],
    }
    for k, v in env.items():
        print(f"export {k}={v}")
    return 0


# --------------------------------------------------------------------------- real AWS (CLI)
def aws_cli(args: list[str], profile: str | None, region: str, capture: bool = False) -> str:
    aws = shutil.which("aws")
    if not aws:
        raise SystemExit("the AWS CLI is not installed: pip install awscli (or install AWS CLI v2)")
    cmd = [aws, *args, "--region", region]
    if profile:
        cmd += ["--profile", profile]
    print("+ " + " ".join(cmd), flush=True)
    done = subprocess.run(cmd, check=False, text=True, capture_output=capture)
    if done.returncode != 0:
        if capture:
            sys.stderr.write(done.stderr)
        raise SystemExit(f"aws {' '.join(args[:2])} failed ({done.returncode})")
    return done.stdout if capture else ""


def merged_notification(existing: dict, queue_arn: str) -> dict:
    """Adds Lifeboat's created/removed events for `queue_arn` to a bucket's notification
    configuration, keeping everything else. Idempotent."""
    config = {k: v for k, v in existing.items() if k != "ResponseMetadata"}
    queues = [
        q for q in config.get("QueueConfigurations", [])
        if q.get("QueueArn") != queue_arn and q.get("Id") != "lifeboat"
    ]
    queues.append({"Id": "lifeboat", "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]})
    config["QueueConfigurations"] = queues
    return config


def cmd_attach_notification(args: argparse.Namespace) -> int:
    current = aws_cli(
        ["s3api", "get-bucket-notification-configuration", "--bucket", args.bucket, "--output", "json"],
        args.profile, args.region, capture=True,
    )
    config = merged_notification(json.loads(current or "{}"), args.queue_arn)
    aws_cli(
        ["s3api", "put-bucket-notification-configuration", "--bucket", args.bucket,
         "--notification-configuration", json.dumps(config)],
        args.profile, args.region,
    )
    return 0


# Parameters `deploy` fills in itself: code locations, and the backup stack's outputs.
BACKUP_PARAMETERS_FROM_TOOL = {
    "CodeBucket", "ReplicateCodeKey", "VerifyCodeKey", "RestoreCodeKey",
    "ReplicateCodeVersion", "VerifyCodeVersion", "RestoreCodeVersion",
}
SOURCE_PARAMETERS_FROM_TOOL = {"EventsQueueArn", "ReplicatorRoleArn", "VerifierRoleArn", "RestorerRoleArn"}
# backup-account.yaml grants restore invocation to this many operators (HasOperator1..4).
MAX_OPERATORS = 4
LIFEBOAT_SID_PREFIX = "Lifeboat"

SINGLE_ACCOUNT_LIMITS = """\
A single-account deployment walls the backup off from the lake's non-admin writers (an
identity with s3:* on * is refused by the bucket policy), but not from the account's
administrators: whoever holds iam:*, sts:*, lambda:* or kms:* there can assume break-glass,
swap the function code, change the key's admin roles or remove the bucket policy as root.
Object Lock (COMPLIANCE) still keeps every version, and the tamper alarms say when it happens.
See infra/README.md, "Single account or two"."""

GOVERNANCE_GIVES_UP = """\
ObjectLockMode=GOVERNANCE: the backup account's root can remove the bucket policy (S3 always
lets it) and then delete locked versions with s3:BypassGovernanceRetention, or shorten their
retention; the tamper alarm fires only afterwards. COMPLIANCE (the default) refuses that to
everyone, the root included, until each version's retention ends."""


def parameter_problems(template_path: Path, given: dict[str, str], from_tool: set[str]) -> list[str]:
    """What is wrong with a params-file section for a template: unknown names, names the tool
    sets itself, required parameters left out."""
    declared = load_template(template_path).get("Parameters", {})
    problems = [f"unknown parameter {k} (not in {template_path.name})" for k in given if k not in declared]
    problems += [f"parameter {k} is set by make deploy, leave it out" for k in given if k in from_tool]
    problems += [
        f"required parameter {k} ({spec.get('Description', '').strip()}) is missing"
        for k, spec in declared.items()
        if "Default" not in spec and k not in given and k not in from_tool
    ]
    return problems


def is_single_account(backup_params: dict[str, str], backup_account: str | None = None) -> bool:
    source = str(backup_params.get("SourceAccountId", "")).strip()
    return source == "" or (backup_account is not None and source == backup_account)


def single_account_problem(backup_params: dict[str, str], backup_account: str | None = None) -> str | None:
    """Refuses a single-account deployment (SourceAccountId empty, or the backup account
    itself) unless AcknowledgeSingleAccount is "true"."""
    if not is_single_account(backup_params, backup_account):
        return None
    if str(backup_params.get("AcknowledgeSingleAccount", "false")).lower() == "true":
        return None
    which = "empty" if not str(backup_params.get("SourceAccountId", "")).strip() else "the backup account itself"
    return (f"SourceAccountId is {which}: a single-account deployment. Set "
            f"\"AcknowledgeSingleAccount\": \"true\" in backup.parameters to deploy it anyway.\n{SINGLE_ACCOUNT_LIMITS}")


def operator_problems(backup_params: dict[str, str]) -> list[str]:
    operators = [o.strip() for o in str(backup_params.get("OperatorPrincipalArns", "")).split(",") if o.strip()]
    problems = [f"OperatorPrincipalArns: {o} is not an IAM ARN" for o in operators if not o.startswith("arn:")]
    if len(operators) > MAX_OPERATORS:
        problems.append(f"OperatorPrincipalArns names {len(operators)} principals; at most {MAX_OPERATORS} "
                        "(use a role your responders assume)")
    return problems


def deploy_notices(backup_params: dict[str, str]) -> list[str]:
    """What deploy says before it starts: the weaker choices the parameters make."""
    notices = []
    if str(backup_params.get("ObjectLockMode", "COMPLIANCE")) == "GOVERNANCE":
        notices.append(GOVERNANCE_GIVES_UP)
    if is_single_account(backup_params):
        notices.append(SINGLE_ACCOUNT_LIMITS)
    return notices


def alarm_topic_warning(subscriptions: list[dict], topic_arn: str) -> str | None:
    """A warning when nobody would receive an alarm: no subscription, or only ones still
    waiting for confirmation."""
    confirmed = [s for s in subscriptions if s.get("SubscriptionArn", "").startswith("arn:")]
    if confirmed:
        return None
    pending = [s.get("Endpoint", "?") for s in subscriptions if s not in confirmed]
    state = (f"only unconfirmed subscriptions ({', '.join(pending)}): confirm them" if pending
             else "no subscriber")
    return (f"WARNING: the alarm topic {topic_arn} has {state}. Alarms and tamper events reach nobody. "
            "Subscribe an e-mail (AlarmEmail) or a Slack channel through AWS Chatbot: infra/README.md, \"Alarms\".")


def artifact_bucket_policy(bucket: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    }


def artifact_bucket_commands(bucket: str, region: str) -> list[list[str]]:
    """AWS CLI calls that create the artifact bucket walled: private, owner-enforced, TLS only,
    versioned (the functions pin the zip's version), encrypted."""
    create = ["s3api", "create-bucket", "--bucket", bucket]
    if region != "us-east-1":
        create += ["--create-bucket-configuration", f"LocationConstraint={region}"]
    return [
        create,
        ["s3api", "put-public-access-block", "--bucket", bucket, "--public-access-block-configuration",
         "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true"],
        ["s3api", "put-bucket-ownership-controls", "--bucket", bucket, "--ownership-controls",
         json.dumps({"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})],
        ["s3api", "put-bucket-versioning", "--bucket", bucket, "--versioning-configuration", "Status=Enabled"],
        ["s3api", "put-bucket-encryption", "--bucket", bucket, "--server-side-encryption-configuration",
         json.dumps({"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})],
        ["s3api", "put-bucket-policy", "--bucket", bucket, "--policy", json.dumps(artifact_bucket_policy(bucket))],
    ]


def lifeboat_source_statements(parameters: dict[str, str], partition: str = "aws") -> list[dict]:
    """The statements source-account.yaml's SourceBucketPolicy holds for these parameters,
    resolved as CloudFormation would: what attach-bucket-policy merges into an existing bucket."""
    template = load_template(SOURCE_TEMPLATE)
    # Parameters the policy does not use (the queue) may be left out.
    parameters = {**{k: "" for k, s in template["Parameters"].items() if "Default" not in s}, **parameters}
    resolver = Resolver(
        template, parameters, account="", region="", stack_name="", partition=partition,
        ref={}, getatt=lambda logical, attr: (_ for _ in ()).throw(KeyError(f"{logical}.{attr}")),
    )
    policy = resolver.resolve(template["Resources"]["SourceBucketPolicy"]["Properties"]["PolicyDocument"])
    statements = policy["Statement"]
    assert all(s["Sid"].startswith(LIFEBOAT_SID_PREFIX) for s in statements), "Lifeboat statements keep the Sid prefix"
    return statements


def merged_bucket_policy(existing: dict | None, statements: list[dict]) -> dict:
    """Lifeboat's statements merged into a bucket's policy: every statement whose Sid does not
    start with "Lifeboat" is kept as it is, Lifeboat's own are replaced. Idempotent."""
    policy = dict(existing or {"Version": "2012-10-17", "Statement": []})
    current = policy.get("Statement", [])
    current = current if isinstance(current, list) else [current]
    kept = [s for s in current if not str(s.get("Sid", "")).startswith(LIFEBOAT_SID_PREFIX)]
    policy["Statement"] = kept + list(statements)
    return policy


def cmd_attach_bucket_policy(args: argparse.Namespace) -> int:
    try:
        current = aws_cli(["s3api", "get-bucket-policy", "--bucket", args.bucket, "--output", "json"],
                          args.profile, args.region, capture=True)
        existing = json.loads(json.loads(current)["Policy"])
    except SystemExit:  # NoSuchBucketPolicy
        existing = None
    parameters = {"SourceBucketName": args.bucket, **args.roles}
    merged = merged_bucket_policy(existing, lifeboat_source_statements(parameters))
    kept = len(merged["Statement"]) - len(lifeboat_source_statements(parameters))
    print(f"{args.bucket}: merging Lifeboat's statements into its bucket policy ({kept} of its own statements kept)")
    aws_cli(["s3api", "put-bucket-policy", "--bucket", args.bucket, "--policy", json.dumps(merged)],
            args.profile, args.region)
    return 0


def ensure_artifact_bucket(bucket: str, profile: str | None, region: str) -> None:
    try:
        aws_cli(["s3api", "head-bucket", "--bucket", bucket], profile, region, capture=True)
    except SystemExit:
        for command in artifact_bucket_commands(bucket, region):
            aws_cli(command, profile, region, capture=True)
        return
    status = json.loads(aws_cli(["s3api", "get-bucket-versioning", "--bucket", bucket, "--output", "json"],
                                profile, region, capture=True) or "{}").get("Status")
    if status != "Enabled":
        raise SystemExit(f"artifact bucket {bucket} exists but is not versioned: the functions pin the zips' "
                         "S3ObjectVersion. Enable versioning on it, or name a new bucket (make deploy creates it walled).")


def section(parameters: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in parameters.items() if not k.startswith("_")}


def cmd_deploy(args: argparse.Namespace) -> int:
    path = Path(args.params)
    if not path.exists():
        raise SystemExit(f"{path} not found: cp infra/params.example.json {path} and fill it in (see infra/README.md)")
    params = json.loads(path.read_text())
    region = params["region"]
    backup = params["backup"]
    profile = backup.get("profile")
    artifacts = params["artifact_bucket"]
    backup_params = section(backup["parameters"])
    problems = parameter_problems(BACKUP_TEMPLATE, backup_params, BACKUP_PARAMETERS_FROM_TOOL)
    problems += operator_problems(backup_params)
    single = single_account_problem(backup_params)
    if single:
        problems.append(single)
    for source in params.get("sources", []):
        problems += parameter_problems(SOURCE_TEMPLATE, section(source["parameters"]), SOURCE_PARAMETERS_FROM_TOOL)
    if problems:
        raise SystemExit(f"{path}:\n  " + "\n  ".join(problems))
    missing = [n for n in FUNCTIONS if not (ROOT / "dist" / f"{n}.zip").exists()]
    if missing:
        raise SystemExit(f"dist/{missing[0]}.zip is missing: run make build first")
    for notice in deploy_notices(backup_params):
        print(f"NOTE: {notice}", file=sys.stderr)

    identity = json.loads(aws_cli(["sts", "get-caller-identity", "--output", "json"], profile, region, capture=True))
    single = single_account_problem(backup_params, identity["Account"])
    if single:
        raise SystemExit(f"{path}:\n  {single}")

    # Package: content-addressed keys in a walled, versioned bucket; each function pins the
    # version its zip was uploaded as.
    ensure_artifact_bucket(artifacts, profile, region)
    code = {}
    for name in FUNCTIONS:
        zip_path = ROOT / "dist" / f"{name}.zip"
        key = artifact_key(name, zip_path.read_bytes())
        put = json.loads(aws_cli(
            ["s3api", "put-object", "--bucket", artifacts, "--key", key, "--body", str(zip_path), "--output", "json"],
            profile, region, capture=True,
        ))
        code[name] = (key, put.get("VersionId", ""))

    overrides = {**backup_params, **code_parameters(artifacts, code)}
    stack = backup["stack_name"]
    aws_cli(
        ["cloudformation", "deploy", "--template-file", str(BACKUP_TEMPLATE), "--stack-name", stack,
         "--capabilities", "CAPABILITY_IAM", "--no-fail-on-empty-changeset",
         "--parameter-overrides", *[f"{k}={v}" for k, v in overrides.items()]],
        profile, region,
    )
    described = json.loads(aws_cli(
        ["cloudformation", "describe-stacks", "--stack-name", stack, "--output", "json"], profile, region, capture=True,
    ))
    outputs = outputs_of(described["Stacks"][0])

    roles = {k: outputs[k] for k in ("ReplicatorRoleArn", "VerifierRoleArn", "RestorerRoleArn")}
    for source in params.get("sources", []):
        sp = section(source["parameters"])
        sp.update({"EventsQueueArn": outputs["EventsQueueArn"], **roles})
        aws_cli(
            ["cloudformation", "deploy", "--template-file", str(SOURCE_TEMPLATE), "--stack-name", source["stack_name"],
             "--no-fail-on-empty-changeset",
             "--parameter-overrides", *[f"{k}={v}" for k, v in sp.items()]],
            source.get("profile"), region,
        )
        if sp.get("CreateSourceBucket", "false") != "true":
            bucket = sp["SourceBucketName"]
            cmd_attach_notification(argparse.Namespace(
                bucket=bucket, queue_arn=outputs["EventsQueueArn"], profile=source.get("profile"), region=region,
            ))
            if source.get("merge_bucket_policy", True):
                cmd_attach_bucket_policy(argparse.Namespace(
                    bucket=bucket, roles=roles, profile=source.get("profile"), region=region,
                ))
            else:
                statements = lifeboat_source_statements({"SourceBucketName": bucket, **roles})
                print(f"{bucket}: merge_bucket_policy is false; add these statements to its bucket policy:\n"
                      + json.dumps(statements, indent=2))
    print(json.dumps(outputs, indent=2))
    subscriptions = json.loads(aws_cli(
        ["sns", "list-subscriptions-by-topic", "--topic-arn", outputs["AlarmTopicArn"], "--output", "json"],
        profile, region, capture=True,
    ) or "{}").get("Subscriptions", [])
    warning = alarm_topic_warning(subscriptions, outputs["AlarmTopicArn"])
    if warning:
        print(warning, file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("deploy", help="deploy both stacks to AWS with the AWS CLI")
    p.add_argument("--params", default=str(INFRA / "params.json"))
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("deploy-local", help="deploy both stacks into a local moto server")
    p.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL") or "http://127.0.0.1:5000")
    p.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    p.add_argument("--stack-name", default="lifeboat")
    p.add_argument("--source-buckets", default="lifeboat-source")
    p.add_argument("--backup-bucket", default="lifeboat-backup")
    p.add_argument("--state-dir", default=str(ROOT / "target"), help="where a started moto_server's pid and log go")
    p.set_defaults(func=cmd_deploy_local)

    p = sub.add_parser("attach-bucket-policy", help="merge Lifeboat's statements into an existing bucket's policy")
    p.add_argument("--bucket", required=True)
    p.add_argument("--replicator-role-arn", required=True)
    p.add_argument("--verifier-role-arn", required=True)
    p.add_argument("--restorer-role-arn", required=True)
    p.add_argument("--profile")
    p.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    p.set_defaults(func=lambda a: cmd_attach_bucket_policy(argparse.Namespace(
        bucket=a.bucket, profile=a.profile, region=a.region,
        roles={"ReplicatorRoleArn": a.replicator_role_arn, "VerifierRoleArn": a.verifier_role_arn,
               "RestorerRoleArn": a.restorer_role_arn})))

    p = sub.add_parser("attach-notification", help="add the Lifeboat queue to an existing bucket's notifications")
    p.add_argument("--bucket", required=True)
    p.add_argument("--queue-arn", required=True)
    p.add_argument("--profile")
    p.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    p.set_defaults(func=cmd_attach_notification)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
