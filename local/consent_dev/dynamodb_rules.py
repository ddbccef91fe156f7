"""DynamoDB's documented request rules that moto lets through, enforced on the embedded moto server (tests and
`make dev` alike), so that a request AWS would refuse is refused here too, with DynamoDB's ValidationException.

Checked against moto first (`tests/unit/test_dynamodb_rules.py` switches each rule off and shows plain moto
accepting what AWS refuses); moto already refuses an empty key in PutItem, items over 400 KB, transactions of more
than 100 actions and an item touched twice in one transaction, so those are not repeated here."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

KeyNames = Callable[[str], tuple[str, ...]]  # a table's key attribute names

# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html
MAX_EXPRESSION_BYTES = 4096
MAX_ATTRIBUTE_NAME_BYTES = 65535
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
MAX_BATCH_WRITE_REQUESTS = 25
_EXPRESSIONS = (
    "UpdateExpression",
    "ConditionExpression",
    "KeyConditionExpression",
    "FilterExpression",
    "ProjectionExpression",
)


class RuleBroken(ValueError):
    """A request DynamoDB refuses; the message is DynamoDB's own wording."""


class Rules:
    """The switch for all rules (on once installed; a test turns them off to show what plain moto accepts)."""

    enabled = True


# -- the rules, each over one request body ------------------------------------------------------------------------


def _empty_key_attributes(body: Mapping[str, Any]) -> None:
    for label, key in _keys(body):
        for name, value in key.items():
            if isinstance(value, Mapping) and any(value.get(kind) == "" for kind in ("S", "B")):
                raise RuleBroken(
                    "One or more parameter values are not valid. The AttributeValue for a key attribute cannot "
                    f"contain an empty string value. {label}: {name}"
                )


def _keys(body: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for label in ("Key", "ExclusiveStartKey"):
        if isinstance(body.get(label), Mapping):
            yield label, body[label]
    for step in body.get("TransactItems", []) or []:
        for action in step.values():
            if isinstance(action, Mapping) and isinstance(action.get("Key"), Mapping):
                yield "Key", action["Key"]
    for requests in (body.get("RequestItems") or {}).values():
        for request in requests if isinstance(requests, list) else []:
            delete = request.get("DeleteRequest") if isinstance(request, Mapping) else None
            if isinstance(delete, Mapping) and isinstance(delete.get("Key"), Mapping):
                yield "Key", delete["Key"]


def _expression_sizes(body: Mapping[str, Any]) -> None:
    for requests in _each_request(body):
        for name in _EXPRESSIONS:
            expression = requests.get(name)
            if isinstance(expression, str) and len(expression.encode()) > MAX_EXPRESSION_BYTES:
                raise RuleBroken(f"Invalid {name}: Expression size has exceeded the maximum allowed size")


def _attribute_name_sizes(body: Mapping[str, Any]) -> None:
    for request in _each_request(body):
        item = request.get("Item")
        for name in item if isinstance(item, Mapping) else ():
            if len(str(name).encode()) > MAX_ATTRIBUTE_NAME_BYTES:
                raise RuleBroken("One or more parameter values were invalid: attribute name exceeds 65535 bytes")


def _each_request(body: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield body
    for step in body.get("TransactItems", []) or []:
        for action in step.values():
            if isinstance(action, Mapping):
                yield action
    for requests in (body.get("RequestItems") or {}).values():
        for request in requests if isinstance(requests, list) else []:
            put = request.get("PutRequest") if isinstance(request, Mapping) else None
            if isinstance(put, Mapping):
                yield put


def _transaction_size(body: Mapping[str, Any]) -> None:
    total = sum(
        item_size(action.get("Item") or action.get("Key") or {})
        for step in body.get("TransactItems", []) or []
        for action in step.values()
        if isinstance(action, Mapping)
    )
    if total > MAX_TRANSACTION_BYTES:
        raise RuleBroken("Transaction request size has exceeded the maximum allowed size of 4 MB")


def _batch_write(body: Mapping[str, Any], key_names: KeyNames) -> None:
    requests = body.get("RequestItems") or {}
    count = sum(len(items) for items in requests.values() if isinstance(items, list))
    if count > MAX_BATCH_WRITE_REQUESTS:
        raise RuleBroken(
            "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Map value must "
            "satisfy constraint: [Member must have length less than or equal to 25, Member must have length greater "
            "than or equal to 1]"
        )
    for table, items in requests.items():
        names = key_names(table)
        seen: set[str] = set()
        for request in items if isinstance(items, list) else []:
            key = (request.get("DeleteRequest") or {}).get("Key") or (request.get("PutRequest") or {}).get("Item")
            marker = repr(sorted((name, repr(value)) for name, value in (key or {}).items() if name in names))
            if marker in seen:
                raise RuleBroken("Provided list of item keys contains duplicates")
            seen.add(marker)


def item_size(item: Mapping[str, Any]) -> int:
    """An item's size as DynamoDB counts it: each attribute's name and value, in bytes (numbers approximated by
    their text, which is never smaller than DynamoDB's encoding by more than a byte or two)."""
    return sum(len(str(name).encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: Any) -> int:
    if not isinstance(value, Mapping) or len(value) != 1:
        return 0
    ((kind, content),) = value.items()
    if kind in ("S", "N"):
        return len(str(content).encode())
    if kind == "B":
        return len(content) if isinstance(content, bytes | bytearray) else len(str(content)) * 3 // 4
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS"):
        return sum(len(str(v).encode()) for v in content)
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in content)
    if kind == "M":
        return 3 + sum(1 + len(str(k).encode()) + _value_size(v) for k, v in content.items())
    return 0


def _any_table(rule: Callable[[Mapping[str, Any]], None]) -> Callable[[Mapping[str, Any], KeyNames], None]:
    return lambda body, _key_names: rule(body)


_empty_keys = _any_table(_empty_key_attributes)
_expressions = _any_table(_expression_sizes)
_names = _any_table(_attribute_name_sizes)
_transaction = _any_table(_transaction_size)

RULES: dict[str, tuple[Callable[[Mapping[str, Any], KeyNames], None], ...]] = {
    "get_item": (_empty_keys, _expressions),
    "delete_item": (_empty_keys, _expressions),
    "update_item": (_empty_keys, _expressions),
    "put_item": (_expressions, _names),
    "query": (_empty_keys, _expressions),
    "scan": (_empty_keys, _expressions),
    "transact_write_items": (_empty_keys, _expressions, _names, _transaction),
    "batch_write_item": (_empty_keys, _names, _batch_write),
}


def check(operation: str, body: Mapping[str, Any], key_names: KeyNames) -> None:
    """Raise RuleBroken if DynamoDB would refuse `operation` with `body` (its JSON request); `key_names` gives a
    table's key attribute names."""
    for rule in RULES.get(operation, ()):
        rule(body, key_names)


def install() -> None:
    """Make moto's DynamoDB handler check the rules before each operation (idempotent)."""
    from moto.dynamodb.exceptions import MockValidationException  # noqa: PLC0415 - dev dependency
    from moto.dynamodb.responses import DynamoHandler  # noqa: PLC0415

    for operation in RULES:
        original = getattr(DynamoHandler, operation)
        if getattr(original, "_consent_rules", False):
            continue

        def checked(self: Any, _original: Any = original, _operation: str = operation) -> Any:
            if Rules.enabled:
                backend = self.dynamodb_backend

                def key_names(table: str) -> tuple[str, ...]:
                    found = backend.get_table(table)
                    return tuple(name for name in (found.hash_key_attr, found.range_key_attr) if name)

                try:
                    check(_operation, self.body, key_names)
                except RuleBroken as broken:
                    raise MockValidationException(str(broken)) from None
            return _original(self)

        checked._consent_rules = True  # type: ignore[attr-defined]
        setattr(DynamoHandler, operation, functools.wraps(original)(checked))
