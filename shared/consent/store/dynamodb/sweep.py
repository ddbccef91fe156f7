"""The reconciliation sweep: the one reader of the whole table (a paged Scan keeping the company items), its
opaque cursor, and the cursor item where a pass over the companies stopped."""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from consent.store.dynamodb.table import DynamoDBTable, Item, _s, company_pk
from consent.store.port import CursorError, Page

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

_RECONCILE_KEY: Item = {"PK": {"S": "RECONCILE#cursor"}, "SK": {"S": "RECONCILE"}}


class ReconciliationSweep(DynamoDBTable):
    """Reconciliation's pass over the companies, resumed from `RECONCILE#cursor`."""

    def sweep_companies(self, cursor: str | None, *, limit: int) -> Page[str]:
        request: dict[str, Any] = {
            "TableName": self._table,
            # `Limit` counts the items read, not the companies kept: a page's cost is bounded either way.
            "Limit": limit,
            "FilterExpression": "#kind = :company",
            "ProjectionExpression": "PK",
            "ExpressionAttributeNames": {"#kind": "kind"},
            "ExpressionAttributeValues": {":company": _s("company")},
        }
        if cursor is not None:
            request["ExclusiveStartKey"] = self._decode_cursor(cursor, ("PK", "SK"))
        response = self._call(self._db.scan, **request)
        prefix = company_pk("")
        ids = [item["PK"]["S"].removeprefix(prefix) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return Page(ids, self._encode_cursor(last, ("PK", "SK")) if last else None)

    def sweep_cursor_after(self, company_id: str) -> str:
        return self._encode_cursor({"PK": _s(company_pk(company_id)), "SK": _s("COMPANY")}, ("PK", "SK"))

    def reconcile_cursor(self) -> str | None:
        item = self._call(self._db.get_item, TableName=self._table, Key=_RECONCILE_KEY, ConsistentRead=True).get("Item")
        return item["cursor"]["S"] if item else None

    def save_reconcile_cursor(self, cursor: str | None) -> None:
        if cursor is None:
            self._call(self._db.delete_item, TableName=self._table, Key=_RECONCILE_KEY)
            return
        item: Item = {**_RECONCILE_KEY, "kind": _s("reconcile"), "cursor": _s(cursor)}
        self._call(self._db.put_item, TableName=self._table, Item=item)

    @staticmethod
    def _encode_cursor(item: Item, names: tuple[str, ...] = ("PK", "SK")) -> str:
        key = {name: item[name]["S"] for name in names}
        return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")

    @staticmethod
    def _decode_cursor(cursor: str, names: tuple[str, ...] = ("PK", "SK")) -> dict[str, AttributeValueTypeDef]:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            key = json.loads(raw)
        except (binascii.Error, ValueError) as error:
            raise CursorError("not a reconciliation cursor") from error
        if not isinstance(key, dict) or set(key) != set(names) or not all(isinstance(key[n], str) for n in names):
            raise CursorError("not a reconciliation cursor")
        if not all(key[n] for n in names):  # DynamoDB refuses an empty key attribute (a ValidationException)
            raise CursorError("not a reconciliation cursor")
        return {name: _s(key[name]) for name in names}
