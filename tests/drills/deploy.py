#!/usr/bin/env python3
"""Sets up one disaster drill's world in a fresh moto server, the way production is wired.

    python tests/drills/deploy.py --endpoint http://127.0.0.1:PORT --source-buckets a,b

1. Deploys both CloudFormation stacks with the same code as `make deploy-local`
   (infra/lifeboat_infra.py: the templates, then what moto's CloudFormation skips, applied with
   the API from the resolved template values).
2. Removes the backup bucket's *default* Object Lock retention (versioning and Object Lock stay
   on): moto refuses a CopyObject into a bucket with default retention unless the request names
   a checksum algorithm, which AWS does not require and the replicator does not send. Object
   Lock itself is proven in tests/infra.
3. Creates the source writer (an IAM user with s3:* on the source buckets and nothing else,
   like an ETL job's principal; with --glue-databases, which are created and passed as the
   backup stack's GlueDatabases, also the Glue table actions an ETL job and metastore
   automation use there: GetTable(s), CreateTable, UpdateTable and DeleteTable) and assumes the three function roles (sts:AssumeRole, while
   moto still accepts it: it refuses a service-principal trust once IAM is enforced).
4. Prints one JSON document: the stack outputs, each function's deployed configuration
   (name, ARN, timeout, environment, role) with its role's credentials, and the writer's
   credentials. IAM enforcement is switched on by the caller afterwards.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))

import lifeboat_infra as infra  # noqa: E402

ROLE_OF = {"replicate": "Replicator", "verify": "Verifier", "restore": "Restorer"}


def allow(actions: str | list[str], resources: list[str], *more: dict) -> str:
    return json.dumps(
        {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources}, *more]}
    )


def glue_table_access(databases: list[str]) -> list[dict]:
    """What the writer does in the catalog: registers its tables, and (the disaster) drops them."""
    if not databases:
        return []
    return [{
        "Effect": "Allow",
        "Action": ["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:CreateTable",
                   "glue:UpdateTable", "glue:DeleteTable"],
        "Resource": ["arn:aws:glue:*:*:catalog"]
        + [f"arn:aws:glue:*:*:database/{d}" for d in databases]
        + [f"arn:aws:glue:*:*:table/{d}/*" for d in databases],
    }]


def user_credentials(iam, name: str, policy: str) -> dict[str, str]:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="access", PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--stack-name", default="lifeboat")
    parser.add_argument("--source-buckets", required=True)
    parser.add_argument("--backup-bucket", default="lifeboat-backup")
    parser.add_argument("--glue-databases", default="", help="the GlueDatabases parameter (created here)")
    args = parser.parse_args()
    sources = [b.strip() for b in args.source_buckets.split(",") if b.strip()]
    databases = [d.strip() for d in args.glue_databases.split(",") if d.strip()]

    admin = infra.LocalSession(args.endpoint, args.region)
    for database in databases:
        admin.client("glue").create_database(DatabaseInput={"Name": database})
    deployed = infra.deploy_local_stacks(
        admin, stack_name=args.stack_name, source_buckets=sources, backup_bucket=args.backup_bucket,
        backup_parameters={"GlueDatabases": ",".join(databases)} if databases else None,
    )
    outputs = deployed["backup"]["outputs"]
    s3 = admin.client("s3")
    s3.put_object_lock_configuration(
        Bucket=outputs["BackupBucketName"], ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
    )

    iam = admin.client("iam")
    writer = user_credentials(
        iam, "etl-writer",
        allow("s3:*", [r for b in sources for r in (f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*")],
              *glue_table_access(databases)),
    )
    assumer = user_credentials(iam, "lambda-service", allow("sts:AssumeRole", ["*"]))
    sts = admin.with_credentials(
        {"aws_access_key_id": assumer["access_key_id"], "aws_secret_access_key": assumer["secret_access_key"]}
    ).client("sts")
    lam = admin.client("lambda")
    functions = {}
    for name, role in ROLE_OF.items():
        config = lam.get_function_configuration(FunctionName=outputs[f"{name.capitalize()}FunctionName"])
        creds = sts.assume_role(
            RoleArn=outputs[f"{role}RoleArn"], RoleSessionName=config["FunctionName"], DurationSeconds=43200
        )["Credentials"]
        functions[name] = {
            "name": config["FunctionName"],
            "arn": config["FunctionArn"],
            "timeout_seconds": config["Timeout"],
            "memory_mb": config["MemorySize"],
            "role_arn": config["Role"],
            "environment": config.get("Environment", {}).get("Variables", {}),
            "credentials": {
                "access_key_id": creds["AccessKeyId"],
                "secret_access_key": creds["SecretAccessKey"],
                "session_token": creds["SessionToken"],
            },
        }
    skips = [deployed["backup"]["skips"]] + [s["skips"] for s in deployed["sources"]]
    print(json.dumps({
        "outputs": outputs,
        "source_buckets": sources,
        "glue_databases": databases,
        "functions": functions,
        "writer": writer,
        "applied_with_api": [a for s in skips for a in s["applied"]],
        "left_out": [a for s in skips for a in s["left_out"]],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
