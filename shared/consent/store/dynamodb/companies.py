"""Companies: created (with their ledger, their idempotency key's answer and the customer's count), read by id
with their connections, listed by customer through GSI1, their owner, and a company's connections and ledger
page by page."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from consent.domain.records import CompanyRecord, CompanyView, ConnectionRecord, LedgerRecord
from consent.store.dynamodb.idempotency import IdempotencyKeys
from consent.store.dynamodb.quotas import CustomerQuotas
from consent.store.dynamodb.table import GSI1, Item, _failed_condition, _s, company_pk, customer_pk
from consent.store.port import ConflictError, IdempotencyResult, Page, QuotaExceeded
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
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

_QUERY_PAGE_ITEMS = 250


class Companies(IdempotencyKeys, CustomerQuotas):
    """A company's partition (`COMPANY#<companyId>`) read and created, and GSI1 (a customer's companies)."""

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
        items.append(self._count_company(company.customer_id, max_companies))
        try:
            self._transact(items)
        except ConflictError as error:
            if _failed_condition(error, len(items) - 1):
                raise QuotaExceeded("companies") from None
            raise

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


def _ledger_position(sort_key: str) -> tuple[str, int, str]:
    """(at, seq, entryId) of a ledger item's sort key `LEDGER#<at>#<seq>#<entryId>`."""
    at, seq, entry_id = sort_key.removeprefix("LEDGER#").split("#", 2)
    return at, int(seq), entry_id
