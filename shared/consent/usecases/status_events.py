"""Recording what happened to a company's connections: status events applied, the company settled, and the
ledger entries that announce them, as one Change. The step Codat's webhooks and reconciliation share."""

from __future__ import annotations

from datetime import datetime, timedelta

from consent.domain import Actor, ConnectionStatus
from consent.journeys import JourneyCatalog
from consent.store import Change, CompanyView, ConnectionRecord, LedgerRecord
from consent.timeline import EventKind, StatusEvent, derive
from consent.usecases.ledger import entry
from consent.usecases.progress import settle

LATE = "arrived after a newer event about this connection: recorded, status unchanged"
# Codat reporting back a change one of ours made (a customer's request created, revoked or withdrew the
# connection; reconciliation recorded what it found): a confirmation, recorded, never announced again, and never
# "late" however Codat's clock stamped it. Each is placed in the ledger just after the entry it confirms.
CONFIRMATIONS = {
    EventKind.CREATED: "codat.connection.created",
    EventKind.UNLINKED: "codat.connection.unlinked",
    EventKind.DELETED: "codat.connection.deleted",
}
CONFIRMED_BY_CODAT = CONFIRMATIONS[EventKind.CREATED]
# How far after the confirmed entry a confirmation is placed: the ledger's resolution, so nothing fits between.
_JUST_AFTER = timedelta(microseconds=1)

# The ledger entry (and so the consent event) of each status event, whoever observed it.
LEDGER_TYPES = {
    EventKind.CREATED: "connection.created",
    EventKind.LINKED: "connection.linked",
    EventKind.FAILED: "connection.failed",
    EventKind.UNLINKED: "connection.unlinked",
    EventKind.DEAUTHORIZED: "connection.deauthorized",
    EventKind.DELETED: "connection.deleted",
}
_STATUS_OF = {
    EventKind.CREATED: ConnectionStatus.PENDING_AUTH,
    EventKind.LINKED: ConnectionStatus.LINKED,
    EventKind.UNLINKED: ConnectionStatus.UNLINKED,
    EventKind.DEAUTHORIZED: ConnectionStatus.DEAUTHORIZED,
}


def confirmed_by(connection: ConnectionRecord, event: StatusEvent) -> StatusEvent | None:
    """The event of ours that Codat's `event` reports back, or None when it reports something new.

    `connection.created` confirms our creation of the connection (a customer's request, or reconciliation's
    adoption); an unlink or a delete confirms ours when ours is the last thing that happened to the connection
    (a revoke, a withdrawal). An unlink after a newer authorization is not a confirmation: it is late."""
    if event.actor != Actor.CODAT or event.kind not in CONFIRMATIONS:
        return None
    if event.kind == EventKind.CREATED:
        return min(
            (e for e in connection.history if e.kind == EventKind.CREATED and e.actor != Actor.CODAT),
            key=lambda e: e.order,
            default=None,
        )
    latest = derive(e for e in connection.history if e.id != event.id).latest
    if latest is not None and latest.kind == event.kind and latest.actor != Actor.CODAT:
        return latest
    return None


def placed_after(event: StatusEvent, confirmed: StatusEvent) -> datetime:
    """Where a confirmation goes in the ledger: when Codat says it happened, but never before what it confirms
    (Codat stamps its own change before we record ours: it answered our request first)."""
    return max(event.at, confirmed.at + _JUST_AFTER)


def entry_id_of(event: StatusEvent) -> str:
    """The id of the ledger entry that records a status event about a connection: Codat's webhooks are recorded
    as `webhook:<webhook id>`, every other writer's events under their own id."""
    return f"webhook:{event.id}" if event.actor == Actor.CODAT else event.id


class ConnectionEvents:
    """Events about one company's connections, gathered, then settled into one all-or-nothing Change."""

    def __init__(self, view: CompanyView) -> None:
        self.view = view
        self._connections = {c.connection_id: c for c in view.connections}
        self._added: set[str] = set()
        self._touched: set[str] = set()
        self._ledger: list[LedgerRecord] = []

    @property
    def empty(self) -> bool:
        return not self._touched

    @property
    def ledger(self) -> list[LedgerRecord]:
        return list(self._ledger)

    def connection(self, connection_id: str) -> ConnectionRecord | None:
        return self._connections.get(connection_id)

    def adopt(self, record: ConnectionRecord) -> None:
        """A connection made outside our API (Codat's hosted link, the Link SDK): the company's, from now on."""
        self._connections[record.connection_id] = record
        self._added.add(record.connection_id)
        self._touched.add(record.connection_id)

    def update(self, record: ConnectionRecord) -> None:
        """A field of a connection changed without a status event (e.g. its last sync)."""
        self._connections[record.connection_id] = record
        self._touched.add(record.connection_id)

    def record(
        self, connection_id: str, event: StatusEvent, *, ledger_type: str, entry_id: str, detail: str | None = None
    ) -> ConnectionRecord:
        """Apply `event` to the connection and write its ledger entry. Codat's report of a change of ours is
        recorded as its confirmation (`CONFIRMATIONS`), placed after what it confirms. Any other event older than
        what the connection already reflects is kept, marked late: it changes no status and announces nothing
        (order safety)."""
        current = self._connections[connection_id]
        if any(known.id == event.id for known in current.history):
            return current  # already recorded: neither the connection nor the ledger changes
        confirmed = confirmed_by(current, event)
        at = event.at
        if confirmed is not None:
            ledger_type, at, late = CONFIRMATIONS[event.kind], placed_after(event, confirmed), False
        else:
            late = not current.is_newest(event) or current.deleted
        changed = current.with_event(event)
        self._connections[connection_id] = changed
        self._touched.add(connection_id)
        status = None
        if event.kind != EventKind.INITIAL_READ:
            status = event.status or _STATUS_OF.get(event.kind) or changed.status
        self._ledger.append(
            entry(
                self.view.company,
                ledger_type,
                actor=event.actor,
                at=at,
                entry_id=entry_id,
                connection_id=connection_id,
                platform_key=changed.platform_key,
                source_type=changed.source_type,
                status=status,
                detail=LATE if late else (detail if detail is not None else event.reason),
                late=late,
            )
        )
        return changed

    def change(self, catalog: JourneyCatalog, *, now: datetime, webhook_id: str | None = None) -> Change:
        """The company's journeys replayed over its connections' events, with the milestones that appear (or
        disappear), the connections and the ledger entries: one transaction for the store."""
        connections = list(self._connections.values())
        settled = settle(catalog, self.view.company, connections, now=now)
        touched = [self._connections[cid] for cid in self._connections if cid in self._touched]
        return Change(
            company=settled.company,
            added=[c for c in touched if c.connection_id in self._added],
            updated=[c for c in touched if c.connection_id not in self._added],
            ledger=[*self._ledger, *settled.milestones],
            retracted=settled.retracted,
            webhook_id=webhook_id,
        )
