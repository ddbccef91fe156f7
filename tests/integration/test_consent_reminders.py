"""Consent reminders: before a connection's consent lapses, `consent.connection.expiring` goes out at each lead time
(14, 7 and 1 days before `renewBy`), once per lead time and consent period, whatever retries or concurrent runs do;
a run that comes late sends the most urgent one only; a renewal starts the next period's reminders. The lifecycle
function runs as the schedule would, on a clock the test moves (with Codat's)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from consent.codat.client import CodatClient
from consent.services import Services
from consent.settings import Settings
from consent.store import Change
from consent.store.dynamodb import DynamoDBConsentStore
from consent_dev.clock import DevClock
from consent_dev.codat_webhooks import connection_event, signed
from consent_dev.lambda_runtime import LambdaContext, load_handler
from consent_dev.local_api import LocalApi
from consent_dev.streams import StreamPump
from consent_dev.subscriber import EventsQueue
from consent_dev.template import functions

pytestmark = pytest.mark.integration

ALICE = "customer-alice"
DAY = timedelta(days=1)
LIFECYCLE = next(f for f in functions() if f.logical_id == "LifecycleFunction")
SCHEDULED_EVENT = {
    "version": "0",
    "id": "0d8a4a43-52fc-4f0e-a5a3-0b0c2cfd4b7e",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-01-01T00:00:00Z",
    "region": "eu-west-2",
    "resources": ["arn:aws:events:eu-west-2:123456789012:rule/LifecycleSchedule"],
    "detail": {},
}


@pytest.fixture
def services(settings: Settings, store: DynamoDBConsentStore, codat: CodatClient, dev_clock: DevClock) -> Services:
    """The API's, the webhooks' and the lifecycle run's services, on a clock the test moves with Codat's."""
    return Services(settings, store=store, codat=codat, clock=dev_clock)


@pytest.fixture
def run(services: Services) -> Callable[..., dict[str, Any]]:
    def invoke(via: Services = services) -> dict[str, Any]:
        handler = load_handler(LIFECYCLE.code_uri, LIFECYCLE.handler)
        context = LambdaContext(LIFECYCLE.logical_id, timeout_seconds=120)
        report: dict[str, Any] = handler(SCHEDULED_EVENT, context, services=via)
        return report

    return invoke


class Customer:
    def __init__(self, api: LocalApi, clock: DevClock) -> None:
        self.api = api
        self.clock = clock
        self.sent = 0

    def company(self, journey: str = "onboarding") -> str:
        response = self.api.post("/companies", customer=ALICE, json={"name": "Acme", "journey": journey})
        assert response.status == 201, response.text
        return str(response.body["companyId"])

    def connect(self, company_id: str, platform_key: str = "qhnd") -> str:
        response = self.api.post(
            f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": platform_key}
        )
        assert response.status in (200, 201), response.text
        return str(response.body["connectionId"])

    def codat_says(self, company_id: str, connection_id: str, event_type: str, status: str) -> None:
        body = connection_event(
            event_type, company_id=company_id, connection_id=connection_id, status=status, generated=self.clock()
        )
        self.sent += 1
        raw, headers = signed(body, message_id=f"msg-remind-{company_id[:8]}-{self.sent}")
        response = self.api.post("/webhooks/codat", body=raw, headers=headers)
        assert response.status == 204, response.text

    def linked(self, company_id: str, platform_key: str = "qhnd") -> str:
        connection_id = self.connect(company_id, platform_key)
        self.codat_says(company_id, connection_id, "connection.connected", "Linked")
        return connection_id

    def connection(self, company_id: str, connection_id: str) -> dict[str, Any]:
        items = self.api.get(f"/companies/{company_id}/connections", customer=ALICE).body["items"]
        return dict(next(c for c in items if c["connectionId"] == connection_id))

    def reminders(self, company_id: str) -> list[dict[str, Any]]:
        entries = self.api.get(f"/companies/{company_id}/events", customer=ALICE, query={"limit": "100"}).body
        return [e for e in entries["items"] if e["type"] == "connection.expiring"]


@pytest.fixture
def customer(api: LocalApi, dev_clock: DevClock) -> Customer:
    return Customer(api, dev_clock)


def test_each_reminder_goes_once_at_its_lead_time_and_a_late_run_sends_the_most_urgent_only(
    customer: Customer, dev_clock: DevClock, run: Callable[..., dict[str, Any]], store: DynamoDBConsentStore
) -> None:
    company_id = customer.company()
    connection_id = customer.linked(company_id)
    renew_by = datetime.fromisoformat(customer.connection(company_id, connection_id)["renewBy"])
    assert renew_by - dev_clock() > 82 * DAY  # a bank connection: 90 days, to renew a week early

    # Not yet due: nothing
    dev_clock.advance(renew_by - dev_clock() - 14 * DAY - timedelta(minutes=1))
    run()
    assert customer.reminders(company_id) == []

    # 14 days before renewBy: the first reminder, once however often the run comes
    dev_clock.advance(timedelta(minutes=2))
    assert run()["sent"] >= 1
    run()
    [first] = customer.reminders(company_id)
    assert (first["reminderDays"], first["actor"], first["connectionId"]) == (14, "consent-clock", connection_id)
    assert datetime.fromisoformat(first["renewBy"]) == renew_by
    assert datetime.fromisoformat(first["consentExpiresAt"]) == renew_by + 7 * DAY

    # The runs stop for a week and more: the one that comes sends the most urgent reminder due (1 day), not the 7
    dev_clock.advance(13 * DAY + timedelta(hours=1))
    run()
    run()
    assert [e["reminderDays"] for e in customer.reminders(company_id)] == [14, 1]
    # Every lead time spent: the connection has left the lifecycle's index
    assert connection_id not in {d.connection_id for d in store.due_lifecycle(dev_clock() + 400 * DAY)}


def test_two_runs_racing_on_one_reminder_send_it_once(
    customer: Customer,
    dev_clock: DevClock,
    services: Services,
    settings: Settings,
    store: DynamoDBConsentStore,
    codat: CodatClient,
    run: Callable[..., dict[str, Any]],
) -> None:
    company_id = customer.company()
    connection_id = customer.linked(company_id)
    renew_by = datetime.fromisoformat(customer.connection(company_id, connection_id)["renewBy"])
    dev_clock.advance(renew_by - dev_clock() - 14 * DAY + timedelta(minutes=1))

    # Run A reads the company; before it writes, run B sends the reminder (forced: B runs inside A's read)
    racing = Services(
        settings, store=DynamoDBConsentStore(store._db, settings.table_name), codat=codat, clock=dev_clock
    )
    read = racing.store.get_company_by_id
    raced: list[dict[str, Any]] = []

    def read_then_let_b_write(company: str) -> Any:
        view = read(company)
        if company == company_id and not raced:
            raced.append(run(services))
        return view

    racing.store.get_company_by_id = read_then_let_b_write  # type: ignore[method-assign]
    report_a = run(racing)

    # B sent it; A's write met B's and, reading again, found nothing left to send
    assert raced[0]["sent"] >= 1
    assert [e["reminderDays"] for e in customer.reminders(company_id)] == [14]
    assert report_a["skipped"] == 0


def test_a_renewal_restarts_the_clock_and_the_next_period_has_its_own_reminders(
    customer: Customer,
    dev_clock: DevClock,
    run: Callable[..., dict[str, Any]],
    outbox: StreamPump,
    events_queue: EventsQueue,
) -> None:
    company_id = customer.company()
    connection_id = customer.linked(company_id)
    renew_by = datetime.fromisoformat(customer.connection(company_id, connection_id)["renewBy"])
    dev_clock.advance(renew_by - dev_clock() - 7 * DAY + timedelta(minutes=1))
    run()
    assert [e["reminderDays"] for e in customer.reminders(company_id)] == [7]

    # She renews through a fresh link for the same connection (it stays Linked); Codat authorizes it again
    response = customer.api.post(
        f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd", "consentVersion": "v2"}
    )
    assert response.status == 200, response.text
    assert response.body["connectionId"] == connection_id
    assert response.body["status"] == "Linked"
    assert response.body["linkUrl"]
    customer.codat_says(company_id, connection_id, "connection.reconnected", "Linked")

    renewed = datetime.fromisoformat(customer.connection(company_id, connection_id)["renewBy"])
    assert renewed - dev_clock() > 82 * DAY
    entries = customer.api.get(f"/companies/{company_id}/events", customer=ALICE, query={"limit": "100"}).body
    [renewal] = [e for e in entries["items"] if e["type"] == "connection.renewed"]
    assert datetime.fromisoformat(renewal["renewBy"]) == renewed

    # The new period's first reminder comes at its own time
    dev_clock.advance(renewed - dev_clock() - 14 * DAY + timedelta(minutes=1))
    run()
    reminders = customer.reminders(company_id)
    assert [(e["reminderDays"], datetime.fromisoformat(e["renewBy"])) for e in reminders] == [
        (7, renew_by),
        (14, renewed),
    ]

    # Subscribers hear of each, with the clock in the event
    outbox.drain()
    published = [m.event for m in events_queue.receive() if m.event["subject"] == company_id]
    kinds = [e["type"] for e in published]
    assert kinds.count("consent.connection.expiring") == 2
    assert kinds.count("consent.connection.renewed") == 1
    expiring = next(e for e in published if e["type"] == "consent.connection.expiring")
    assert expiring["data"]["reminderDays"] == 7
    assert expiring["data"]["renewBy"].endswith("Z")


def test_a_renewal_before_its_window_is_refused_and_an_unknown_clock_has_no_reminders(
    customer: Customer, dev_clock: DevClock, run: Callable[..., dict[str, Any]], store: DynamoDBConsentStore
) -> None:
    company_id = customer.company("loan_application")
    bank = customer.linked(company_id)
    # Accounting's clock is unknown by default: no renewBy, never a reminder
    books = customer.linked(company_id, "gbol")
    assert "renewBy" not in customer.connection(company_id, books)

    response = customer.api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"})
    assert response.status == 409
    assert response.body["code"] == "connection_already_linked"
    assert "renewal opens at" in response.body["detail"]

    # Runs stopped for months: consent has lapsed by the time one comes; too late to warn, nothing is sent
    dev_clock.advance(200 * DAY)
    report = run()
    assert customer.reminders(company_id) == []
    assert report["lapsed"] >= 1
    due_later = {d.connection_id for d in store.due_lifecycle(dev_clock() + 400 * DAY)}
    assert bank not in due_later
    # the accounting connection has no reminders, but stays in the lifecycle's index: it is kept alive (refreshes)
    assert books in due_later


def test_a_connection_written_before_the_lifecycle_joins_it_at_the_next_reconciliation(
    customer: Customer,
    dev_clock: DevClock,
    services: Services,
    store: DynamoDBConsentStore,
    simulator: Any,
    run: Callable[..., dict[str, Any]],
) -> None:
    # Given a Linked connection stored as a version before the lifecycle wrote it: no reminder or clock recorded
    company_id = customer.company()
    connection_id = customer.linked(company_id)
    simulator.set_connection_status(company_id, connection_id, "Linked")  # Codat agrees: nothing to heal
    view = store.get_company_by_id(company_id)
    assert view is not None
    [stored] = view.connections
    old = stored.model_copy(
        update={"remind_at": None, "refresh_at": None, "renew_by": None, "consent_expires_at": None}
    )
    store.commit(Change(updated=[old]))
    assert connection_id not in {d.connection_id for d in store.due_lifecycle(dev_clock() + 400 * DAY)}

    # When reconciliation passes over the company
    reconcile = next(f for f in functions() if f.logical_id == "ReconcileFunction")
    load_handler(reconcile.code_uri, reconcile.handler)({}, LambdaContext(reconcile.logical_id), services=services)

    # Then its clock is back, and its reminders come
    assert "renewBy" in customer.connection(company_id, connection_id)
    assert connection_id in {d.connection_id for d in store.due_lifecycle(dev_clock() + 400 * DAY)}
