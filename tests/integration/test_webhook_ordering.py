"""Order safety as a property: any permutation of a company's webhooks, with any duplicates, and with the customer's
own request recording the connection at any point among them (Codat sends its webhooks as soon as it acts, so they
may arrive before that request writes), ends in the same connection status, the same journey status, the same
ledger (the journey's milestones, its data becoming ready and stale, the consent renewed: each once), with the
customer's consent recorded once, and every consent event published."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from consent.domain.journeys import DEFAULT_JOURNEYS_FILE
from consent.domain.records import LedgerRecord
from consent.events import to_cloud_event
from consent.services import Services
from consent.settings import Settings
from consent_dev.codat_webhooks import connection_event, read_event, signed
from consent_dev.local_api import LocalApi
from consent_dev.streams import StreamPump
from consent_dev.subscriber import EventsQueue

pytestmark = pytest.mark.integration

ALICE = "customer-alice"
T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
CONSENT_VERSION = "terms-2026-11"


def events_for(company_id: str, connection_id: str) -> list[dict[str, Any]]:
    """One authorization lifecycle in event time: confirmed, linked, read, renewed (a re-consent while Linked),
    deauthorized, relinked (a new consent, not a renewal), read, unlinked."""
    ids = {"company_id": company_id, "connection_id": connection_id}

    def at(seconds: float) -> datetime:
        return T0 + timedelta(seconds=seconds)

    return [
        connection_event("connection.created", status="PendingAuth", generated=at(1), **ids),
        connection_event("connection.connected", status="Linked", generated=at(2), **ids),
        read_event(company_id=company_id, connection_ids=[connection_id], initial=True, generated=at(3)),
        connection_event("connection.disconnected", status="Deauthorized", generated=at(4), **ids),
        connection_event("connection.reconnected", status="Linked", generated=at(5), **ids),
        read_event(company_id=company_id, connection_ids=[connection_id], initial=True, generated=at(6)),
        read_event(company_id=company_id, connection_ids=[connection_id], initial=False, generated=at(7)),
        # the same instant as the reconnect: the webhook id breaks the tie, the same way every time
        connection_event("connection.disconnected", status="Unlinked", generated=at(5), **ids),
        # the customer renews her consent through a fresh link while still Linked: Codat authorizes it again
        connection_event("connection.reconnected", status="Linked", generated=at(3.5), **ids),
    ]


def is_read(event: dict[str, Any]) -> bool:
    return str(event["eventType"]).startswith("read.")


class Run:
    """One company taken through the events in a given delivery order, the customer's request recording the
    connection after the first `before_request` of them."""

    def __init__(self, api: LocalApi, store: Any, services: Services) -> None:
        self.api = api
        self.store = store
        self.services = services
        company = api.post("/companies", customer=ALICE, json={"name": "Acme", "journey": "onboarding"}).body
        self.company_id = company["companyId"]
        self.connection_id = ""
        self.events: list[dict[str, Any]] = []

    def deliver(self, order: list[int], *, before_request: int = 0) -> None:
        """The customer asks for the connection; Codat creates it and delivers the connection events among
        `order[:before_request]` before her request writes (forced: they are delivered inside the Codat call), then
        the rest. Reads wait for the write: a read about a connection nobody has recorded yet is parked (it names
        no platform to adopt the connection from), and Codat reads only once the customer has authorized on the
        link that this request's answer gives her."""
        codat = self.services.codat
        create = codat.create_connection

        def create_then_deliver(*args: Any, **kwargs: Any) -> Any:
            created = create(*args, **kwargs)
            self.connection_id = created.id
            self.events = events_for(self.company_id, created.id)
            self._send([i for i in order[:before_request] if not is_read(self.events[i])])
            return created

        codat.create_connection = create_then_deliver  # type: ignore[method-assign]
        try:
            response = self.api.post(
                f"/companies/{self.company_id}/connections",
                customer=ALICE,
                json={"platformKey": "qhnd", "consentVersion": CONSENT_VERSION},
            )
        finally:
            del codat.create_connection
        assert response.status == 201, response.text
        assert response.body["connectionId"] == self.connection_id
        early_reads = [i for i in order[:before_request] if is_read(self.events[i])]
        self._send(early_reads + order[before_request:])

    def _send(self, indices: list[int]) -> None:
        for index in indices:
            raw, headers = signed(self.events[index], message_id=f"msg-{self.company_id}-{index}")
            response = self.api.post("/webhooks/codat", body=raw, headers=headers)
            assert response.status == 204, response.text

    def ledger(self) -> list[LedgerRecord]:
        page = self.store.list_ledger(ALICE, self.company_id, limit=100, cursor=None)
        assert page.next_cursor is None
        return list(page.items)

    def outcome(self) -> dict[str, Any]:
        company = self.api.get(f"/companies/{self.company_id}", customer=ALICE).body
        [connection] = company["connections"]
        [journey] = company["journeys"]

        def normal(text: str) -> str:
            return text.replace(self.company_id, "<company>").replace(self.connection_id, "<connection>")

        return {
            "connection": (connection["status"], connection.get("lastSyncAt")),
            "journey": (journey["status"], journey.get("completedAt")),
            # the customer's consent: exactly one entry, with the version she agreed to
            "consent": [
                (e.type, e.consent_version)
                for e in self.ledger()
                if e.actor == f"customer:{ALICE}" and e.connection_id == self.connection_id
            ],
            "ledger": sorted(
                # entries of Codat's events and milestones have ids derived from the events; ours are random
                (e.type, normal(e.entry_id) if e.actor == "codat" or e.entry_id.startswith("journey:") else "")
                for e in self.ledger()
            ),
        }


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """Every example of the property below creates a company for the same customer: her quotas (tested in
    test_customer_quotas) must not be what a long run of examples meets. Its onboarding journey needs the data the
    reads bring (so its data readiness is part of the property)."""
    journeys = tmp_path / "journeys.toml"
    journeys.write_text(
        DEFAULT_JOURNEYS_FILE.read_text(encoding="utf-8")
        + '\n[journeys.onboarding.data]\ntypes = ["bankAccounts", "bankTransactions"]\nmax_age_days = 1\n',
        encoding="utf-8",
    )
    return settings.model_copy(
        update={
            "max_companies_per_customer": 10_000,
            "customer_codat_requests_per_minute": 100_000,
            "journeys_file": journeys,
        }
    )


@pytest.fixture
def reference(api: LocalApi, store: Any, services: Services) -> dict[str, Any]:
    run = Run(api, store, services)
    run.deliver(list(range(len(events_for("-", "-")))))
    return run.outcome()


@hypothesis.settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_order_and_any_duplicates_end_in_the_same_state(
    api: LocalApi,
    store: Any,
    services: Services,
    reference: dict[str, Any],
    outbox: StreamPump,
    events_queue: EventsQueue,
    data: st.DataObject,
) -> None:
    # Given a company and one authorization lifecycle of Codat events
    run = Run(api, store, services)
    indices = list(range(len(events_for("-", "-"))))
    order = data.draw(st.permutations(indices), label="order")
    repeats = data.draw(st.lists(st.sampled_from(indices), max_size=4), label="redelivered")
    for index in repeats:
        position = data.draw(st.integers(0, len(order)), label="at")
        order = [*order[:position], index, *order[position:]]
    before_request = data.draw(st.integers(0, len(order)), label="delivered before the request writes")

    # When the customer asks for the connection and Codat delivers them in that order, some twice, some before
    # her request has recorded the connection
    run.deliver(order, before_request=before_request)

    # Then the state is the one the in-order delivery reached
    assert run.outcome() == reference
    # and every consent event in the final ledger reached subscribers
    outbox.drain()
    published = {m.event["id"] for m in events_queue.receive() if m.event["subject"] == run.company_id}
    expected = {e.entry_id for e in run.ledger() if to_cloud_event(e, source="x") is not None}
    assert expected <= published


def test_the_reference_lifecycle_is_the_one_the_product_promises(reference: dict[str, Any]) -> None:
    # Sanity of the reference itself: at t5 the Unlinked event wins the tie (its webhook id sorts last), so
    # the connection ends Unlinked and the journey, complete once, needs action.
    assert reference["consent"] == [("connection.created", CONSENT_VERSION)]
    assert ("codat.connection.created", "webhook:msg-<company>-0") in reference["ledger"]
    assert reference["connection"][0] == "Unlinked"
    assert reference["journey"][0] == "action_required"
    # The re-consent while Linked is a renewal, announced once; the relink after the lapse is not one.
    assert [e for e in reference["ledger"] if e[0] == "connection.renewed"] == [
        ("connection.renewed", "connection:<connection>:renewed:1")
    ]
    milestones = [kind for kind, _ in reference["ledger"] if kind.startswith("journey.") and kind != "journey.started"]
    assert sorted(milestones) == [
        "journey.action_required",
        "journey.completed",
        "journey.data_ready",
        "journey.data_stale",
        "journey.linked",
    ]
    # Its data: ready with the first read (t3), stale when the connection lost access (t4); the reads after the
    # relink come from a connection unlinked at the same instant (t5), so they never count
    assert [e for e in reference["ledger"] if e[0].startswith("journey.data_")] == [
        ("journey.data_ready", "journey:onboarding:data_ready:1"),
        ("journey.data_stale", "journey:onboarding:data_stale:1"),
    ]
