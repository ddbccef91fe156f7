"""In-memory fakes of the product's I/O ports (the store, Codat, the event publisher), so that the bench can
time a handler's own work: everything a request costs except its network calls."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from consent.codat.errors import CodatNotFound
from consent.codat.models import CodatCompany, CodatConnection, CodatIntegration, CompanyAccessToken
from consent.domain.records import CompanyRecord, CompanyView, ConnectionRecord, LedgerRecord
from consent.events import CloudEvent
from consent.publisher import EventPublisher, PublishFailure
from consent.store import (
    Change,
    ConflictError,
    ConsentStore,
    CursorError,
    IdempotencyClaim,
    IdempotencyOutcome,
    ParkedWebhook,
    QuotaExceeded,
)
from consent.store.port import IdempotencyResult, Page
from consent.store.positions import (
    company_cursor,
    connection_cursor,
    event_cursor,
    parse_company_cursor,
    parse_connection_cursor,
    parse_event_cursor,
    sortable,
)
from consent_dev.codat_simulator.catalogue import default_integrations

# -- the store ---------------------------------------------------------------------------------------------


@dataclass
class _Key:
    fingerprint: str
    token: str
    state: str = "IN_PROGRESS"  # IN_PROGRESS | RELEASED | COMPLETED
    status: int | None = None
    body: str | None = None
    reached_codat: bool = False


@dataclass
class _Company:
    record: CompanyRecord
    connections: dict[str, ConnectionRecord] = field(default_factory=dict)
    ledger: list[LedgerRecord] = field(default_factory=list)


class FakeStore(ConsentStore):
    """The store port in memory, with the DynamoDB store's guarantees: versioned writes, exactly-once
    webhook ids, owner checks, oldest-first pages. Not thread-safe (the bench is single-threaded)."""

    def __init__(self) -> None:
        self._companies: dict[str, _Company] = {}
        self._keys: dict[tuple[str, str], _Key] = {}
        self._webhooks: set[str] = set()
        self.parked: list[ParkedWebhook] = []
        self._reconcile_cursor: str | None = None
        self._spent: dict[tuple[str, str], int] = {}

    # -- idempotency ---------------------------------------------------------------------------------

    def claim_idempotency_key(self, scope: str, key: str, fingerprint: str) -> IdempotencyClaim:
        known = self._keys.get((scope, key))
        if known is None or (known.fingerprint == fingerprint and known.state == "RELEASED"):
            token = uuid.uuid4().hex
            reached = known.reached_codat if known else False
            self._keys[(scope, key)] = _Key(fingerprint, token, reached_codat=reached)
            return IdempotencyClaim(IdempotencyOutcome.ACQUIRED, token=token, previous_attempt_reached_codat=reached)
        return self.idempotency_key_state(scope, key, fingerprint)

    def idempotency_key_state(self, scope: str, key: str, fingerprint: str) -> IdempotencyClaim:
        known = self._keys.get((scope, key))
        if known is None:
            return IdempotencyClaim(IdempotencyOutcome.IN_PROGRESS)
        if known.fingerprint != fingerprint:
            return IdempotencyClaim(IdempotencyOutcome.MISMATCH)
        if known.state == "COMPLETED":
            return IdempotencyClaim(IdempotencyOutcome.REPLAY, status=known.status, body=known.body)
        return IdempotencyClaim(IdempotencyOutcome.IN_PROGRESS)

    def release_idempotency_key(self, scope: str, key: str, token: str, *, reached_codat: bool) -> None:
        known = self._keys.get((scope, key))
        if known is not None and known.token == token:
            known.state = "RELEASED"
            known.reached_codat = known.reached_codat or reached_codat

    # -- companies -----------------------------------------------------------------------------------

    def create_company(
        self,
        company: CompanyRecord,
        ledger: list[LedgerRecord],
        idempotency: IdempotencyResult | None,
        *,
        max_companies: int | None = None,
    ) -> None:
        if company.company_id in self._companies:
            raise ConflictError("company exists")
        if max_companies is not None and self.customer_companies(company.customer_id) >= max_companies:
            raise QuotaExceeded("companies")
        if idempotency is not None:
            known = self._keys.get((idempotency.scope, idempotency.key))
            if known is None or known.token != idempotency.token or known.state != "IN_PROGRESS":
                raise ConflictError("idempotency claim lost")
            known.state, known.status, known.body = "COMPLETED", idempotency.status, idempotency.body
        self._companies[company.company_id] = _Company(company, ledger=list(ledger))

    def customer_companies(self, customer_id: str) -> int:
        return sum(1 for c in self._companies.values() if c.record.customer_id == customer_id)

    def spend_codat_allowance(self, customer_id: str, now: datetime, *, per_minute: int, per_day: int) -> None:
        minute, day = now.strftime("%Y-%m-%dT%H:%M"), now.strftime("%Y-%m-%d")
        if self._spent.get((customer_id, day), 0) >= per_day:
            raise QuotaExceeded("codat_requests_per_day", retry_after=86_400 - now.hour * 3600 - now.minute * 60)
        if self._spent.get((customer_id, minute), 0) >= per_minute:
            raise QuotaExceeded("codat_requests_per_minute", retry_after=60 - now.second)
        for window in (day, minute):
            self._spent[(customer_id, window)] = self._spent.get((customer_id, window), 0) + 1

    def get_company(
        self, customer_id: str, company_id: str, *, connections_limit: int | None = None
    ) -> CompanyView | None:
        view = self.get_company_by_id(company_id)
        if view is None or view.company.customer_id != customer_id:
            return None
        if connections_limit is not None and len(view.connections) > connections_limit:
            ordered = sorted(view.connections, key=lambda c: c.connection_id)
            last = ordered[connections_limit - 1].connection_id
            return CompanyView(view.company, ordered[:connections_limit], connection_cursor(last))
        return view

    def get_company_by_id(self, company_id: str) -> CompanyView | None:
        stored = self._companies.get(company_id)
        return CompanyView(stored.record, list(stored.connections.values())) if stored else None

    def company_owner(self, company_id: str) -> str | None:
        stored = self._companies.get(company_id)
        return stored.record.customer_id if stored else None

    def list_companies(
        self, customer_id: str, *, limit: int, cursor: str | None, connections_limit: int | None = None
    ) -> Page[CompanyView]:
        mine = sorted(
            (c for c in self._companies.values() if c.record.customer_id == customer_id),
            key=lambda c: (c.record.created_at, c.record.company_id),
            reverse=True,
        )
        if cursor is not None:
            position = parse_company_cursor(cursor)
            mine = [c for c in mine if (sortable(c.record.created_at), c.record.company_id) < position]
        views = [CompanyView(c.record, list(c.connections.values())) for c in mine[: limit + 1]]
        last = views[limit - 1].company if len(views) > limit else None
        return Page(views[:limit], company_cursor(sortable(last.created_at), last.company_id) if last else None)

    def commit(self, change: Change) -> None:
        company_id = _company_of(change)
        stored = self._companies.get(company_id) if company_id else None
        if company_id is not None and stored is None:
            raise ConflictError("no such company")
        if change.webhook_id is not None and change.webhook_id in self._webhooks:
            raise ConflictError("webhook already applied")
        if stored is not None:
            if change.company is not None and change.company.version != stored.record.version:
                raise ConflictError("company changed")
            for connection in change.updated:
                known = stored.connections.get(connection.connection_id)
                if known is None or known.version != connection.version:
                    raise ConflictError("connection changed")
            if any(c.connection_id in stored.connections for c in change.added):
                raise ConflictError("connection exists")
            keys = {(e.at, e.seq, e.entry_id) for e in stored.ledger}
            if any((e.at, e.seq, e.entry_id) not in keys for e in change.replaced):
                raise ConflictError("no such ledger entry to replace")
            if change.company is not None:
                stored.record = change.company.model_copy(update={"version": change.company.version + 1})
            for connection in change.added:
                stored.connections[connection.connection_id] = connection.model_copy(update={"version": 1})
            for connection in change.updated:
                stored.connections[connection.connection_id] = connection.model_copy(
                    update={"version": connection.version + 1}
                )
            retracted = {(r.at, r.seq, r.entry_id) for r in change.retracted}
            stored.ledger = [e for e in stored.ledger if (e.at, e.seq, e.entry_id) not in retracted]
            replaced = {(e.at, e.seq, e.entry_id): e for e in change.replaced}
            stored.ledger = [replaced.get((e.at, e.seq, e.entry_id), e) for e in stored.ledger]
            stored.ledger.extend(change.ledger)
        if change.webhook_id is not None:
            self._webhooks.add(change.webhook_id)

    def webhook_seen(self, webhook_id: str) -> bool:
        return webhook_id in self._webhooks

    def park_webhook(self, parked: ParkedWebhook) -> None:
        if parked.webhook_id in self._webhooks:
            raise ConflictError("webhook already applied")
        self._webhooks.add(parked.webhook_id)
        self.parked.append(parked)

    def list_connections(
        self, customer_id: str, company_id: str, *, limit: int, cursor: str | None
    ) -> Page[ConnectionRecord] | None:
        if self.company_owner(company_id) != customer_id:
            return None
        connections = sorted(self._companies[company_id].connections.values(), key=lambda c: c.connection_id)
        if cursor is not None:
            after = parse_connection_cursor(cursor)
            connections = [c for c in connections if c.connection_id > after]
        more = len(connections) > limit
        page = connections[:limit]
        return Page([c for c in page if not c.deleted], connection_cursor(page[-1].connection_id) if more else None)

    def list_ledger(
        self, customer_id: str, company_id: str, *, limit: int, cursor: str | None
    ) -> Page[LedgerRecord] | None:
        if self.company_owner(company_id) != customer_id:
            return None
        ledger = sorted(self._companies[company_id].ledger, key=lambda e: (sortable(e.at), e.seq, e.entry_id))
        if cursor is not None:
            after = parse_event_cursor(cursor)
            ledger = [e for e in ledger if (sortable(e.at), e.seq, e.entry_id) > after]
        more = len(ledger) > limit
        page = ledger[:limit]
        return Page(page, event_cursor(sortable(page[-1].at), page[-1].seq, page[-1].entry_id) if more else None)

    def erase_company(self, company_id: str, tombstone: LedgerRecord) -> None:
        self._companies.pop(company_id, None)

    # -- reconciliation --------------------------------------------------------------------------------

    def sweep_companies(self, cursor: str | None, *, limit: int) -> Page[str]:
        return _page(sorted(self._companies), limit, cursor)

    def sweep_cursor_after(self, company_id: str) -> str:
        return str(sorted(self._companies).index(company_id) + 1)

    def reconcile_cursor(self) -> str | None:
        return self._reconcile_cursor

    def save_reconcile_cursor(self, cursor: str | None) -> None:
        self._reconcile_cursor = cursor


def _company_of(change: Change) -> str | None:
    if change.company is not None:
        return change.company.company_id
    for connection in (*change.added, *change.updated):
        return connection.company_id
    for entry in change.ledger:
        return entry.company_id
    return None


def _page(items: Sequence[Any], limit: int, cursor: str | None) -> Page[Any]:
    try:
        start = int(cursor) if cursor is not None else 0
    except ValueError as error:
        raise CursorError("cursor is not one this store issued") from error
    end = start + limit
    return Page(list(items[start:end]), str(end) if end < len(items) else None)


# -- Codat -------------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeCodat:
    """Codat's API as the product's `CodatClient` presents it, in memory. It also plays the customer's side
    that `consent_dev.budget.World` needs (`integrations`, `set_connection_status`), like the simulator."""

    def __init__(self) -> None:
        self.integrations = default_integrations()
        self._companies: dict[str, CodatCompany] = {}
        self._connections: dict[tuple[str, str], CodatConnection] = {}
        self._by_key: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self.calls = 0

    def _id(self) -> str:
        return str(uuid.UUID(int=next(self._ids)))

    def create_company(
        self, *, name: str, description: str | None, tags: Mapping[str, str], idempotency_key: str
    ) -> CodatCompany:
        self.calls += 1
        if idempotency_key not in self._by_key:
            company = CodatCompany(id=self._id(), name=name, description=description, tags=dict(tags))
            self._companies[company.id] = company
            self._by_key[idempotency_key] = company
        found: CodatCompany = self._by_key[idempotency_key]
        return found

    def find_companies_by_tags(self, tags: Mapping[str, str]) -> list[CodatCompany]:
        self.calls += 1
        return [c for c in self._companies.values() if all(c.tags.get(k) == v for k, v in tags.items())]

    def get_company(self, company_id: str) -> CodatCompany:
        self.calls += 1
        return self._company(company_id)

    def delete_company(self, company_id: str) -> None:
        self.calls += 1
        self._companies.pop(self._company(company_id).id)

    def get_access_token(self, company_id: str) -> CompanyAccessToken:
        self.calls += 1
        self._company(company_id)
        return CompanyAccessToken(access_token=uuid.uuid4().hex, expires_in=3600)

    def create_connection(self, company_id: str, *, platform_key: str, idempotency_key: str) -> CodatConnection:
        self.calls += 1
        if idempotency_key not in self._by_key:
            integration = self.integrations[platform_key]
            connection = CodatConnection(
                id=self._id(),
                integration_key=platform_key,
                source_type=integration.source_type,
                platform_name=integration.name,
                link_url=f"https://link.example.test/{company_id}",
                status="PendingAuth",
                created=datetime.now(UTC),
            )
            self._connections[(self._company(company_id).id, connection.id)] = connection
            self._by_key[idempotency_key] = connection
        found: CodatConnection = self._by_key[idempotency_key]
        return found

    def get_connection(self, company_id: str, connection_id: str) -> CodatConnection:
        self.calls += 1
        return self._connection(company_id, connection_id)

    def list_connections(self, company_id: str) -> list[CodatConnection]:
        self.calls += 1
        return [c for (owner, _), c in self._connections.items() if owner == company_id]

    def unlink_connection(
        self, company_id: str, connection_id: str, *, idempotency_key: str | None = None
    ) -> CodatConnection:
        self.calls += 1
        return self.set_connection_status(company_id, connection_id, "Unlinked")

    def list_integrations(self, source_type: str | None = None) -> list[CodatIntegration]:
        self.calls += 1
        return [
            CodatIntegration(key=i.key, name=i.name, logo_url="", enabled=i.enabled, source_type=i.source_type)
            for i in self.integrations.values()
            if source_type is None or i.source_type == source_type
        ]

    def set_connection_status(self, company_id: str, connection_id: str, status: str) -> CodatConnection:
        """What the customer does on Codat's link page (or in their accounting software)."""
        changed = self._connection(company_id, connection_id).model_copy(update={"status": status})
        self._connections[(company_id, connection_id)] = changed
        return changed

    def _company(self, company_id: str) -> CodatCompany:
        if company_id not in self._companies:
            raise CodatNotFound(f"no company {company_id}", status=404)
        return self._companies[company_id]

    def _connection(self, company_id: str, connection_id: str) -> CodatConnection:
        if (company_id, connection_id) not in self._connections:
            raise CodatNotFound(f"no connection {connection_id}", status=404)
        return self._connections[(company_id, connection_id)]


# -- events out --------------------------------------------------------------------------------------------


class FakePublisher(EventPublisher):
    """Takes every event; keeps only the count."""

    def __init__(self) -> None:
        self.published = 0

    def publish(self, events: Sequence[CloudEvent]) -> list[PublishFailure]:
        self.published += len(events)
        return []
