"""The store port in memory (`FakeStore`), for the bench: it times a handler's own work, everything a request costs
but its network calls. It keeps the DynamoDB store's guarantees, which tests/integration/test_store_contract.py holds
both stores to, so that what the bench times is what the product does. Not thread-safe (the bench is
single-threaded)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from consent.domain.records import CompanyRecord, CompanyView, ConnectionRecord, LedgerKey, LedgerRecord
from consent.store import (
    Change,
    ConflictError,
    ConsentStore,
    CursorError,
    IdempotencyClaim,
    IdempotencyOutcome,
    LifecycleDue,
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


@dataclass
class _Key:
    fingerprint: str
    token: str
    state: str = "IN_PROGRESS"  # IN_PROGRESS | RELEASED | COMPLETED | ERASED
    status: int | None = None
    body: str | None = None
    reached_codat: bool = False


@dataclass
class _Company:
    record: CompanyRecord
    connections: dict[str, ConnectionRecord] = field(default_factory=dict)
    ledger: list[LedgerRecord] = field(default_factory=list)
    # The Idempotency-Key of the request that created it: spent for good when the company is erased.
    created_with: tuple[str, str] | None = None


class FakeStore(ConsentStore):
    """The store port in memory, with the DynamoDB store's guarantees (no time-outs: a claimed key's lease never
    runs out, and nothing expires)."""

    def __init__(self) -> None:
        self._companies: dict[str, _Company] = {}
        self._keys: dict[tuple[str, str], _Key] = {}
        self._webhooks: set[str] = set()
        self.parked: list[ParkedWebhook] = []
        self._reconcile_cursor: str | None = None
        self._spent: dict[tuple[str, str], int] = {}
        self._keep_alive: dict[str, int] = {}

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
        if known.state == "ERASED":
            return IdempotencyClaim(IdempotencyOutcome.ERASED)
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
        key = (idempotency.scope, idempotency.key) if idempotency is not None else None
        self._companies[company.company_id] = _Company(company, ledger=list(ledger), created_with=key)

    def customer_companies(self, customer_id: str) -> int:
        return sum(1 for c in self._companies.values() if c.record.customer_id == customer_id)

    def spend_codat_allowance(self, customer_id: str, now: datetime, *, per_minute: int, per_day: int) -> None:
        now = now.astimezone(UTC)
        minute, day = now.strftime("%Y-%m-%dT%H:%M"), now.strftime("%Y-%m-%d")
        if self._spent.get((customer_id, day), 0) >= per_day:
            into_day = now.hour * 3600 + now.minute * 60 + now.second
            raise QuotaExceeded("codat_requests_per_day", retry_after=max(1, 86_400 - into_day))
        if self._spent.get((customer_id, minute), 0) >= per_minute:
            raise QuotaExceeded("codat_requests_per_minute", retry_after=60 - now.second)
        for window in (day, minute):
            self._spent[(customer_id, window)] = self._spent.get((customer_id, window), 0) + 1

    def get_company(
        self, customer_id: str, company_id: str, *, connections_limit: int | None = None
    ) -> CompanyView | None:
        stored = self._companies.get(company_id)
        if stored is None or stored.record.customer_id != customer_id:
            return None
        return _view(stored, connections_limit)

    def get_company_by_id(self, company_id: str) -> CompanyView | None:
        stored = self._companies.get(company_id)
        return _view(stored) if stored else None

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
        views = [_view(c, connections_limit) for c in mine[: limit + 1]]
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
            keys = {_key(e) for e in stored.ledger}
            if any(_key(e) not in keys for e in change.replaced):
                raise ConflictError("no such ledger entry to replace")
            appended = [_key(e) for e in change.ledger]
            if len(set(appended)) < len(appended) or keys.intersection(appended):
                raise ConflictError("ledger entry exists")
            if change.company is not None:
                stored.record = change.company.model_copy(update={"version": change.company.version + 1})
            for connection in change.added:
                stored.connections[connection.connection_id] = connection.model_copy(update={"version": 1})
            for connection in change.updated:
                stored.connections[connection.connection_id] = connection.model_copy(
                    update={"version": connection.version + 1}
                )
            retracted = {_key(r) for r in change.retracted}
            stored.ledger = [e for e in stored.ledger if _key(e) not in retracted]
            replaced = {_key(e): e for e in change.replaced}
            stored.ledger = [replaced.get(_key(e), e) for e in stored.ledger]
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
        """All at once (nothing for `finish_erasure`); the tombstone is not kept, since nothing reads it back."""
        erased = self._companies.pop(company_id, None)
        if erased is not None and erased.created_with is not None:
            # Spent, whatever the body, with nothing left of the request (its answer named the company).
            self._keys[erased.created_with] = _Key(fingerprint="", token="", state="ERASED")

    # -- the consent lifecycle -------------------------------------------------------------------------

    def due_lifecycle(self, until: datetime) -> Iterator[LifecycleDue]:
        due = [
            LifecycleDue(c.lifecycle_at, c.company_id, c.connection_id)
            for stored in self._companies.values()
            for c in stored.connections.values()
            if c.lifecycle_at is not None and not c.deleted and c.lifecycle_at <= until
        ]
        due.extend(
            LifecycleDue(at, stored.record.company_id, "")
            for stored in self._companies.values()
            if (at := stored.record.lifecycle_at) is not None and at <= until
        )
        yield from sorted(due)

    def spend_keep_alive_request(self, day: str, limit: int) -> bool:
        if self._keep_alive.get(day, 0) >= limit:
            return False
        self._keep_alive[day] = self._keep_alive.get(day, 0) + 1
        return True

    # -- reconciliation --------------------------------------------------------------------------------

    def sweep_companies(self, cursor: str | None, *, limit: int) -> Page[str]:
        return _page(sorted(self._companies), limit, cursor)

    def sweep_cursor_after(self, company_id: str) -> str:
        return str(sorted(self._companies).index(company_id) + 1)

    def reconcile_cursor(self) -> str | None:
        return self._reconcile_cursor

    def save_reconcile_cursor(self, cursor: str | None) -> None:
        self._reconcile_cursor = cursor


def _view(stored: _Company, connections_limit: int | None = None) -> CompanyView:
    """The company with its connections in id order: the first `connections_limit`, and where the rest start."""
    connections = sorted(stored.connections.values(), key=lambda c: c.connection_id)
    if connections_limit is None or len(connections) <= connections_limit:
        return CompanyView(stored.record, connections)
    last = connections[connections_limit - 1].connection_id
    return CompanyView(stored.record, connections[:connections_limit], connection_cursor(last))


def _key(entry: LedgerRecord | LedgerKey) -> tuple[datetime, int, str]:
    return entry.at, entry.seq, entry.entry_id


def _company_of(change: Change) -> str | None:
    if change.company is not None:
        return change.company.company_id
    for connection in (*change.added, *change.updated):
        return connection.company_id
    for entry in (*change.ledger, *change.replaced):
        return entry.company_id
    return None


def _page(items: Sequence[Any], limit: int, cursor: str | None) -> Page[Any]:
    try:
        start = int(cursor) if cursor is not None else 0
    except ValueError as error:
        raise CursorError("cursor is not one this store issued") from error
    end = start + limit
    return Page(list(items[start:end]), str(end) if end < len(items) else None)
