"""DynamoDB's rules that moto lets through, enforced by `consent_dev.dynamodb_rules` on the embedded server: each
request below is accepted by plain moto (the rules switched off) and refused, as AWS refuses it, with them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from consent.services import aws_client
from consent_dev.aws import Deployed
from consent_dev.dynamodb_rules import Rules

pytestmark = pytest.mark.integration


def _key(sk: str) -> dict[str, Any]:
    return {"PK": {"S": "COMPANY#rules"}, "SK": {"S": sk}}


def _requests(table: str) -> dict[str, Callable[[Any], Any]]:
    big = "x" * (380 * 1024)
    return {
        "an empty key attribute in ExclusiveStartKey": lambda db: db.query(
            TableName=table,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": "COMPANY#rules"}},
            ExclusiveStartKey=_key(""),
        ),
        "an empty key attribute in an UpdateItem key": lambda db: db.update_item(
            TableName=table,
            Key=_key(""),
            UpdateExpression="SET x = :x",
            ExpressionAttributeValues={":x": {"S": "1"}},
        ),
        "an empty key attribute in a transaction's Delete": lambda db: db.transact_write_items(
            TransactItems=[{"Delete": {"TableName": table, "Key": _key("")}}]
        ),
        "an expression over 4 KB": lambda db: db.update_item(
            TableName=table,
            Key=_key("a"),
            UpdateExpression="SET x = :x" + " " * 5000,
            ExpressionAttributeValues={":x": {"S": "1"}},
        ),
        "an attribute name over 64 KB": lambda db: db.put_item(
            TableName=table, Item={**_key("b"), "n" * 66_000: {"S": "x"}}
        ),
        "a transaction over 4 MB": lambda db: db.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {**_key(f"big-{n}"), "data": {"S": big}}}} for n in range(12)
            ]
        ),
        "a batch of 26 writes": lambda db: db.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": _key(f"batch-{n}")}} for n in range(26)]}
        ),
        "a batch writing and deleting one key": lambda db: db.batch_write_item(
            RequestItems={
                table: [
                    {"PutRequest": {"Item": {**_key("dup"), "x": {"S": "1"}}}},
                    {"DeleteRequest": {"Key": _key("dup")}},
                ]
            }
        ),
    }


@pytest.fixture
def rules_off() -> Iterator[None]:
    Rules.enabled = False
    try:
        yield
    finally:
        Rules.enabled = True


@pytest.mark.parametrize("name", list(_requests("t")))
def test_plain_moto_accepts_what_aws_refuses(aws: Deployed, rules_off: None, name: str) -> None:
    _requests(aws.tables["ConsentTable"])[name](aws_client("dynamodb"))


@pytest.mark.parametrize("name", list(_requests("t")))
def test_the_development_aws_refuses_it_as_aws_does(aws: Deployed, name: str) -> None:
    with pytest.raises(ClientError) as refused:
        _requests(aws.tables["ConsentTable"])[name](aws_client("dynamodb"))

    assert refused.value.response["Error"]["Code"] == "ValidationException"
