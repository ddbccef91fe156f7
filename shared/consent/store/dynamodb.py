"""The consent store on one DynamoDB table (single-table design).

Items (PK / SK):
  COMPANY#<companyId> / COMPANY                      the company, its journey progress, owner and version
  COMPANY#<companyId> / CONNECTION#<connectionId>    one connection
  COMPANY#<companyId> / LEDGER#<at>#<seq>#<entryId>  one consent ledger entry (oldest first by SK)
  IDEMPOTENCY#<hash of caller and key> / IDEMPOTENCY  one API idempotency key, expiring through TTL
  WEBHOOK#<webhook-id> / WEBHOOK                     a processed Codat webhook, kept 8 days (TTL)
  COMPANY#<companyId> / PARKED#<webhook-id>          an authentic webhook that cannot be applied, and why
  PARKED#<webhook-id> / PARKED                       the same, for a company we do not know (TTL)
  RECONCILE#cursor / RECONCILE                       where reconciliation's pass over the companies stopped
  QUOTA#<hash of customerId> / COMPANIES             the customer's company count (for the per-customer cap)
  QUOTA#<hash of customerId> / RATE#<day>            the customer's Codat-calling requests that UTC day and minute
GSI1 (GSI1PK = CUSTOMER#<customerId>, GSI1SK = <companyCreatedAt>#<companyId>#COMPANY|CONNECTION#<id>)
lists a customer's companies with their connections, newest first, in one Query per page.
Company and connection reads by id are one strongly consistent Query on the company's partition.
Only reconciliation reads the whole table: a paged Scan keeping the company items, resumed from the cursor item."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from consent.domain.records import CompanyRecord, CompanyView, ConnectionRecord, LedgerKey, LedgerRecord
from consent.domain.resources import LedgerEntryType
from consent.store.change import Change
from consent.store.port import (
    ConflictError,
    ConsentStore,
    CursorError,
    IdempotencyClaim,
    IdempotencyOutcome,
    IdempotencyResult,
    Page,
    ParkedWebhook,
    QuotaExceeded,
    StoreRejected,
    StoreUnavailable,
)
from consent.store.positions import (
    company_cursor,
    connection_cursor,
    event_cursor,
    parse_company_cursor,
    parse_connection_cursor,
    parse_event_cursor,
    sortable,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef

Item = dict[str, "AttributeValueTypeDef"]

GSI1 = "GSI1"
_IDEMPOTENCY_LEASE_SECONDS = 60  # longer than any API function's timeout (29 s)
# An erased company's Idempotency-Key stays spent this long: Codat remembers a key for 90 minutes.
_SPENT_KEY_SECONDS = 2 * 3600
_QUERY_PAGE_ITEMS = 250
_BATCH_WRITE_LIMIT = 25
_ERASE_ATTEMPTS = 3
_RECONCILE_KEY: Item = {"PK": {"S": "RECONCILE#cursor"}, "SK": {"S": "RECONCILE"}}
_CONFLICT_CODES = frozenset({"ConditionalCheckFailedException", "TransactionConflictException"})


def company_pk(company_id: str) -> str:
    return f"COMPANY#{company_id}"


def webhook_pk(webhook_id: str) -> str:
    return f"WEBHOOK#{webhook_id}"


def ledger_sk(entry: LedgerRecord | LedgerKey) -> str:
    # Entries of one change share a timestamp: `seq` keeps them in written order.
    return f"LEDGER#{sortable(entry.at)}#{entry.seq:03d}#{entry.entry_id}"


def customer_pk(customer_id: str) -> str:
    return f"CUSTOMER#{customer_id}"


def quota_pk(customer_id: str) -> str:
    """A customer's quota items, keyed by a hash: they outlive the customer's companies, and an erasure leaves
    nothing that names the customer."""
    return f"QUOTA#{hashlib.sha256(customer_id.encode()).hexdigest()}"


def _quota_key(customer_id: str) -> Item:
    return {"PK": _s(quota_pk(customer_id)), "SK": _s("COMPANIES")}


def _failed_condition(error: ConflictError, index: int) -> bool:
    """Whether a cancelled transaction failed on the condition of its item at `index`."""
    cause = error.__cause__
    reasons = cause.response.get("CancellationReasons", []) if isinstance(cause, ClientError) else []
    return index < len(reasons) and reasons[index].get("Code") == "ConditionalCheckFailed"


def _s(value: str) -> AttributeValueTypeDef:
    return {"S": value}


def _n(value: int) -> AttributeValueTypeDef:
    return {"N": str(value)}


class DynamoDBConsentStore(ConsentStore):
    max_items_per_commit = 100  # TransactWriteItems

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

    # -- idempotency ---------------------------------------------------------------------------

    def claim_idempotency_key(self, scope: str, key: str, fingerprint: str) -> IdempotencyClaim:
        now = int(self._clock())
        token = secrets.token_hex(16)
        try:
            response = self._call(
                self._db.update_item,
                TableName=self._table,
                Key=self._idempotency_key(scope, key),
                UpdateExpression=(
                    "SET kind = :kind, #state = :in_progress, fingerprint = :fp, claimToken = :token,"
                    " leaseUntil = :lease, expiresAt = :expires, reachedCodat = if_not_exists(reachedCodat, :false)"
                ),
                # Free, expired (TTL deletes lazily), released by a failed attempt, or abandoned by a
                # crashed one (lease over); the last two only for the same request body.
                ConditionExpression=(
                    "attribute_not_exists(PK) OR expiresAt < :now OR (fingerprint = :fp AND"
                    " (#state = :released OR (#state = :in_progress AND leaseUntil < :now)))"
                ),
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":kind": _s("idempotency"),
                    ":in_progress": _s("IN_PROGRESS"),
                    ":released": _s("RELEASED"),
                    ":fp": _s(fingerprint),
                    ":token": _s(token),
                    ":lease": _n(now + _IDEMPOTENCY_LEASE_SECONDS),
                    ":expires": _n(now + self._idempotency_ttl),
                    ":now": _n(now),
                    ":false": {"BOOL": False},
                },
                ReturnValues="ALL_NEW",
            )
        except ConflictError:
            return self.idempotency_key_state(scope, key, fingerprint)
        reached = bool(response["Attributes"].get("reachedCodat", {}).get("BOOL"))
        return IdempotencyClaim(IdempotencyOutcome.ACQUIRED, token=token, previous_attempt_reached_codat=reached)

    def idempotency_key_state(self, scope: str, key: str, fingerprint: str) -> IdempotencyClaim:
        item = self._call(
            self._db.get_item, TableName=self._table, Key=self._idempotency_key(scope, key), ConsistentRead=True
        ).get("Item")
        if item is None:  # it expired or was deleted between the two calls: the caller may simply retry
            return IdempotencyClaim(IdempotencyOutcome.IN_PROGRESS)
        if item["state"]["S"] == "ERASED":
            return IdempotencyClaim(IdempotencyOutcome.ERASED)
        if item["fingerprint"]["S"] != fingerprint:
            return IdempotencyClaim(IdempotencyOutcome.MISMATCH)
        if item["state"]["S"] == "COMPLETED":
            return IdempotencyClaim(
                IdempotencyOutcome.REPLAY, status=int(item["responseStatus"]["N"]), body=item["responseBody"]["S"]
            )
        return IdempotencyClaim(IdempotencyOutcome.IN_PROGRESS)

    def release_idempotency_key(self, scope: str, key: str, token: str, *, reached_codat: bool) -> None:
        update = "SET #state = :released" + (", reachedCodat = :true" if reached_codat else "")
        values: dict[str, AttributeValueTypeDef] = {":released": _s("RELEASED"), ":token": _s(token)}
        if reached_codat:
            values[":true"] = {"BOOL": True}
        # A conflict means someone took the key over after our lease ran out: it is theirs now.
        with contextlib.suppress(ConflictError):
            self._call(
                self._db.update_item,
                TableName=self._table,
                Key=self._idempotency_key(scope, key),
                UpdateExpression=update,
                ConditionExpression="claimToken = :token",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
            )

    def _idempotency_key(self, scope: str, key: str) -> Item:
        digest = hashlib.sha256(f"{scope}\x00{key}".encode()).hexdigest()
        return {"PK": _s(f"IDEMPOTENCY#{digest}"), "SK": _s("IDEMPOTENCY")}

    def _spend_idempotency_key(self, idempotency_pk: str) -> TransactWriteItemTypeDef:
        """The key of an erased company's create request, emptied of everything but the key's hash: the remembered
        answer (the company's name) and the body's fingerprint go, and the key stays spent while Codat still
        remembers it (its idempotency window, 90 minutes from its first use, which was before now). Reused with any
        body, it answers 422: Codat would refuse another body, and replay the erased company for the same one."""
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"PK": _s(idempotency_pk), "SK": _s("IDEMPOTENCY")},
                "UpdateExpression": (
                    "SET kind = :kind, #state = :erased, expiresAt = :expires"
                    " REMOVE fingerprint, responseStatus, responseBody, claimToken, leaseUntil, reachedCodat"
                ),
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": {
                    ":kind": _s("idempotency"),
                    ":erased": _s("ERASED"),
                    ":expires": _n(int(self._clock()) + _SPENT_KEY_SECONDS),
                },
            }
        }

    def _complete_idempotency(self, result: IdempotencyResult) -> TransactWriteItemTypeDef:
        return {
            "Update": {
                "TableName": self._table,
                "Key": self._idempotency_key(result.scope, result.key),
                "UpdateExpression": "SET #state = :completed, responseStatus = :status, responseBody = :body",
                "ConditionExpression": "claimToken = :token AND #state = :in_progress",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": {
                    ":completed": _s("COMPLETED"),
                    ":in_progress": _s("IN_PROGRESS"),
                    ":status": _n(result.status),
                    ":body": _s(result.body),
                    ":token": _s(result.token),
                },
            }
        }

    # -- companies ---------------------------------------------------------------------------

    def create_company(
        self,
        company: CompanyRecord,
        ledger: list[LedgerRecord],
        idempotency: IdempotencyResult | None,
        *,
        max_companies: int | None = None,
    ) -> None:
        company_item = self._company_item(company)
        if idempotency is not None:
            company_item["idempotencyPK"] = self._idempotency_key(idempotency.scope, idempotency.key)["PK"]
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": company_item,
                    "ConditionExpression": "attribute_not_exists(PK)",
                }
            },
            *(self._put_ledger(entry) for entry in ledger),
        ]
        if idempotency is not None:
            items.append(self._complete_idempotency(idempotency))
        values = {":one": _n(1), ":kind": _s("quota")}
        update: dict[str, Any] = {
            "TableName": self._table,
            "Key": _quota_key(company.customer_id),
            "UpdateExpression": "ADD companies :one SET kind = :kind",
            "ExpressionAttributeValues": values,
        }
        if max_companies is not None:
            update["ConditionExpression"] = "attribute_not_exists(companies) OR companies < :max"
            values[":max"] = _n(max_companies)
        items.append({"Update": update})  # type: ignore[typeddict-item]
        try:
            self._transact(items)
        except ConflictError as error:
            if _failed_condition(error, len(items) - 1):
                raise QuotaExceeded("companies") from None
            raise

    def customer_companies(self, customer_id: str) -> int:
        item = self._call(
            self._db.get_item, TableName=self._table, Key=_quota_key(customer_id), ConsistentRead=True
        ).get("Item")
        return int(item["companies"]["N"]) if item and "companies" in item else 0

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

    def commit(self, change: Change) -> None:
        items: list[TransactWriteItemTypeDef] = []
        if change.company is not None:
            saved = change.company.model_copy(update={"version": change.company.version + 1})
            items.append(self._update_company_if_version(saved, change.company.version))
        for connection in change.added:
            items.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": self._connection_item(connection.model_copy(update={"version": 1})),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                }
            )
        for connection in change.updated:
            saved_connection = connection.model_copy(update={"version": connection.version + 1})
            items.append(self._put_if_version(self._connection_item(saved_connection), connection.version))
        items.extend(self._put_ledger(entry) for entry in change.ledger)
        company_id = change.company.company_id if change.company is not None else None
        for retracted in change.retracted:
            assert company_id is not None, "a retraction comes with the company it belongs to"
            key = {"PK": _s(company_pk(company_id)), "SK": _s(ledger_sk(retracted))}
            items.append({"Delete": {"TableName": self._table, "Key": key}})
        items.extend(self._put_ledger(entry, replacing=True) for entry in change.replaced)
        if change.webhook_id is not None:
            items.append(self._remember_webhook(change.webhook_id))
        if items:
            self._transact(items)

    def _remember_webhook(self, webhook_id: str) -> TransactWriteItemTypeDef:
        return {
            "Put": {
                "TableName": self._table,
                "Item": {
                    "PK": _s(webhook_pk(webhook_id)),
                    "SK": _s("WEBHOOK"),
                    "kind": _s("webhook"),
                    "expiresAt": _n(int(self._clock()) + self._webhook_ttl),
                },
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        }

    def webhook_seen(self, webhook_id: str) -> bool:
        item = self._call(
            self._db.get_item,
            TableName=self._table,
            Key={"PK": _s(webhook_pk(webhook_id)), "SK": _s("WEBHOOK")},
            ConsistentRead=True,
            ProjectionExpression="PK",
        ).get("Item")
        return item is not None

    def _update_company_if_version(self, company: CompanyRecord, read_version: int) -> TransactWriteItemTypeDef:
        # An update, not a put: the item keeps what only its creation wrote (the link to the Idempotency-Key
        # record, which erasing the company deletes too).
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"PK": _s(company_pk(company.company_id)), "SK": _s("COMPANY")},
                "UpdateExpression": "SET #data = :data, version = :version",
                "ConditionExpression": "version = :read",
                "ExpressionAttributeNames": {"#data": "data"},
                "ExpressionAttributeValues": {
                    ":data": _s(company.model_dump_json()),
                    ":version": _n(company.version),
                    ":read": _n(read_version),
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

    def company_owner(self, company_id: str) -> str | None:
        item = self._call(
            self._db.get_item,
            TableName=self._table,
            Key={"PK": _s(company_pk(company_id)), "SK": _s("COMPANY")},
            ProjectionExpression="customerId",
            ConsistentRead=True,
        ).get("Item")
        return item["customerId"]["S"] if item else None

    def list_connections(
        self, customer_id: str, company_id: str, *, limit: int, cursor: str | None
    ) -> Page[ConnectionRecord] | None:
        if self.company_owner(company_id) != customer_id:
            return None
        start = f"CONNECTION#{parse_connection_cursor(cursor)}" if cursor is not None else None
        items, last = self._page(company_id, "CONNECTION#", limit=limit, start=start)
        next_cursor = connection_cursor(last.removeprefix("CONNECTION#")) if last else None
        connections = [ConnectionRecord.model_validate_json(i["data"]["S"]) for i in items]
        return Page([c for c in connections if not c.deleted], next_cursor)

    def list_ledger(
        self, customer_id: str, company_id: str, *, limit: int, cursor: str | None
    ) -> Page[LedgerRecord] | None:
        if self.company_owner(company_id) != customer_id:
            return None
        start = None
        if cursor is not None:
            at, seq, entry_id = parse_event_cursor(cursor)
            start = f"LEDGER#{at}#{seq:03d}#{entry_id}"
        items, last = self._page(company_id, "LEDGER#", limit=limit, start=start)
        next_cursor = event_cursor(*_ledger_position(last)) if last else None
        return Page([LedgerRecord.model_validate_json(i["data"]["S"]) for i in items], next_cursor)

    def _page(self, company_id: str, prefix: str, *, limit: int, start: str | None) -> tuple[list[Item], str | None]:
        """One page of a company's items whose sort key starts with `prefix`, in sort-key order, after the sort key
        `start` (which need not exist); and the sort key after which the next page starts, if there may be one."""
        pk = company_pk(company_id)
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
            "ExpressionAttributeValues": {":pk": _s(pk), ":prefix": _s(prefix)},
            "ConsistentRead": True,
            "Limit": limit,
        }
        if start is not None:
            # Within the key condition (DynamoDB refuses a start key outside the query's bounds).
            request["ExclusiveStartKey"] = {"PK": _s(pk), "SK": _s(start)}
        response = self._call(self._db.query, **request)
        items = response.get("Items", [])
        last = response.get("LastEvaluatedKey")
        # DynamoDB may return a LastEvaluatedKey on the very last item; a final empty page is harmless.
        return items, last["SK"]["S"] if last else None

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
                final.append(
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": _quota_key(tombstone.customer_id),
                            "UpdateExpression": "ADD companies :minusOne",
                            "ConditionExpression": "companies > :zero",
                            "ExpressionAttributeValues": {":minusOne": _n(-1), ":zero": _n(0)},
                        }
                    }
                )
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

    def get_company(
        self, customer_id: str, company_id: str, *, connections_limit: int | None = None
    ) -> CompanyView | None:
        view = (
            self.get_company_by_id(company_id)
            if connections_limit is None
            else self._company_head(company_id, connections_limit)
        )
        # Another customer's company is indistinguishable from a missing one.
        if view is None or view.company.customer_id != customer_id:
            return None
        return view

    def _company_head(self, company_id: str, connections_limit: int) -> CompanyView | None:
        """The company and its first connections in one Query (COMPANY sorts before CONNECTION#)."""
        response = self._call(
            self._db.query,
            TableName=self._table,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :co)",
            ExpressionAttributeValues={":pk": _s(company_pk(company_id)), ":co": _s("CO")},
            ConsistentRead=True,
            Limit=connections_limit + 1,
        )
        items = response.get("Items", [])
        if not items or items[0]["SK"]["S"] != "COMPANY":
            return None
        company = CompanyRecord.model_validate_json(items[0]["data"]["S"])
        connections = [ConnectionRecord.model_validate_json(i["data"]["S"]) for i in items[1:]]
        last = response.get("LastEvaluatedKey")
        more = last is not None and last["SK"]["S"].startswith("CONNECTION#")
        return CompanyView(company, connections, connection_cursor(connections[-1].connection_id) if more else None)

    def get_company_by_id(self, company_id: str) -> CompanyView | None:
        items = self._query_all(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :co)",
            ExpressionAttributeValues={":pk": _s(company_pk(company_id)), ":co": _s("CO")},
            ConsistentRead=True,
        )
        company: CompanyRecord | None = None
        connections: list[ConnectionRecord] = []
        for item in items:
            if item["SK"]["S"] == "COMPANY":
                company = CompanyRecord.model_validate_json(item["data"]["S"])
            else:
                connections.append(ConnectionRecord.model_validate_json(item["data"]["S"]))
        return CompanyView(company, connections) if company is not None else None

    def park_webhook(self, parked: ParkedWebhook) -> None:
        item: Item = {
            "kind": _s("parked"),
            "webhookId": _s(parked.webhook_id),
            "eventType": _s(parked.event_type[:200]),
            "generatedDate": _s(parked.generated_at[:64]),
            "reason": _s(parked.reason[:500]),
        }
        if parked.company_id:
            # Under the company, so that erasing the company erases this too.
            item |= {"PK": _s(company_pk(parked.company_id)), "SK": _s(f"PARKED#{parked.webhook_id}")}
        else:
            item |= {
                "PK": _s(f"PARKED#{parked.webhook_id}"),
                "SK": _s("PARKED"),
                "expiresAt": _n(int(self._clock()) + self._webhook_ttl),
            }
        if parked.connection_id:
            item["connectionId"] = _s(parked.connection_id)
        self._transact(
            [
                {"Put": {"TableName": self._table, "Item": item}},
                self._remember_webhook(parked.webhook_id),
            ]
        )

    def list_companies(
        self, customer_id: str, *, limit: int, cursor: str | None, connections_limit: int | None = None
    ) -> Page[CompanyView]:
        pk = customer_pk(customer_id)
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI1,
            "KeyConditionExpression": "GSI1PK = :pk",
            "ExpressionAttributeValues": {":pk": _s(pk)},
            "ScanIndexForward": False,
            "Limit": _QUERY_PAGE_ITEMS,
        }
        if cursor is not None:
            created_at, company_id = parse_company_cursor(cursor)
            # The company item's keys, in the caller's partition: a position among their companies only.
            request["ExclusiveStartKey"] = {
                "PK": _s(company_pk(company_id)),
                "SK": _s("COMPANY"),
                "GSI1PK": _s(pk),
                "GSI1SK": _s(f"{created_at}#{company_id}#COMPANY"),
            }
        views: list[CompanyView] = []
        waiting: dict[str, list[ConnectionRecord]] = {}
        while True:
            response = self._call(self._db.query, **request)
            page_items = response.get("Items", [])
            for index, item in enumerate(page_items):
                if item["SK"]["S"] != "COMPANY":
                    connection = ConnectionRecord.model_validate_json(item["data"]["S"])
                    waiting.setdefault(item["PK"]["S"], []).append(connection)
                    continue
                # Newest first: a company's connections sort just before it (CONNECTION# > COMPANY).
                company = CompanyRecord.model_validate_json(item["data"]["S"])
                views.append(self._listed(company, waiting.pop(item["PK"]["S"], []), connections_limit))
                if len(views) == limit:
                    more = index + 1 < len(page_items) or "LastEvaluatedKey" in response
                    position = company_cursor(sortable(company.created_at), company.company_id)
                    return Page(views, position if more else None)
            if "LastEvaluatedKey" not in response:
                return Page(views, None)
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _listed(self, company: CompanyRecord, connections: list[ConnectionRecord], limit: int | None) -> CompanyView:
        """A listed company with its first `limit` connections in the order of its connections route, and that
        route's cursor for the rest: the same view as a company read (`_company_head`)."""
        connections.sort(key=lambda c: c.connection_id)  # the index returns them newest company first, reversed
        if limit is None or len(connections) <= limit:
            return CompanyView(company, connections)
        return CompanyView(company, connections[:limit], connection_cursor(connections[limit - 1].connection_id))

    # -- reconciliation ----------------------------------------------------------------------

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
        }

    def _connection_item(self, connection: ConnectionRecord) -> Item:
        company_id = connection.company_id
        return {
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


def _ledger_position(sort_key: str) -> tuple[str, int, str]:
    """(at, seq, entryId) of a ledger item's sort key `LEDGER#<at>#<seq>#<entryId>`."""
    at, seq, entry_id = sort_key.removeprefix("LEDGER#").split("#", 2)
    return at, int(seq), entry_id
