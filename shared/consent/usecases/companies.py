"""The company step: create a customer's Codat company, start journeys, read companies back."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from aws_lambda_powertools.metrics import MetricUnit

from consent.codat.errors import CodatError
from consent.codat.models import CUSTOMER_TAG, REQUEST_TAG, CodatCompany
from consent.domain.errors import Conflict, FieldError, Invalid, NotFound, OverQuota
from consent.domain.journeys import JourneyDefinition, evaluate
from consent.domain.ledger import entry
from consent.domain.progress import settle
from consent.domain.records import CompanyRecord, CompanyView
from consent.domain.requests import CompanyList, CreateCompanyRequest
from consent.domain.resources import Actor, Company, JourneyProgress, JourneyStatus, LedgerEntryType
from consent.observability import logger, metrics
from consent.services import Services
from consent.store import Change, ConflictError, IdempotencyClaim, IdempotencyOutcome, QuotaExceeded, StoreUnavailable
from consent.store.port import IdempotencyResult
from consent.store.positions import company_cursor, sortable
from consent.usecases import quotas

_REQUEST_NAMESPACE = uuid.UUID("6f1c7c1e-2d4b-4a43-9b0e-5d0c6a7f4e21")
_UPDATE_ATTEMPTS = 3
# Connections a company read embeds: a page of its connections route, so the answer is bounded at any size.
EMBEDDED_CONNECTIONS = 100


@dataclass(frozen=True)
class Answer:
    """A route's answer as status and JSON body (kept verbatim for idempotent replays)."""

    status: int
    body: str
    replayed: bool = False


def _journey(services: Services, name: str) -> JourneyDefinition:
    journey = services.catalog.get(name)
    if journey is None:
        raise Invalid(
            [FieldError("journey", f"Unknown journey. Offered: {', '.join(services.catalog.names)}.")],
            "The journey does not exist.",
        )
    return journey


def _fingerprint(request: CreateCompanyRequest) -> str:
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


def create_company(
    services: Services, customer_id: str, request: CreateCompanyRequest, idempotency_key: str | None
) -> Answer:
    """Create the Codat company and our record of it; exactly once per idempotency key."""
    journey = _journey(services, request.journey)
    quotas.spend_codat_allowance(services, customer_id)
    token: str | None = None
    previous_attempt_reached_codat = False
    if idempotency_key is not None:
        claim = services.store.claim_idempotency_key(customer_id, idempotency_key, _fingerprint(request))
        if claim.outcome != IdempotencyOutcome.ACQUIRED:
            return _answer_for_taken_key(claim)
        token = claim.token
        previous_attempt_reached_codat = claim.previous_attempt_reached_codat
        request_ref = str(uuid.uuid5(_REQUEST_NAMESPACE, f"{customer_id}\x00{idempotency_key}"))
    else:
        request_ref = str(uuid.uuid4())

    reached_codat = previous_attempt_reached_codat
    if not previous_attempt_reached_codat:
        try:
            quotas.check_company_cap(services, customer_id)
        except OverQuota:
            if idempotency_key is not None and token is not None:
                services.store.release_idempotency_key(customer_id, idempotency_key, token, reached_codat=False)
            raise
    try:
        codat_company = None
        if previous_attempt_reached_codat:
            codat_company = _find_created(services, request_ref)
        reference = services.customer_ref(customer_id)
        if codat_company is None:
            reached_codat = True
            codat_company = services.codat.create_company(
                name=request.name,
                description=request.description,
                tags={CUSTOMER_TAG: reference, REQUEST_TAG: request_ref},
                idempotency_key=request_ref,
            )
        return _written(
            lambda: _record_company(
                services,
                customer_id=customer_id,
                request=request,
                journey=journey,
                codat_company=codat_company,
                customer_ref_keyed=codat_company.tags.get(CUSTOMER_TAG) == reference,
                idempotency_key=idempotency_key,
                token=token,
            )
        )
    except QuotaExceeded as refused:
        # Another request of the customer's took the last company slot between our check and our write: the
        # company Codat just made is not kept (deleted there), and the key is given back.
        deleted = _delete_unkept(services, codat_company.id if codat_company is not None else None)
        if idempotency_key is not None and token is not None:
            services.store.release_idempotency_key(customer_id, idempotency_key, token, reached_codat=not deleted)
        raise quotas.over_quota(refused) from None
    except ConflictError:
        if idempotency_key is None:
            raise
        if token is not None:
            # If the key is still ours, give it back (Codat made the company), so that a retry can claim it.
            services.store.release_idempotency_key(customer_id, idempotency_key, token, reached_codat=True)
        # Our claim lapsed and another request with the key took over (and perhaps finished): answer as it did.
        return _answer_for_taken_key(
            services.store.idempotency_key_state(customer_id, idempotency_key, _fingerprint(request))
        )
    except (CodatError, StoreUnavailable) as error:
        if idempotency_key is not None and token is not None:
            maybe = reached_codat and (not isinstance(error, CodatError) or error.maybe_applied)
            services.store.release_idempotency_key(customer_id, idempotency_key, token, reached_codat=maybe)
        raise


def _delete_unkept(services: Services, company_id: str | None) -> bool:
    """Delete a Codat company we will not record; whether it is gone (a failure is logged and counted: the
    company is tagged with the customer's reference, and no customer sees it)."""
    if company_id is None:
        return True
    try:
        services.codat.delete_company(company_id)
    except CodatError:
        metrics.add_metric(name="UnkeptCodatCompanies", unit=MetricUnit.Count, value=1)
        logger.warning("a Codat company over the customer's cap could not be deleted", extra={"company_id": company_id})
        return False
    return True


def _written(write: Callable[[], Answer]) -> Answer:
    """`write`, again after a conflict: another transaction on one of its items (a transaction conflict) passes.
    A key that another request took over, or the company it recorded already, does not: the last conflict is
    the caller's to answer."""
    for _ in range(_UPDATE_ATTEMPTS - 1):
        with contextlib.suppress(ConflictError):
            return write()
    return write()


def _answer_for_taken_key(claim: IdempotencyClaim) -> Answer:
    if claim.outcome == IdempotencyOutcome.REPLAY:
        assert claim.status is not None
        assert claim.body is not None
        return Answer(claim.status, claim.body, replayed=True)
    if claim.outcome == IdempotencyOutcome.MISMATCH:
        # 409, not 422: the request is well formed; the key's state (bound to another body) refuses it.
        raise Conflict("idempotency_key_reused", "This Idempotency-Key was used with another request body.")
    if claim.outcome == IdempotencyOutcome.ERASED:
        raise Conflict(
            "idempotency_key_reused",
            "This Idempotency-Key created a company that has since been erased. Use a new key.",
        )
    raise Conflict(
        "idempotency_request_in_progress",
        "A request with this Idempotency-Key is still being processed. Retry shortly.",
        retry_after=1,
    )


def _find_created(services: Services, request_ref: str) -> CodatCompany | None:
    found = services.codat.find_companies_by_tags({REQUEST_TAG: request_ref})
    return found[0] if found else None


def _record_company(
    services: Services,
    *,
    customer_id: str,
    request: CreateCompanyRequest,
    journey: JourneyDefinition,
    codat_company: CodatCompany,
    customer_ref_keyed: bool,
    idempotency_key: str | None,
    token: str | None,
) -> Answer:
    now = services.clock()
    progress = evaluate(journey, [], started_at=now, previous=None, now=now)
    record = CompanyRecord(
        company_id=codat_company.id,
        customer_id=customer_id,
        name=request.name,
        description=request.description,
        external_ref=request.external_ref,
        created_at=now,
        updated_at=now,
        journeys=[progress],
        # False for a company an earlier attempt created before the keyed reference existed (tagged with the id).
        customer_ref_keyed=customer_ref_keyed,
    )
    actor = Actor.customer(customer_id)
    ledger = [
        entry(record, LedgerEntryType.COMPANY_CREATED, actor=actor, at=now),
        entry(
            record,
            LedgerEntryType.JOURNEY_STARTED,
            actor=actor,
            at=now,
            journeys=[journey.name],
            journey=journey.name,
            seq=1,
        ),
    ]
    body = _company_view_body(record)
    idempotency = (
        IdempotencyResult(scope=customer_id, key=idempotency_key, token=token, status=201, body=body)
        if idempotency_key is not None and token is not None
        else None
    )
    services.store.create_company(
        record, ledger, idempotency, max_companies=services.settings.max_companies_per_customer
    )
    metrics.add_metric(name="CompaniesCreated", unit=MetricUnit.Count, value=1)
    return Answer(201, body)


def _company_view_body(record: CompanyRecord) -> str:
    return CompanyView(record, []).to_resource().to_json()


def start_journey(services: Services, customer_id: str, company_id: str, journey_name: str) -> Company:
    """Start another journey for the company; its linked connections count toward it at once."""
    journey = _journey(services, journey_name)
    for _ in range(_UPDATE_ATTEMPTS):
        view = services.store.get_company(customer_id, company_id)
        if view is None:
            raise NotFound("company")
        record = view.company
        if any(progress.journey == journey.name for progress in record.journeys):
            return view.to_resource(services.clock())
        now = services.clock()
        placeholder = JourneyProgress(journey=journey.name, status=JourneyStatus.PENDING, started_at=now)
        started = record.model_copy(update={"journeys": [*record.journeys, placeholder]})
        if journey.data is not None:
            # Its data, where stale, is read again (by the lifecycle run: Codat is not called on her request's path).
            started.data_wanted = {**record.data_wanted, journey.name: now}
        settled = settle(services.catalog, started, view.connections, now=now)
        actor = Actor.customer(customer_id)
        ledger = [
            entry(
                settled.company,
                LedgerEntryType.JOURNEY_STARTED,
                actor=actor,
                at=now,
                journeys=[journey.name],
                journey=journey.name,
            ),
            *settled.milestones,
        ]
        updated = settled.company
        try:
            services.store.commit(Change(company=updated, ledger=ledger, retracted=settled.retracted))
        except ConflictError:
            continue  # a webhook changed the company meanwhile: read again
        view.company = updated
        return view.to_resource(services.clock())
    raise ConflictError("company kept changing")


def get_company(services: Services, customer_id: str, company_id: str) -> Company:
    """The company as its customer sees it: one read, whatever its number of connections (the first
    EMBEDDED_CONNECTIONS of them; `connectionsNextCursor` pages on at its connections route)."""
    view = services.store.get_company(customer_id, company_id, connections_limit=EMBEDDED_CONNECTIONS)
    if view is None:
        raise NotFound("company")
    return view.to_resource(services.clock())


def list_companies(
    services: Services,
    customer_id: str,
    *,
    limit: int,
    cursor: str | None,
    expiring_before: datetime | None = None,
) -> CompanyList:
    """The caller's companies, newest first; with `expiring_before`, only those with a connection whose `renewBy`
    is before it (among the connections a company embeds). Such a page is read store page by store page until it
    is full or the companies end, and its cursor is the last company it looked at."""
    if expiring_before is None:
        page = services.store.list_companies(
            customer_id, limit=limit, cursor=cursor, connections_limit=EMBEDDED_CONNECTIONS
        )
        return CompanyList(
            items=[view.to_resource(services.clock()) for view in page.items], next_cursor=page.next_cursor
        )
    found: list[CompanyView] = []
    while True:
        page = services.store.list_companies(
            customer_id, limit=limit, cursor=cursor, connections_limit=EMBEDDED_CONNECTIONS
        )
        for view in page.items:
            if any(c.renew_by is not None and c.renew_by < expiring_before for c in view.connections):
                found.append(view)
                if len(found) == limit:
                    more = view is not page.items[-1] or page.next_cursor is not None
                    last = company_cursor(sortable(view.company.created_at), view.company.company_id)
                    return CompanyList(
                        items=[v.to_resource(services.clock()) for v in found], next_cursor=last if more else None
                    )
        if page.next_cursor is None:
            return CompanyList(items=[v.to_resource(services.clock()) for v in found])
        cursor = page.next_cursor
