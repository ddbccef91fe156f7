"""Helpers for API-level tests: a customer's company, and Codat authorizing a connection."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from consent.domain.progress import settle
from consent.domain.resources import ConnectionStatus
from consent.domain.timeline import StatusEvent
from consent.domain.transitions import EventKind
from consent.services import Services
from consent.store import Change
from consent_dev.clock import DevClock
from consent_dev.codat_simulator import CodatSimulator
from consent_dev.lambda_runtime import LambdaContext, load_handler
from consent_dev.local_api import LocalApi
from consent_dev.template import functions

ALICE = "customer-alice"
BOB = "customer-bob"


@pytest.fixture
def run_lifecycle(services: Services) -> Callable[[], dict[str, Any]]:
    """The lifecycle function, as its schedule runs it, on the test's `services` (its report)."""
    lifecycle = next(f for f in functions() if f.logical_id == "LifecycleFunction")

    def invoke() -> dict[str, Any]:
        handler = load_handler(lifecycle.code_uri, lifecycle.handler)
        context = LambdaContext(lifecycle.logical_id, timeout_seconds=300)
        report: dict[str, Any] = handler({}, context, services=services)
        return report

    return invoke


@pytest.fixture
def dev_clock(simulator: CodatSimulator) -> DevClock:
    """Opt-in: `make dev`'s clock on this test's simulator. Give it to `Services(…, clock=dev_clock)`, and moving it
    (`dev_clock.advance(timedelta(days=14))`) moves the product's time and Codat's together, as `POST /_dev/clock`
    does; what the simulator has due by then (first reads, webhook retries) happens."""
    return DevClock.of(simulator)


@pytest.fixture
def new_company(api: LocalApi) -> Callable[..., dict[str, Any]]:
    def create(customer: str = ALICE, journey: str = "loan_application", **body: Any) -> dict[str, Any]:
        response = api.post(
            "/companies", customer=customer, json={"name": "Acme Bakery Ltd", "journey": journey, **body}
        )
        assert response.status == 201, response.text
        return response.body  # type: ignore[no-any-return]

    return create


@pytest.fixture
def authorize(simulator: CodatSimulator, services: Services) -> Callable[..., None]:
    """Codat reports a connection's new status (the customer authorized, or later deauthorized it) and our
    records follow, journeys included, as the webhook handler does (for Linked: connected and first read)."""

    def link(
        company_id: str,
        connection_id: str,
        status: ConnectionStatus = ConnectionStatus.LINKED,
        *,
        via: Services = services,
    ) -> None:
        simulator.set_connection_status(company_id, connection_id, status.value)
        view = via.store.get_company_by_id(company_id)
        assert view is not None
        record = next(c for c in view.connections if c.connection_id == connection_id)
        now = via.clock()
        kind = {
            ConnectionStatus.LINKED: EventKind.LINKED,
            ConnectionStatus.DEAUTHORIZED: EventKind.DEAUTHORIZED,
            ConnectionStatus.UNLINKED: EventKind.UNLINKED,
        }[status]
        changed = record.with_event(StatusEvent(at=now, id=str(uuid.uuid4()), kind=kind, actor="codat"))
        if status == ConnectionStatus.LINKED:
            read = StatusEvent(at=now, id=str(uuid.uuid4()), kind=EventKind.INITIAL_READ, actor="codat")
            changed = changed.with_event(read)
        connections = [changed if c is record else c for c in view.connections]
        settled = settle(via.catalog, view.company, connections, now=now)
        via.store.commit(
            Change(company=settled.company, updated=[changed], ledger=settled.milestones, retracted=settled.retracted)
        )

    return link
