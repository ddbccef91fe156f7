"""Recording what happened to a company's connections: status events applied, the company settled, and the
ledger entries that announce them, as one Change. The step Codat's webhooks and reconciliation share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from consent.domain.journeys import JourneyCatalog
from consent.domain.ledger import LATE, confirmed_by, entry, placed_after
from consent.domain.progress import settle
from consent.domain.records import CompanyView, ConnectionRecord, LedgerRecord
from consent.domain.resources import Actor, LedgerEntryType, SdkComponent
from consent.domain.timeline import StatusEvent
from consent.domain.transitions import TRANSITIONS, EventKind
from consent.store import Change

IN_LINK = "made in Codat's Link SDK in the bank's page"


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

    def consent_given_in_link(self, connection_id: str, at: datetime) -> bool:
        """Record the customer's consent for a connection Codat made at `at`, if her session in Codat's Link (in the
        bank's page) was open then: as her request through our API would have been, with the consent version her app
        sent when it opened Link. Whether it was."""
        company = self.view.company
        link = company.sdk_session(SdkComponent.LINK, at)
        if link is None:
            return False
        consent = StatusEvent(
            at=at, id=f"sdk:{connection_id}", kind=EventKind.CREATED, actor=Actor.customer(company.customer_id)
        )
        self.record(
            connection_id,
            consent,
            ledger_type=LedgerEntryType.CONNECTION_CREATED,
            entry_id=consent.id,
            detail=IN_LINK,
            consent_version=link.consent_version,
        )
        return True

    def update(self, record: ConnectionRecord) -> None:
        """A field of a connection changed without a status event (e.g. its last sync)."""
        self._connections[record.connection_id] = record
        self._touched.add(record.connection_id)

    def record(
        self,
        connection_id: str,
        event: StatusEvent,
        *,
        ledger_type: LedgerEntryType,
        entry_id: str,
        detail: str | None = None,
        on_behalf_of: str | None = None,
        consent_version: str | None = None,
        **fields: Any,
    ) -> ConnectionRecord:
        """Apply `event` to the connection and write its ledger entry (its actor: `on_behalf_of`, when the one who
        reported it is not the one who did it, as for the customer's disconnect in Codat's component).

        Codat's report of a change of ours is recorded as its confirmation (`consent.domain.ledger.confirmed_by`),
        placed after what it confirms. Any other event older than what the connection already reflects is kept,
        marked late: it changes no status and announces nothing (order safety)."""
        current = self._connections[connection_id]
        if any(known.id == event.id for known in current.history):
            return current  # already recorded: neither the connection nor the ledger changes
        confirmed = confirmed_by(current, event)
        at = event.at
        confirmation = TRANSITIONS[event.kind].confirmation
        if confirmed is not None and confirmation is not None:
            ledger_type, at, late = confirmation, placed_after(event, confirmed), False
        else:
            late = not current.is_newest(event) or current.deleted
        changed = current.with_event(event)
        self._connections[connection_id] = changed
        self._touched.add(connection_id)
        status = None
        if event.kind != EventKind.INITIAL_READ:
            status = event.status or TRANSITIONS[event.kind].status or changed.status
        self._ledger.append(
            entry(
                self.view.company,
                ledger_type,
                actor=on_behalf_of or event.actor,
                at=at,
                entry_id=entry_id,
                consent_version=consent_version,
                connection_id=connection_id,
                platform_key=changed.platform_key,
                source_type=changed.source_type,
                status=status,
                detail=LATE if late else (detail if detail is not None else event.reason),
                late=late,
                **fields,
            )
        )
        return changed

    def change(self, catalog: JourneyCatalog, *, now: datetime, webhook_id: str | None = None) -> Change:
        """The company's journeys replayed over its connections' events, with the milestones that appear (or
        disappear), the connections and the ledger entries: one transaction for the store."""
        connections = list(self._connections.values())
        settled = settle(catalog, self.view.company, connections, now=now)
        clock = catalog.consent_clock
        touched = [self._connections[cid].clocked(clock) for cid in self._connections if cid in self._touched]
        return Change(
            company=settled.company,
            added=[c for c in touched if c.connection_id in self._added],
            updated=[c for c in touched if c.connection_id not in self._added],
            ledger=[*self._ledger, *settled.milestones],
            retracted=settled.retracted,
            webhook_id=webhook_id,
        )
