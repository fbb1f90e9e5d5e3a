"""The tamper rules of backup-account.yaml against CloudTrail events in the documented
"AWS API Call via CloudTrail" format (fixtures/cloudtrail/): each watched call on a Lifeboat
resource matches exactly its rule, the same call on another resource, and reads, match none.
Two matchers decide: event_pattern.py (written from EventBridge's documentation) and moto's
EventBridge pattern engine; they must agree on every fixture and rule."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from moto.events.models import EventPattern

import lifeboat_infra as infra
from event_pattern import matches
from iam_model import Principal, decide

FIXTURES = Path(__file__).parent / "fixtures" / "cloudtrail"
ACCOUNT, REGION = "222222222222", "eu-west-1"

# fixture -> the one rule it must match (None: no rule may match it).
EXPECTED = {
    "s3-PutBucketPolicy.json": "BackupBucketTamperRule",
    "s3-DeleteBucketPolicy.json": "BackupBucketTamperRule",
    "s3-PutBucketObjectLockConfiguration.json": "BackupBucketTamperRule",
    "s3-PutObjectLockConfiguration.json": "BackupBucketTamperRule",
    "s3-PutBucketLifecycle.json": "BackupBucketTamperRule",
    "s3-PutBucketEncryption.json": "BackupBucketTamperRule",
    "s3-DeleteBucket.json": "BackupBucketTamperRule",
    "kms-PutKeyPolicy.json": "BackupKeyTamperRule",
    "kms-ScheduleKeyDeletion.json": "BackupKeyTamperRule",
    "kms-DisableKey.json": "BackupKeyTamperRule",
    "kms-CreateGrant.json": "BackupKeyTamperRule",
    "sts-AssumeRole-break-glass.json": "BreakGlassAssumedRule",
    "lambda-UpdateFunctionCode.json": "FunctionTamperRule",
    "lambda-UpdateFunctionConfiguration.json": "FunctionTamperRule",
    "lambda-PutFunctionConcurrency.json": "FunctionTamperRule",
    "lambda-UpdateEventSourceMapping.json": "EventSourceMappingTamperRule",
    "lambda-DeleteEventSourceMapping.json": "EventSourceMappingTamperRule",
    "sqs-PurgeQueue.json": "QueueTamperRule",
    "sqs-SetQueueAttributes.json": "QueueTamperRule",
    "events-DisableRule.json": "AlarmPlumbingTamperRule",
    "neg-s3-PutBucketPolicy-other-bucket.json": None,
    "neg-s3-GetBucketPolicy.json": None,
    "neg-kms-DisableKey-other-key.json": None,
    "neg-sts-AssumeRole-other-role.json": None,
    "neg-lambda-UpdateFunctionCode-other-function.json": None,
    "neg-lambda-GetFunction.json": None,
    "neg-sqs-PurgeQueue-other-queue.json": None,
}


@pytest.fixture(scope="module")
def deployment():
    resolver = infra.synthetic_context(
        infra.load_template(infra.BACKUP_TEMPLATE), account=ACCOUNT, region=REGION, stack_name="lifeboat",
        parameters={"SourceBucketNames": "lake-a", "CodeBucket": "artifacts", "SourceAccountId": "111111111111",
                    "BackupBucketName": "acme-backup",
                    "ReplicateCodeVersion": "1", "VerifyCodeVersion": "2", "RestoreCodeVersion": "3"},
    )
    return resolver, resolver.resources()


def substitutions(resolver) -> dict[str, str]:
    return {
        "account": ACCOUNT, "region": REGION, "bucket": resolver.ref["BackupBucket"],
        "key_id": resolver.ref["BackupKey"], "key_arn": resolver.getatt("BackupKey", "Arn"),
        "break_glass_arn": resolver.getatt("BreakGlassRole", "Arn"),
        "replicate_function": resolver.ref["ReplicateFunction"], "verify_function": resolver.ref["VerifyFunction"],
        "esm_uuid": resolver.ref["ReplicateEventSourceMapping"],
        "queue_url": resolver.ref["EventsQueue"], "dlq_url": resolver.ref["EventsDeadLetterQueue"],
    }


def load_event(name: str, subs: dict[str, str]) -> dict:
    text = (FIXTURES / name).read_text()
    for key, value in subs.items():
        text = text.replace("{{" + key + "}}", value)
    assert "{{" not in text, f"{name}: unfilled placeholder"
    return json.loads(text)


def rules(resources: dict) -> dict[str, dict]:
    return {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::Events::Rule" and "EventPattern" in r["Properties"]}


def test_every_fixture_is_listed():
    assert sorted(p.name for p in FIXTURES.glob("*.json")) == sorted(EXPECTED)


def test_fixtures_have_the_documented_envelope():
    for name in EXPECTED:
        event = json.loads((FIXTURES / name).read_text())
        assert event["detail-type"] == "AWS API Call via CloudTrail"
        assert event["source"] == "aws." + event["detail"]["eventSource"].split(".")[0]
        assert {"eventVersion", "userIdentity", "eventTime", "eventSource", "eventName", "awsRegion",
                "requestParameters", "eventType", "recipientAccountId", "readOnly"} <= set(event["detail"])
        assert event["detail"]["eventType"] == "AwsApiCall"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_event_matches_exactly_its_rule(deployment, name):
    resolver, resources = deployment
    event = load_event(name, substitutions(resolver))
    matched = {logical for logical, props in rules(resources).items() if matches(props["EventPattern"], event)}
    assert matched == ({EXPECTED[name]} if EXPECTED[name] else set())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_moto_agrees_with_the_model(deployment, name):
    resolver, resources = deployment
    event = load_event(name, substitutions(resolver))
    for logical, props in rules(resources).items():
        assert EventPattern.load(json.dumps(props["EventPattern"])).matches_event(event) == matches(
            props["EventPattern"], event), (name, logical)


def test_every_watched_call_of_the_contract_has_a_matching_fixture(deployment):
    resolver, resources = deployment
    subs = substitutions(resolver)
    for entry in infra.load_alarm_contract()["tamper"]:
        service, event_name = entry["event"].split(":")
        candidates = [n for n, rule in EXPECTED.items() if rule == entry["rule"]
                      and load_event(n, subs)["detail"]["eventName"] == event_name
                      and load_event(n, subs)["source"] == f"aws.{service}"]
        assert candidates, f"no fixture for {entry['event']}"
        for name in candidates:
            assert matches(rules(resources)[entry["rule"]]["EventPattern"], load_event(name, subs))


def test_rules_page_through_the_alarm_topic_which_lets_eventbridge_publish(deployment):
    resolver, resources = deployment
    topic = resolver.ref["AlarmTopic"]
    for logical, props in rules(resources).items():
        if "ScheduleExpression" in props:
            continue
        assert props["State"].startswith("ENABLED"), logical
        assert [t["Arn"] for t in props["Targets"]] == [topic], logical
    policy = resources["AlarmTopicPolicy"]["Properties"]
    assert policy["Topics"] == [topic]
    events = Principal(arn="events.amazonaws.com", account="", service="events.amazonaws.com")
    assert decide([policy["PolicyDocument"]], "sns:Publish", topic, events, {"aws:SourceAccount": ACCOUNT}) == "allow"
    assert decide([policy["PolicyDocument"]], "sns:Publish", topic, events, {"aws:SourceAccount": "999999999999"}) == "none"
    cloudwatch = Principal(arn="cloudwatch.amazonaws.com", account="", service="cloudwatch.amazonaws.com")
    assert decide([policy["PolicyDocument"]], "sns:Publish", topic, cloudwatch, {"aws:SourceAccount": ACCOUNT}) == "allow"


# The matcher itself, on patterns written from EventBridge's documentation examples.
MATCHER_CASES = [
    ({"source": ["aws.s3"]}, {"source": "aws.s3"}, True),
    ({"source": ["aws.s3"]}, {"source": "aws.s3x"}, False),
    ({"detail": {"n": [5]}}, {"detail": {"n": 5.0}}, True),
    ({"detail": {"b": [True]}}, {"detail": {"b": "true"}}, False),
    ({"detail": {"v": [None]}}, {"detail": {"v": None}}, True),
    ({"detail": {"name": [{"prefix": "Update"}]}}, {"detail": {"name": "UpdateFunctionCode20150331v2"}}, True),
    ({"detail": {"name": [{"prefix": "Update"}]}}, {"detail": {"name": "PutUpdate"}}, False),
    ({"detail": {"u": [{"suffix": "/111/q"}]}}, {"detail": {"u": "https://sqs/111/q"}}, True),
    ({"detail": {"u": [{"suffix": "/111/q"}]}}, {"detail": {"u": "https://sqs/111/q2"}}, False),
    ({"detail": {"s": [{"anything-but": ["a", "b"]}]}}, {"detail": {"s": "c"}}, True),
    ({"detail": {"s": [{"anything-but": ["a", "b"]}]}}, {"detail": {"s": "a"}}, False),
    ({"detail": {"s": [{"anything-but": {"prefix": "Get"}}]}}, {"detail": {"s": "GetObject"}}, False),
    ({"detail": {"e": [{"exists": False}]}}, {"detail": {}}, True),
    ({"detail": {"e": [{"exists": False}]}}, {"detail": {"e": 1}}, False),
    ({"detail": {"e": [{"exists": True}]}}, {"detail": {}}, False),
    ({"detail": {"s": [{"equals-ignore-case": "AbC"}]}}, {"detail": {"s": "aBc"}}, True),
    ({"detail": {"s": [{"wildcard": "arn:*:function:f"}]}}, {"detail": {"s": "arn:aws:lambda:function:f"}}, True),
    ({"detail": {"tags": ["x"]}}, {"detail": {"tags": ["y", "x"]}}, True),
    ({"detail": {"r": {"ARN": ["k"]}}}, {"detail": {"r": [{"ARN": "j"}, {"ARN": "k"}]}}, True),
    ({"detail": {"a": ["1"], "b": ["2"]}}, {"detail": {"a": "1", "b": "3"}}, False),
    ({"detail": {"missing": ["x"]}}, {"detail": {}}, False),
]


@pytest.mark.parametrize("pattern,event,expected", MATCHER_CASES)
def test_matcher_follows_the_documented_semantics(pattern, event, expected):
    assert matches(pattern, event) is expected


@pytest.mark.parametrize("pattern", [{"$or": [{"a": ["b"]}]}, {"n": [{"numeric": [">", 1]}]}, {"a": "b"}])
def test_matcher_refuses_what_it_does_not_model(pattern):
    with pytest.raises((NotImplementedError, ValueError)):
        matches(pattern, {"a": "b", "n": 2})
