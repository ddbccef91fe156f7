"""Erasure: a company replaced by its tombstone in one transaction (its idempotency key spent, the customer's count
lowered), then the rest of its partition deleted in batches; `finish_erasure` resumes an interrupted one."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from consent.domain.records import LedgerRecord
from consent.domain.resources import LedgerEntryType
from consent.store.dynamodb.idempotency import IdempotencyKeys
from consent.store.dynamodb.quotas import CustomerQuotas
from consent.store.dynamodb.table import Item, _s, company_pk
from consent.store.port import ConflictError, StoreUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

_BATCH_WRITE_LIMIT = 25
_ERASE_ATTEMPTS = 3


class Erasure(IdempotencyKeys, CustomerQuotas):
    """Everything under `COMPANY#<companyId>` deleted, but the tombstone ledger entry."""

    def erase_company(self, company_id: str, tombstone: LedgerRecord) -> None:
        pk = company_pk(company_id)
        for _ in range(_ERASE_ATTEMPTS):
            items = self._query_all(
                KeyConditionExpression="PK = :pk",
                ExpressionAttributeValues={":pk": _s(pk)},
                ConsistentRead=True,
                ProjectionExpression="PK, SK, idempotencyPK, version",
            )
            company_item = next((i for i in items if i["SK"]["S"] == "COMPANY"), None)
            if company_item is None:
                return  # erased meanwhile
            # First, one transaction: the company goes (with the remembered answer to its create request, which
            # holds its name) and the tombstone comes, so every reader sees the whole company or none of it. What
            # is left of it (connections, ledger, parked webhooks) goes after; `finish_erasure` resumes that.
            final: list[TransactWriteItemTypeDef] = [
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": {"PK": _s(pk), "SK": _s("COMPANY")},
                        # Unchanged since the partition was read: nothing written meanwhile is left behind.
                        "ConditionExpression": "version = :read",
                        "ExpressionAttributeValues": {":read": company_item["version"]},
                    }
                },
                self._put_ledger(tombstone),
            ]
            idempotency_pk = company_item.get("idempotencyPK", {}).get("S")
            if idempotency_pk:
                final.append(self._spend_idempotency_key(idempotency_pk))
            if tombstone.customer_id and self.customer_companies(tombstone.customer_id) > 0:
                # One company fewer for the customer's cap (counted when it was created).
                final.append(self._uncount_company(tombstone.customer_id))
            try:
                self._transact(final)
            except ConflictError:
                continue  # the company changed (a webhook) or was erased meanwhile: read it again
            self._delete_items([i for i in items if i["SK"]["S"] != "COMPANY"])
            return
        raise ConflictError("the company kept changing while it was erased")

    def finish_erasure(self, customer_id: str, company_id: str) -> bool:
        items = self._query_all(
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": _s(company_pk(company_id))},
            ConsistentRead=True,
            ProjectionExpression="PK, SK, #type",
            ExpressionAttributeNames={"#type": "type"},
        )
        if any(i["SK"]["S"] == "COMPANY" for i in items):
            return False  # not erased
        tombstones = [i for i in items if i.get("type", {}).get("S") == LedgerEntryType.COMPANY_ERASED]
        rest = [i for i in items if i not in tombstones]
        if not tombstones or not rest:
            return False  # never this company, or nothing left of it
        tombstone = self._call(
            self._db.get_item,
            TableName=self._table,
            Key={"PK": tombstones[0]["PK"], "SK": tombstones[0]["SK"]},
            ConsistentRead=True,
        ).get("Item")
        if tombstone is None or LedgerRecord.model_validate_json(tombstone["data"]["S"]).customer_id != customer_id:
            return False  # another customer's company: as unknown as a missing one
        self._delete_items(rest)
        return True

    def _delete_items(self, items: list[Item]) -> None:
        for start in range(0, len(items), _BATCH_WRITE_LIMIT):
            self._delete_batch([{"PK": i["PK"], "SK": i["SK"]} for i in items[start : start + _BATCH_WRITE_LIMIT]])

    def _delete_batch(self, keys: list[Item]) -> None:
        request: dict[str, Any] = {self._table: [{"DeleteRequest": {"Key": key}} for key in keys]}
        for attempt in range(5):
            response = self._call(self._db.batch_write_item, RequestItems=request)
            request = response.get("UnprocessedItems") or {}
            if not request:
                return
            time.sleep(0.05 * 2**attempt)  # DynamoDB asks us to back off before resending the rest
        raise StoreUnavailable("DynamoDB kept items unprocessed")
