"""The table itself: item keys, attribute values, the items every concern writes (companies, connections, ledger
entries, version-conditional saves) and the boto3 plumbing (calls, their failures as the port's errors,
transactions, paged queries). The store's concerns (the other modules of this package) build on `DynamoDBTable`."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from consent.domain.records import CompanyRecord, ConnectionRecord, LedgerKey, LedgerRecord
from consent.store.port import ConflictError, StoreRejected, StoreUnavailable
from consent.store.positions import sortable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef

Item = dict[str, "AttributeValueTypeDef"]

GSI1 = "GSI1"
# Connections by when the lifecycle run has something to do for them, a reminder or a keep-alive refresh (sparse:
# only those with one to come), spread over a few partition keys so that no one index partition takes every write.
GSI2 = "GSI2"
LIFECYCLE_SHARDS = 4
_CONFLICT_CODES = frozenset({"ConditionalCheckFailedException", "TransactionConflictException"})


def company_pk(company_id: str) -> str:
    return f"COMPANY#{company_id}"


def webhook_pk(webhook_id: str) -> str:
    return f"WEBHOOK#{webhook_id}"


def ledger_sk(entry: LedgerRecord | LedgerKey) -> str:
    # Entries of one change share a timestamp: `seq` keeps them in written order.
    return f"LEDGER#{sortable(entry.at)}#{entry.seq:03d}#{entry.entry_id}"


# The last part of a company's GSI2SK (a connection's is its id): the lifecycle has something to do for the company.
COMPANY_DUE = "COMPANY"


def lifecycle_pk(shard: int) -> str:
    return f"LIFECYCLE#{shard}"


def lifecycle_shard(item_id: str) -> int:
    """The GSI2 shard of a connection (by its id) or of a company (by its id)."""
    return int.from_bytes(hashlib.sha256(item_id.encode()).digest()[:2], "big") % LIFECYCLE_SHARDS


def customer_pk(customer_id: str) -> str:
    return f"CUSTOMER#{customer_id}"


def quota_pk(customer_id: str) -> str:
    """A customer's quota items, keyed by a hash: they outlive the customer's companies, and an erasure leaves
    nothing that names the customer."""
    return f"QUOTA#{hashlib.sha256(customer_id.encode()).hexdigest()}"


def _failed_condition(error: ConflictError, index: int) -> bool:
    """Whether a cancelled transaction failed on the condition of its item at `index`."""
    cause = error.__cause__
    reasons = cause.response.get("CancellationReasons", []) if isinstance(cause, ClientError) else []
    return index < len(reasons) and reasons[index].get("Code") == "ConditionalCheckFailed"


def _s(value: str) -> AttributeValueTypeDef:
    return {"S": value}


def _n(value: int) -> AttributeValueTypeDef:
    return {"N": str(value)}


class DynamoDBTable:
    """The client and the table every concern of the store works on, and what they share."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        idempotency_ttl_hours: int = 24,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = client
        self._table = table_name
        self._idempotency_ttl = idempotency_ttl_hours * 3600
        # Codat retries for about 28 hours and can replay older messages by hand: remember a week and a day.
        self._webhook_ttl = 8 * 24 * 3600
        self._clock = clock

    # -- items -------------------------------------------------------------------------------

    def _company_item(self, company: CompanyRecord) -> Item:
        return {
            "PK": _s(company_pk(company.company_id)),
            "SK": _s("COMPANY"),
            "GSI1PK": _s(customer_pk(company.customer_id)),
            "GSI1SK": _s(f"{sortable(company.created_at)}#{company.company_id}#COMPANY"),
            "kind": _s("company"),
            "customerId": _s(company.customer_id),
            "version": _n(company.version),
            "data": _s(company.model_dump_json()),
            **self._company_lifecycle_keys(company),
        }

    @staticmethod
    def _company_lifecycle_keys(company: CompanyRecord) -> Item:
        """The company's place in GSI2 (sparse: none while the lifecycle has nothing to do for it)."""
        due = company.lifecycle_at
        if due is None:
            return {}
        return {
            "GSI2PK": _s(lifecycle_pk(lifecycle_shard(company.company_id))),
            "GSI2SK": _s(f"{sortable(due)}#{company.company_id}#{COMPANY_DUE}"),
        }

    def _connection_item(self, connection: ConnectionRecord) -> Item:
        company_id = connection.company_id
        item: Item = {
            "PK": _s(company_pk(company_id)),
            "SK": _s(f"CONNECTION#{connection.connection_id}"),
            "GSI1PK": _s(customer_pk(connection.customer_id)),
            "GSI1SK": _s(
                f"{sortable(connection.company_created_at)}#{company_id}#CONNECTION#{connection.connection_id}"
            ),
            "kind": _s("connection"),
            "version": _n(connection.version),
            "data": _s(connection.model_dump_json(exclude={"link_url"})),
        }
        due = connection.lifecycle_at
        if due is not None and not connection.deleted:
            # A Put replaces the whole item: without these it leaves the index (nothing left to remind or refresh).
            item["GSI2PK"] = _s(lifecycle_pk(lifecycle_shard(connection.connection_id)))
            item["GSI2SK"] = _s(f"{sortable(due)}#{company_id}#{connection.connection_id}")
        return item

    def _put_ledger(self, entry: LedgerRecord, *, replacing: bool = False) -> TransactWriteItemTypeDef:
        return {
            "Put": {
                "TableName": self._table,
                "Item": {
                    "PK": _s(company_pk(entry.company_id)),
                    "SK": _s(ledger_sk(entry)),
                    "kind": _s("ledger"),
                    "type": _s(entry.type),
                    "data": _s(entry.model_dump_json()),
                },
                "ConditionExpression": "attribute_exists(PK)" if replacing else "attribute_not_exists(PK)",
            }
        }

    def _update_company_if_version(self, company: CompanyRecord, read_version: int) -> TransactWriteItemTypeDef:
        keys = self._company_lifecycle_keys(company)
        # An update, not a put: the item keeps what only its creation wrote (the link to the Idempotency-Key
        # record, which erasing the company deletes too).
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"PK": _s(company_pk(company.company_id)), "SK": _s("COMPANY")},
                # Its place in GSI2 moves with it (or it leaves the index: nothing left to do for it).
                "UpdateExpression": "SET #data = :data, version = :version"
                + (", GSI2PK = :due_pk, GSI2SK = :due_sk" if keys else " REMOVE GSI2PK, GSI2SK"),
                "ConditionExpression": "version = :read",
                "ExpressionAttributeNames": {"#data": "data"},
                "ExpressionAttributeValues": {
                    ":data": _s(company.model_dump_json()),
                    ":version": _n(company.version),
                    ":read": _n(read_version),
                    **({":due_pk": keys["GSI2PK"], ":due_sk": keys["GSI2SK"]} if keys else {}),
                },
            }
        }

    def _put_if_version(self, item: Item, read_version: int) -> TransactWriteItemTypeDef:
        return {
            "Put": {
                "TableName": self._table,
                "Item": item,
                "ConditionExpression": "version = :read",
                "ExpressionAttributeValues": {":read": _n(read_version)},
            }
        }

    # -- plumbing ----------------------------------------------------------------------------

    def _query_all(self, **request: Any) -> list[Item]:
        items: list[Item] = []
        request = {"TableName": self._table, **request}
        while True:
            response = self._call(self._db.query, **request)
            items.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _transact(self, items: list[TransactWriteItemTypeDef]) -> None:
        self._call(self._db.transact_write_items, TransactItems=items)

    @staticmethod
    def _call(operation: Callable[..., Any], **request: Any) -> Any:
        """One DynamoDB call (botocore retries throttling itself), its failures as the port's errors."""
        try:
            return operation(**request)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in _CONFLICT_CODES:
                raise ConflictError(code) from error
            if code == "ValidationException":
                raise StoreRejected(code) from error
            if code == "TransactionCanceledException":
                reasons = {r.get("Code") for r in error.response.get("CancellationReasons", []) if r.get("Code")}
                if reasons & {"ConditionalCheckFailed", "TransactionConflict"}:
                    raise ConflictError(",".join(sorted(str(r) for r in reasons))) from error
            raise StoreUnavailable(code or "DynamoDB error") from error
        except BotoCoreError as error:
            raise StoreUnavailable(type(error).__name__) from error
