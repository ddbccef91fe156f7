"""The lifecycle's items: the connections due a reminder or a keep-alive refresh and the companies due a data
check (a Query per shard of the sparse,
keys-only index GSI2, never a Scan, merged oldest due first) and the day's counter of keep-alive Codat requests."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from consent.store.dynamodb.table import GSI2, LIFECYCLE_SHARDS, DynamoDBTable, _n, _s, company_pk, lifecycle_pk
from consent.store.port import ConflictError, LifecycleDue
from consent.store.positions import sortable

# Keys per Query page (the index projects keys only: a page is small whatever the connections hold).
_PAGE_ITEMS = 500
# Sorts after `#`, the separator that follows the due time in GSI2SK: "due at or before" as a key condition.
_AFTER_SEPARATOR = "$"
# A day's counter outlives its day by one (TTL), for whoever looks at it the morning after.
_COUNTER_SECONDS = 2 * 24 * 3600


class Lifecycle(DynamoDBTable):
    def due_lifecycle(self, until: datetime) -> Iterator[LifecycleDue]:
        # Each shard's Query returns its keys in due order; merged, the oldest due comes first across all of them.
        return heapq.merge(*(self._due_in_shard(shard, until) for shard in range(LIFECYCLE_SHARDS)))

    def _due_in_shard(self, shard: int, until: datetime) -> Iterator[LifecycleDue]:
        prefix = company_pk("")
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI2,
            "KeyConditionExpression": "GSI2PK = :pk AND GSI2SK <= :until",
            "ExpressionAttributeValues": {
                ":pk": _s(lifecycle_pk(shard)),
                ":until": _s(sortable(until) + _AFTER_SEPARATOR),
            },
            "Limit": _PAGE_ITEMS,
        }
        while True:
            response = self._call(self._db.query, **request)
            for item in response.get("Items", []):
                due_at, _, _ = item["GSI2SK"]["S"].partition("#")
                sk = item["SK"]["S"]
                yield LifecycleDue(
                    due_at=datetime.fromisoformat(due_at),
                    company_id=item["PK"]["S"].removeprefix(prefix),
                    # The company item itself: "" (it sorts before its connections due at the same time).
                    connection_id="" if sk == "COMPANY" else sk.removeprefix("CONNECTION#"),
                )
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            request["ExclusiveStartKey"] = last

    def spend_keep_alive_request(self, day: str, limit: int) -> bool:
        if limit <= 0:
            return False
        try:
            self._call(
                self._db.update_item,
                TableName=self._table,
                Key={"PK": _s("LIFECYCLE#keep-alive"), "SK": _s(f"DAY#{day}")},
                UpdateExpression="ADD #count :one SET expiresAt = if_not_exists(expiresAt, :expires)",
                ConditionExpression="attribute_not_exists(#count) OR #count < :limit",
                ExpressionAttributeNames={"#count": "count"},
                ExpressionAttributeValues={
                    ":one": _n(1),
                    ":limit": _n(limit),
                    ":expires": _n(int(self._clock()) + _COUNTER_SECONDS),
                },
            )
        except ConflictError:
            return False
        return True
