"""The consent reminders' index: the connections whose next reminder is due, a Query per shard of the sparse
index GSI2 (never a Scan), oldest due first."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from consent.store.dynamodb.table import GSI2, REMIND_SHARDS, DynamoDBTable, _s, company_pk, remind_pk
from consent.store.port import ReminderDue
from consent.store.positions import sortable

# Keys per Query page (the index projects keys only: a page is small whatever the connections hold).
_PAGE_ITEMS = 500
# Sorts after `#`, the separator that follows the due time in GSI2SK: "due at or before" as a key condition.
_AFTER_SEPARATOR = "$"


class Reminders(DynamoDBTable):
    def due_reminders(self, until: datetime) -> Iterator[ReminderDue]:
        prefix = company_pk("")
        for shard in range(REMIND_SHARDS):
            request: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": GSI2,
                "KeyConditionExpression": "GSI2PK = :pk AND GSI2SK <= :until",
                "ExpressionAttributeValues": {
                    ":pk": _s(remind_pk(shard)),
                    ":until": _s(sortable(until) + _AFTER_SEPARATOR),
                },
                "Limit": _PAGE_ITEMS,
            }
            while True:
                response = self._call(self._db.query, **request)
                for item in response.get("Items", []):
                    due_at, _, _ = item["GSI2SK"]["S"].partition("#")
                    yield ReminderDue(
                        company_id=item["PK"]["S"].removeprefix(prefix),
                        connection_id=item["SK"]["S"].removeprefix("CONNECTION#"),
                        due_at=datetime.fromisoformat(due_at),
                    )
                last = response.get("LastEvaluatedKey")
                if not last:
                    break
                request["ExclusiveStartKey"] = last
