"""Taking consent back: revoke one connection (unlink in Codat, data kept) or erase the whole company."""

from __future__ import annotations

import contextlib
import uuid
from datetime import timedelta

from consent.codat.errors import CodatNotFound, CodatRejected
from consent.domain.errors import NotFound
from consent.domain.ledger import connection_entry, entry, entry_id_of, placed_after
from consent.domain.progress import settle
from consent.domain.records import CompanyView, ConnectionRecord, LedgerKey
from consent.domain.resources import Actor, Connection, ConnectionStatus, LedgerEntryType
from consent.domain.timeline import StatusEvent, derive
from consent.domain.transitions import KIND_SETTING, TRANSITIONS, EventKind
from consent.services import Services
from consent.store import Change, ConflictError

_ATTEMPTS = 3
_UNLINK_NAMESPACE = uuid.UUID("3c9a1f0e-7b2d-4e8a-9f61-5d4c2b1a0e97")
_REVOCABLE = frozenset({ConnectionStatus.LINKED, ConnectionStatus.PENDING_AUTH})
_AFTER = timedelta(milliseconds=1)
_WITHDRAWN = "revoked before it was authorized: deleted in Codat, its link no longer works"


def revoke_connection(services: Services, customer_id: str, company_id: str, connection_id: str) -> Connection:
    """Unlink the connection in Codat and record it. Idempotent: a connection that is Unlinked or
    Deauthorized — here or, as Codat reports, there — is answered as it is, and nothing is written or sent twice.

    A PendingAuth one is asked of Codat too: the customer may have just authorized it, its webhook still on
    its way, and revoking must then unlink it rather than leave it Linked."""
    view, connection = _find(services, customer_id, company_id, connection_id)
    if not _revocable(connection):
        return connection.to_resource()
    detail = None
    try:
        unlinked = services.codat.unlink_connection(company_id, connection_id, idempotency_key=_unlink_key(connection))
        codat_status = ConnectionStatus.from_codat(unlinked.status)
        kind = KIND_SETTING[codat_status or ConnectionStatus.UNLINKED]
        ledger_type, actor = LedgerEntryType.CONSENT_REVOKED, Actor.customer(customer_id)
    except (CodatRejected, CodatNotFound):
        # Codat unlinks only Linked connections: find out what it has instead (a missed webhook).
        codat_status = ConnectionStatus.from_codat(services.codat.get_connection(company_id, connection_id).status)
        if codat_status is None or codat_status == ConnectionStatus.LINKED:
            raise
        if codat_status == ConnectionStatus.PENDING_AUTH:
            # Never authorized: its link would still work for a day. Deleting it in Codat kills the link.
            with contextlib.suppress(CodatNotFound):  # deleted meanwhile (an earlier attempt of this revoke)
                services.codat.delete_connection(company_id, connection_id)
            kind, ledger_type, actor = EventKind.DELETED, LedgerEntryType.CONSENT_WITHDRAWN, Actor.customer(customer_id)
            detail = _WITHDRAWN
        else:
            # Unlinked or Deauthorized outside our API: recorded in the words a webhook would have used.
            kind = KIND_SETTING[codat_status]
            ledger_type, actor = TRANSITIONS[kind].entry, Actor.CODAT

    known = {event.id for event in connection.history}
    for _ in range(_ATTEMPTS):
        # Codat's webhook about the unlink (or delete) we just made may have been recorded meanwhile (it can
        # arrive before Codat's answer to us): it is Codat's confirmation of her revoke, still hers to record.
        reported = _reported_meanwhile(connection, known, kind) if Actor.is_customer(actor) else None
        if not _revocable(connection) and reported is None:
            return connection.to_resource()  # a webhook recorded something else meanwhile
        try:
            return _record(
                services,
                view=view,
                connection=connection,
                kind=kind,
                ledger_type=ledger_type,
                actor=actor,
                detail=detail,
                reported=reported,
            )
        except ConflictError:
            view, connection = _find(services, customer_id, company_id, connection_id)
    raise ConflictError("connection kept changing")


def _revocable(connection: ConnectionRecord) -> bool:
    return connection.status in _REVOCABLE and not connection.deleted


def _reported_meanwhile(connection: ConnectionRecord, known: set[str], kind: EventKind) -> StatusEvent | None:
    """Codat's report of the unlink (or delete) of the connection, recorded since the revoke read it (so the one
    the revoke asked for), if that is the last thing that happened to it."""
    latest = derive(connection.history).latest
    if latest is None or latest.id in known or latest.kind != kind or latest.actor != Actor.CODAT:
        return None
    if TRANSITIONS[kind].confirmation is None:
        return None  # not a change Codat confirms (an unlink answered Linked): recorded as Codat reported it
    return latest


def _unlink_key(connection: ConnectionRecord) -> str:
    """Codat's Idempotency-Key for unlinking the connection as we know it. A retry after a lost answer (or a
    failed write of ours) sends the same key, and Codat replays that it unlinked it: the ledger says the
    customer revoked it, not that Codat was found Unlinked. Anything new about the connection, another key."""
    latest = derive(connection.history).latest
    seen = latest.id if latest is not None else connection.created_at.isoformat()
    return str(uuid.uuid5(_UNLINK_NAMESPACE, f"{connection.company_id}:{connection.connection_id}:{seen}"))


def _find(
    services: Services, customer_id: str, company_id: str, connection_id: str
) -> tuple[CompanyView, ConnectionRecord]:
    view = services.store.get_company(customer_id, company_id)
    if view is None:
        raise NotFound("connection")
    connection = next((c for c in view.connections if c.connection_id == connection_id), None)
    if connection is None:
        raise NotFound("connection")
    return view, connection


def _record(
    services: Services,
    *,
    view: CompanyView,
    connection: ConnectionRecord,
    kind: EventKind,
    ledger_type: LedgerEntryType,
    actor: str,
    detail: str | None = None,
    reported: StatusEvent | None = None,
) -> Connection:
    """The customer's revoke (or withdrawal) as an event on the connection, its ledger entry and the journeys'
    milestones, in one transaction. `reported`: Codat's webhook about this very unlink, recorded first; its entry
    moves after hers, as the confirmation it is."""
    now = services.clock()
    entry_id = str(uuid.uuid4())
    # Codat unlinked it after every event we had seen of it, whatever its clock said: the revoke sorts after
    # them (a connected webhook with a generatedDate a little ahead of our clock must not undo it).
    latest = max((e.at for e in connection.history), default=now)
    at = max(now, latest + _AFTER)
    ours = StatusEvent(at=at, id=entry_id, kind=kind, actor=actor)
    changed = connection.with_event(ours)
    connections = [changed if c.connection_id == connection.connection_id else c for c in view.connections]
    settled = settle(services.catalog, view.company, connections, now=now)
    ledger = [
        connection_entry(
            settled.company,
            ledger_type,
            actor=actor,
            at=now,
            entry_id=entry_id,
            connection=connection,
            status=changed.status,
            detail=detail,
        ),
        *settled.milestones,
    ]
    retracted = list(settled.retracted)
    confirmation = TRANSITIONS[reported.kind].confirmation if reported is not None else None
    if reported is not None and confirmation is not None:
        # Always moved: hers is recorded after every event of the connection, Codat's among them.
        retracted.append(LedgerKey(reported.at, 0, entry_id_of(reported)))
        ledger.append(
            connection_entry(
                settled.company,
                confirmation,
                actor=reported.actor,
                at=placed_after(reported, ours),
                entry_id=entry_id_of(reported),
                connection=connection,
                status=changed.status,
            )
        )
    changed = changed.clocked(services.catalog.consent_clock)
    services.store.commit(Change(company=settled.company, updated=[changed], ledger=ledger, retracted=retracted))
    return changed.to_resource()


def erase_company(services: Services, customer_id: str, company_id: str) -> None:
    """Delete the company in Codat and every item of ours about it but one tombstone ledger entry.
    A failure half-way is safe to retry: Codat's 404 counts as done, and our deletes resume."""
    view = services.store.get_company(customer_id, company_id)
    if view is None:
        if services.store.finish_erasure(customer_id, company_id):
            return  # erased already (the company is gone for every reader); what an interruption left is gone now
        raise NotFound("company")
    with contextlib.suppress(CodatNotFound):  # deleted by an earlier attempt, or in Codat's portal
        services.codat.delete_company(company_id)
    # The tombstone names no company, description, reference or token: only that it was erased, by whom.
    tombstone = entry(
        view.company, LedgerEntryType.COMPANY_ERASED, actor=Actor.customer(customer_id), at=services.clock()
    )
    services.store.erase_company(company_id, tombstone)
