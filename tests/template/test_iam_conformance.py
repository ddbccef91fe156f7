"""The IAM conformance check itself (`consent_dev.iam`): calls expanded into what AWS authorizes, judged against
each function's policy in template.yaml. The check over every call the suite makes runs when the session ends
(tests/conftest.py); these pin down its rules, so a check that passes everything would fail here."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from consent_dev.iam import NOT_CALLED_BY_CODE, Permission, granted, judge, permissions_for
from consent_dev.template import functions, load_template

pytestmark = pytest.mark.template

LOGICAL_IDS = tuple(load_template()["Resources"])
TABLE = "ConsentTable-3f2a9c1d"


def test_each_step_of_a_write_transaction_is_authorized_as_its_own_action() -> None:
    params = {
        "TransactItems": [
            {"Put": {"TableName": TABLE, "Item": {}}},
            {"Update": {"TableName": TABLE, "Key": {}, "UpdateExpression": "SET a = :a"}},
            {"Delete": {"TableName": TABLE, "Key": {}}},
            {"ConditionCheck": {"TableName": TABLE, "Key": {}, "ConditionExpression": "x"}},
        ]
    }

    assert permissions_for("dynamodb", "TransactWriteItems", params, LOGICAL_IDS) == {
        Permission("dynamodb:PutItem", "arn:ConsentTable"),
        Permission("dynamodb:UpdateItem", "arn:ConsentTable"),
        Permission("dynamodb:DeleteItem", "arn:ConsentTable"),
        Permission("dynamodb:ConditionCheckItem", "arn:ConsentTable"),
    }


def test_reads_of_an_index_need_the_index_publishing_needs_publish_and_secrets_are_named_by_their_arn() -> None:
    secret_arn = "arn:aws:secretsmanager:eu-west-2:123456789012:secret:CodatApiKeySecret-dev-1a2b3c-AbCdEf"
    assert permissions_for("dynamodb", "Query", {"TableName": TABLE, "IndexName": "GSI1"}, LOGICAL_IDS) == {
        Permission("dynamodb:Query", "arn:ConsentTable/index/GSI1")
    }
    topic = "arn:aws:sns:eu-west-2:123456789012:ConsentEventsTopic-3f2a9c1d"
    assert permissions_for("sns", "PublishBatch", {"TopicArn": topic}, LOGICAL_IDS) == {
        Permission("sns:Publish", "arn:ConsentEventsTopic")
    }
    assert permissions_for("secretsmanager", "GetSecretValue", {"SecretId": secret_arn}, LOGICAL_IDS) == {
        Permission("secretsmanager:GetSecretValue", "arn:CodatApiKeySecret")
    }


def _without(template: dict[str, Any], function: str, action: str) -> dict[str, Any]:
    changed = copy.deepcopy(template)
    for policy in changed["Resources"][function]["Properties"]["Policies"]:
        for statement in policy["Statement"]:
            if isinstance(statement["Action"], list) and action in statement["Action"]:
                statement["Action"].remove(action)
    return changed


def test_a_call_the_policy_lacks_is_denied_as_aws_would() -> None:
    # The webhook's transaction updates the company: without dynamodb:UpdateItem, AWS refuses the whole call.
    update = ("WebhookHandlerFunction", Permission("dynamodb:UpdateItem", "arn:ConsentTable"))
    template = load_template()

    assert judge({update}, complete=False, template=template).denied == []
    verdict = judge(
        {update}, complete=False, template=_without(template, "WebhookHandlerFunction", "dynamodb:UpdateItem")
    )
    assert verdict.denied == ["WebhookHandlerFunction: dynamodb:UpdateItem on arn:ConsentTable"]
    # ... and a call on another resource than granted is denied too
    other = ("ConsentStatusFunction", Permission("dynamodb:Query", "arn:ConsentTable/index/GSI2"))
    assert judge({other}, complete=False, template=template).denied == [
        "ConsentStatusFunction: dynamodb:Query on arn:ConsentTable/index/GSI2"
    ]


def test_a_grant_no_call_uses_is_reported_once_the_whole_suite_ran() -> None:
    template = load_template()
    everything_granted = {(f.logical_id, p) for f in functions(template) for p in granted(f)}
    unused_one = everything_granted - {("RevokeFunction", Permission("dynamodb:BatchWriteItem", "arn:ConsentTable"))}

    assert judge(everything_granted, complete=True, template=template).ok
    assert judge(unused_one, complete=True, template=template).unused == [
        "RevokeFunction: dynamodb:BatchWriteItem on arn:ConsentTable"
    ]
    assert judge(unused_one, complete=False, template=template).unused == []


def test_every_grant_no_code_calls_is_a_real_grant_with_its_reason() -> None:
    template = load_template()
    by_function = {f.logical_id: granted(f) for f in functions(template)}
    for (function, permission), reason in NOT_CALLED_BY_CODE.items():
        assert permission in by_function[function], (function, permission)
        assert reason
