"""The per-customer quota counters: the customer's company count (for the per-customer cap) and their
Codat-calling requests per UTC day and minute, under `QUOTA#<hash of customerId>`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from consent.store.dynamodb.table import DynamoDBTable, Item, _n, _s, quota_pk
from consent.store.port import ConflictError, QuotaExceeded, StoreUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef


def _quota_key(customer_id: str) -> Item:
    return {"PK": _s(quota_pk(customer_id)), "SK": _s("COMPANIES")}


class CustomerQuotas(DynamoDBTable):
    """A customer's counters: the company count moves in the transactions that create and erase companies."""

    def customer_companies(self, customer_id: str) -> int:
        item = self._call(
            self._db.get_item, TableName=self._table, Key=_quota_key(customer_id), ConsistentRead=True
        ).get("Item")
        return int(item["companies"]["N"]) if item and "companies" in item else 0

    def _count_company(self, customer_id: str, max_companies: int | None) -> TransactWriteItemTypeDef:
        """One company more for the customer, refused (its condition fails) at `max_companies` if given."""
        values = {":one": _n(1), ":kind": _s("quota")}
        update: dict[str, Any] = {
            "TableName": self._table,
            "Key": _quota_key(customer_id),
            "UpdateExpression": "ADD companies :one SET kind = :kind",
            "ExpressionAttributeValues": values,
        }
        if max_companies is not None:
            update["ConditionExpression"] = "attribute_not_exists(companies) OR companies < :max"
            values[":max"] = _n(max_companies)
        return {"Update": update}  # type: ignore[typeddict-item]

    def _uncount_company(self, customer_id: str) -> TransactWriteItemTypeDef:
        """One company fewer for the customer (never below zero)."""
        return {
            "Update": {
                "TableName": self._table,
                "Key": _quota_key(customer_id),
                "UpdateExpression": "ADD companies :minusOne",
                "ConditionExpression": "companies > :zero",
                "ExpressionAttributeValues": {":minusOne": _n(-1), ":zero": _n(0)},
            }
        }

    def spend_codat_allowance(self, customer_id: str, now: datetime, *, per_minute: int, per_day: int) -> None:
        """One UpdateItem on the customer's item of the day: the day's count and this minute's count, each
        conditional on its limit, so a refused request counts nothing. The item expires the next day."""
        day = now.astimezone(UTC).strftime("%Y-%m-%d")
        minute = now.astimezone(UTC).strftime("m%H%M")
        key = {"PK": _s(quota_pk(customer_id)), "SK": _s(f"RATE#{day}")}
        midnight = int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()) + 86_400
        try:
            self._call(
                self._db.update_item,
                TableName=self._table,
                Key=key,
                UpdateExpression="ADD #day :one, #minute :one SET kind = :kind, expiresAt = :expires",
                ConditionExpression=(
                    "(attribute_not_exists(#day) OR #day < :perDay) "
                    "AND (attribute_not_exists(#minute) OR #minute < :perMinute)"
                ),
                ExpressionAttributeNames={"#day": "requests", "#minute": minute},
                ExpressionAttributeValues={
                    ":one": _n(1),
                    ":perDay": _n(per_day),
                    ":perMinute": _n(per_minute),
                    ":kind": _s("rate"),
                    ":expires": _n(midnight + 86_400),
                },
            )
        except ConflictError:
            seconds = int(now.timestamp())
            item = self._call(self._db.get_item, TableName=self._table, Key=key, ConsistentRead=True).get("Item", {})
            if int(item.get("requests", {}).get("N", "0")) >= per_day:
                raise QuotaExceeded("codat_requests_per_day", retry_after=max(1, midnight - seconds)) from None
            if int(item.get(minute, {}).get("N", "0")) >= per_minute:
                raise QuotaExceeded("codat_requests_per_minute", retry_after=60 - seconds % 60) from None
            # Refused, yet under both limits (a transaction conflict on the item): not the customer's doing.
            raise StoreUnavailable("the request count could not be updated") from None
