"""The connection step: hand the customer Codat's link for an integration, reusing what exists;
the Link SDK's access token; the "Manage connections" list and the consent ledger."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from consent.codat.models import CodatConnection
from consent.domain.errors import Conflict, FieldError, NotFound
from consent.domain.journeys import JourneyAccess
from consent.domain.ledger import connection_entry, entry_id_of, placed_after
from consent.domain.progress import settle
from consent.domain.records import CompanyView, ConnectionRecord, LedgerKey, LedgerRecord, SdkSession
from consent.domain.requests import (
    AccessToken,
    ConnectionList,
    CreateConnectionRequest,
    LedgerPage,
    OpenSdkSessionRequest,
    SdkSessionOpened,
)
from consent.domain.resources import Actor, Connection, ConnectionStatus, LedgerEntryType, SourceType
from consent.domain.retention import one_off_done
from consent.domain.timeline import StatusEvent
from consent.domain.transitions import EventKind
from consent.services import Services
from consent.store import Change, ConflictError
from consent.usecases import quotas

_CONNECTION_NAMESPACE = uuid.UUID("1b0f3f55-41c2-4c8e-8a43-0f4b0b6f7a10")
_ATTEMPTS = 3
# The longest a session in Codat's components counts (see open_sdk_session): long enough to connect or manage
# connections, short enough that a later unlink by someone else is not read as the customer's.
SDK_SESSION = timedelta(hours=1)


@dataclass(frozen=True)
class ConnectionAnswer:
    connection: Connection
    created: bool


def create_connection(
    services: Services, customer_id: str, company_id: str, request: CreateConnectionRequest
) -> ConnectionAnswer:
    """Codat's link for `platformKey`: a company's not-Linked connection to it is reused with a fresh
    link (also how a customer re-authorizes), otherwise one Codat connection is created and recorded."""
    view = _company(services, customer_id, company_id)
    _check_not_purged(view)
    quotas.spend_codat_allowance(services, customer_id)  # after the owner check: a 404 never reaches Codat
    integration = services.integrations.get(request.platform_key)
    if integration is None:
        # Well formed, refused by the current state (the integrations the bank has enabled in Codat): 409, as
        # every refusal that another state would lift; 422 is for requests that can never succeed as written.
        raise Conflict(
            "integration_not_enabled",
            "No enabled integration has this platformKey. See GET /integrations.",
            fields=[FieldError("platformKey", "Not an enabled integration.")],
        )
    _check_allowed(services, view, integration.source_type)
    same_platform = [c for c in view.connections if c.platform_key == request.platform_key and not c.deleted]
    renewing = _check_not_linked(services, view, same_platform, integration.source_type)
    if renewing is not None:
        return _reuse(services, view, renewing, request, renewal=True)
    if same_platform:
        return _reuse(services, view, max(same_platform, key=lambda c: c.created_at), request)

    # Concurrent or retried requests for the same platform see the same count, so they send Codat the same
    # key and get the same connection back; the first to record it wins and the others reuse it.
    company = view.company
    key = str(
        uuid.uuid5(_CONNECTION_NAMESPACE, f"{company.company_id}:{request.platform_key}:{company.connection_requests}")
    )
    codat_connection = services.codat.create_connection(
        company.company_id, platform_key=request.platform_key, idempotency_key=key
    )
    for _ in range(_ATTEMPTS):
        known = next((c for c in view.connections if c.connection_id == codat_connection.id), None)
        if known is not None and _asked_for_by_customer(known):
            # An earlier attempt of this request (same key, so Codat gave the same connection) recorded it.
            link = codat_connection.link_url if known.status != ConnectionStatus.LINKED else None
            return ConnectionAnswer(known.to_resource(link_url=link), created=False)
        try:
            if known is None:
                record = _record_new(
                    services,
                    view=view,
                    codat_connection=codat_connection,
                    request=request,
                    source_type=integration.source_type,
                    platform_name=integration.name,
                )
            else:
                # Codat's webhook (or reconciliation) recorded the connection before we could: it is still the one
                # this request created, and the customer's consent is still ours to record.
                record = _record_consent(services, view=view, adopted=known, request=request)
        except ConflictError:
            # A webhook or another request changed the company meanwhile: record it on what is there now,
            # without asking Codat for another connection.
            view = _company(services, customer_id, company_id)
            continue
        return ConnectionAnswer(record.to_resource(link_url=codat_connection.link_url), created=True)
    raise ConflictError("company kept changing")


def _company(services: Services, customer_id: str, company_id: str) -> CompanyView:
    view = services.store.get_company(customer_id, company_id)
    if view is None:
        raise NotFound("company")
    return view


def _check_not_purged(view: CompanyView) -> None:
    if view.company.codat_erased_at is not None:
        raise Conflict(
            "company_data_purged",
            "This company's data was deleted when its retention ran out, and the company with it in Codat: "
            "create a new company to connect again.",
        )


def _check_allowed(services: Services, view: CompanyView, source_type: SourceType) -> None:
    allowed: list[SourceType] = []
    for progress in view.company.journeys:
        journey = services.catalog.get(progress.journey)
        if journey is not None:
            allowed.extend(t for t in journey.source_types if t not in allowed)
    if source_type in allowed and all(
        journey.access == JourneyAccess.ONE_OFF and one_off_done(view.company, journey)
        for journey in (services.catalog.get(p.journey) for p in view.company.journeys)
        if journey is not None and journey.allows(source_type)
    ):
        # Every journey that wants this software was one-off, and has read what it needed: asking again would be
        # a consent the lifecycle ends at once.
        raise Conflict(
            "one_off_consent_used",
            "The one-off consent for this software was used: its journey has read what it needed. Start a journey "
            "that needs it again, or create a new company.",
        )
    if source_type not in allowed:
        names = ", ".join(sorted(t.value for t in allowed)) or "none"
        # The request is well formed; the company's journeys (its state) refuse it: a conflict, as for a second
        # accounting platform.
        raise Conflict(
            "source_type_not_in_journeys",
            f"This company's journeys allow these source types: {names}.",
            fields=[FieldError("platformKey", f"{source_type.value.capitalize()} integrations are not part of them.")],
        )


def _check_not_linked(
    services: Services, view: CompanyView, same_platform: list[ConnectionRecord], source_type: SourceType
) -> ConnectionRecord | None:
    """Refuse a second connection where one is Linked; but a Linked connection whose renewal is open (its first
    reminder is due: `consent.domain.consent_clock`) comes back to be renewed (None: nothing to renew)."""
    linked = next((c for c in same_platform if c.status == ConnectionStatus.LINKED), None)
    if linked is not None:
        policy = services.catalog.consent_clock
        if linked.renew_by is not None and services.clock() >= policy.renewal_opens(linked.renew_by):
            return linked
        opens = (
            f" Its renewal opens at {policy.renewal_opens(linked.renew_by):%Y-%m-%dT%H:%M:%SZ}."
            if (linked.renew_by is not None)
            else ""
        )
        raise Conflict(
            "connection_already_linked",
            f"Connection {linked.connection_id} to this platform is already Linked.{opens}",
        )
    if source_type == SourceType.ACCOUNTING:
        other = next(
            (
                c
                for c in view.connections
                if c.source_type == SourceType.ACCOUNTING and c.status == ConnectionStatus.LINKED
            ),
            None,
        )
        if other is not None:
            raise Conflict(
                "accounting_already_linked",
                f"Codat allows one accounting connection per company; {other.platform_name} is Linked. "
                "Revoke it first.",
            )
    return None


def _reuse(
    services: Services,
    view: CompanyView,
    connection: ConnectionRecord,
    request: CreateConnectionRequest,
    *,
    renewal: bool = False,
) -> ConnectionAnswer:
    """A fresh link for a connection that exists: to authorize it again (not Linked), or to renew the consent of a
    Linked one (`renewal`: Codat re-authorizes the same connection, and reports it authorized again)."""
    # Link URLs can be one-time and expire after a day: always ask Codat for the current one.
    codat_connection = services.codat.get_connection(view.company.company_id, connection.connection_id)
    link = codat_connection.link_url if renewal or codat_connection.status != ConnectionStatus.LINKED else None
    for _ in range(_ATTEMPTS):
        if _asked_for_by_customer(connection):
            _record_link_requested(services, view, connection, request, renewal=renewal)
            return ConnectionAnswer(connection.to_resource(link_url=link), created=False)
        try:
            # Known only from Codat (its webhook or reconciliation: an earlier attempt of this request whose write
            # failed, or a connection made outside our API): her asking for it is her consent, recorded once.
            recorded = _record_consent(services, view=view, adopted=connection, request=request)
        except ConflictError:
            view = _company(services, view.company.customer_id, view.company.company_id)
            current = next((c for c in view.connections if c.connection_id == connection.connection_id), None)
            if current is None:
                break
            connection = current
            continue
        return ConnectionAnswer(recorded.to_resource(link_url=link), created=False)
    raise ConflictError("company kept changing")


RENEWAL = "renewal of consent (the connection stays Linked meanwhile)"


def _record_link_requested(
    services: Services,
    view: CompanyView,
    connection: ConnectionRecord,
    request: CreateConnectionRequest,
    *,
    renewal: bool = False,
) -> None:
    services.store.commit(
        Change(
            ledger=[
                connection_entry(
                    view.company,
                    LedgerEntryType.CONNECTION_LINK_REQUESTED,
                    actor=Actor.customer(view.company.customer_id),
                    at=services.clock(),
                    connection=connection,
                    consent_version=request.consent_version,
                    status=connection.status,
                    detail=RENEWAL if renewal else None,
                )
            ]
        )
    )


def _record_new(
    services: Services,
    *,
    view: CompanyView,
    codat_connection: CodatConnection,
    request: CreateConnectionRequest,
    source_type: SourceType,
    platform_name: str,
) -> ConnectionRecord:
    company = view.company
    now = services.clock()
    actor = Actor.customer(company.customer_id)
    entry_id = str(uuid.uuid4())
    record = ConnectionRecord(
        connection_id=codat_connection.id,
        company_id=company.company_id,
        customer_id=company.customer_id,
        company_created_at=company.created_at,
        platform_key=request.platform_key,
        platform_name=codat_connection.platform_name or platform_name,
        source_type=source_type,
        status=ConnectionStatus.PENDING_AUTH,
        created_at=codat_connection.created,
    )
    created = StatusEvent(at=now, id=entry_id, kind=EventKind.CREATED, actor=actor)
    return _commit_creation(services, view, record, created, request, new=True)


def _asked_for_by_customer(connection: ConnectionRecord) -> bool:
    """Whether a customer's request recorded creating the connection (its consent entry is in the ledger)."""
    return any(e.kind == EventKind.CREATED and Actor.is_customer(e.actor) for e in connection.history)


def _record_consent(
    services: Services, *, view: CompanyView, adopted: ConnectionRecord, request: CreateConnectionRequest
) -> ConnectionRecord:
    """The customer's consent for a connection this request created, which Codat's `connection.created` webhook
    (or reconciliation) recorded first as made outside our API: the customer's `connection.created` entry, and
    the earlier entry moved just after it as Codat's confirmation of it (`codat.connection.created`). The ledger
    ends as it does in the other order."""
    company = view.company
    actor = Actor.customer(company.customer_id)
    customer_event = StatusEvent(at=services.clock(), id=str(uuid.uuid4()), kind=EventKind.CREATED, actor=actor)
    adoptions = [
        event
        for event in adopted.history
        if event.kind == EventKind.CREATED and event.actor in (Actor.CODAT, Actor.RECONCILE)
    ]
    confirmations = {
        event.id: connection_entry(
            company,
            LedgerEntryType.CODAT_CONNECTION_CREATED,
            actor=event.actor,
            at=placed_after(event, customer_event),
            entry_id=entry_id_of(event),
            connection=adopted,
            status=ConnectionStatus.PENDING_AUTH,
        )
        for event in adoptions
    }
    # Rewritten in place where Codat's clock already puts it after her entry; else moved there.
    stays = [confirmations[e.id] for e in adoptions if confirmations[e.id].at == e.at]
    moved = [e for e in adoptions if confirmations[e.id].at != e.at]
    return _commit_creation(
        services,
        view,
        adopted,
        customer_event,
        request,
        new=False,
        corrected=stays,
        moved=[(LedgerKey(e.at, 0, entry_id_of(e)), confirmations[e.id]) for e in moved],
    )


def _commit_creation(
    services: Services,
    view: CompanyView,
    connection: ConnectionRecord,
    created: StatusEvent,
    request: CreateConnectionRequest,
    *,
    new: bool,
    corrected: Sequence[LedgerRecord] = (),
    moved: Sequence[tuple[LedgerKey, LedgerRecord]] = (),
) -> ConnectionRecord:
    """The customer's creation of `connection` (her consent, with its version): the event on the connection, the
    company's request count and journeys, her `connection.created` entry and the milestones, in one transaction."""
    record = connection.with_event(created).clocked(services.catalog.consent_clock)
    company = view.company
    counted = company.model_copy(update={"connection_requests": company.connection_requests + 1})
    others = [c for c in view.connections if c.connection_id != record.connection_id]
    settled = settle(services.catalog, counted, [*others, record], now=created.at)
    ledger = [
        connection_entry(
            settled.company,
            LedgerEntryType.CONNECTION_CREATED,
            actor=created.actor,
            at=created.at,
            entry_id=created.id,
            connection=record,
            consent_version=request.consent_version,
            status=record.status,
        ),
        *settled.milestones,
        *(entry for _, entry in moved),
    ]
    services.store.commit(
        Change(
            company=settled.company,
            added=[record] if new else [],
            updated=[] if new else [record],
            ledger=ledger,
            retracted=[*settled.retracted, *(key for key, _ in moved)],
            replaced=corrected,
        )
    )
    return record


def access_token(services: Services, customer_id: str, company_id: str) -> AccessToken:
    """Codat's company access token for the Link SDK / Connections SDK: passed through, never kept."""
    if services.store.company_owner(company_id) != customer_id:
        raise NotFound("company")
    quotas.spend_codat_allowance(services, customer_id)
    token = services.codat.get_access_token(company_id)
    return AccessToken(access_token=token.access_token, expires_in=token.expires_in)


def open_sdk_session(
    services: Services, customer_id: str, company_id: str, request: OpenSdkSessionRequest
) -> SdkSessionOpened:
    """The customer opens one of Codat's components in the bank's page (Option 1): Codat's company access token for
    it, and her session recorded on the company, so that what Codat then reports is read as hers: a connection made
    in Codat's Link is adopted with her as actor and this consent version; a disconnect in CodatConnections is her
    revocation. The session lasts as long as the token, at most `SDK_SESSION`; opening it again renews it."""
    view = _company(services, customer_id, company_id)
    _check_not_purged(view)
    quotas.spend_codat_allowance(services, customer_id)  # after the owner check: a 404 never reaches Codat
    token = services.codat.get_access_token(company_id)
    now = services.clock()
    session = SdkSession(
        component=request.component,
        opened_at=now,
        until=now + min(SDK_SESSION, timedelta(seconds=token.expires_in)),
        consent_version=request.consent_version,
    )
    for _ in range(_ATTEMPTS):
        company = view.company
        opened = company.model_copy(update={"sdk_sessions": {**company.sdk_sessions, request.component: session}})
        try:
            services.store.commit(Change(company=opened))
            break
        except ConflictError:
            view = _company(services, customer_id, company_id)
    else:
        raise ConflictError("company kept changing")
    return SdkSessionOpened(
        component=request.component,
        access_token=token.access_token,
        expires_in=token.expires_in,
        expires_at=session.until,
    )


def list_connections(
    services: Services, customer_id: str, company_id: str, *, limit: int, cursor: str | None
) -> ConnectionList:
    page = services.store.list_connections(customer_id, company_id, limit=limit, cursor=cursor)
    if page is None:
        raise NotFound("company")
    return ConnectionList(items=[c.to_resource() for c in page.items], next_cursor=page.next_cursor)


def list_events(services: Services, customer_id: str, company_id: str, *, limit: int, cursor: str | None) -> LedgerPage:
    page = services.store.list_ledger(customer_id, company_id, limit=limit, cursor=cursor)
    if page is None:
        raise NotFound("company")
    return LedgerPage(items=[e.to_entry() for e in page.items], next_cursor=page.next_cursor)
