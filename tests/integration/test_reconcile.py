"""Reconciliation heals what missed webhooks leave: Codat changes silently (the test simulator delivers no
webhooks), the scheduled function runs as Lambda would, and the state, the ledger and the consent events end
as the webhooks would have left them; a second run changes nothing; the budget and 429s stop a run cleanly."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from consent.codat.client import CodatClient
from consent.domain.resources import utc_now
from consent.services import Services
from consent.settings import Settings
from consent.store import Change
from consent.store.dynamodb import DynamoDBConsentStore
from consent.usecases.webhooks import HANDLED_EVENT_TYPES
from consent_dev.codat_simulator import CodatSimulator, Fault
from consent_dev.codat_webhooks import connection_event, signed
from consent_dev.lambda_runtime import LambdaContext, load_handler
from consent_dev.local_api import LocalApi
from consent_dev.streams import StreamPump
from consent_dev.subscriber import EventsQueue
from consent_dev.template import functions

pytestmark = pytest.mark.integration

ALICE = "customer-alice"
RECONCILE = next(f for f in functions() if f.logical_id == "ReconcileFunction")
# What EventBridge sends on a schedule; the function needs nothing from it.
SCHEDULED_EVENT = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2024-01-01T00:00:00Z",
    "region": "eu-west-2",
    "resources": ["arn:aws:events:eu-west-2:123456789012:rule/ReconcileSchedule"],
    "detail": {},
}


class TravellingClock:
    """Our clock, which a test moves forward together with the simulator's (Codat's) clock."""

    def __init__(self, simulator: CodatSimulator) -> None:
        self.offset = timedelta(0)
        self._simulator = simulator

    def __call__(self) -> datetime:
        return utc_now() + self.offset

    def travel(self, by: timedelta) -> None:
        self.offset += by
        self._simulator.clock.advance(by)


@pytest.fixture
def clocks(simulator: CodatSimulator) -> TravellingClock:
    # First reads complete only when a test says so: a second run must not meet one that happened meanwhile.
    simulator.initial_read_delay = 3600
    return TravellingClock(simulator)


@pytest.fixture
def make_services(
    settings: Settings, store: DynamoDBConsentStore, codat: CodatClient, clocks: TravellingClock
) -> Callable[..., Services]:
    return lambda **changes: Services(settings.model_copy(update=changes), store=store, codat=codat, clock=clocks)


@pytest.fixture
def services(make_services: Callable[..., Services]) -> Services:
    """The services of the API (conftest's `api`), of `authorize`, and of reconciliation: on the travelling clock."""
    return make_services()


@pytest.fixture
def run(services: Services) -> Callable[..., dict[str, Any]]:
    """Invokes the template's reconcile function as the schedule would."""

    def invoke(via: Services = services, *, timeout: float = 300.0) -> dict[str, Any]:
        handler = load_handler(RECONCILE.code_uri, RECONCILE.handler)
        return handler(SCHEDULED_EVENT, LambdaContext(RECONCILE.logical_id, timeout_seconds=timeout), services=via)

    return invoke


def new_company(api: LocalApi, journey: str = "onboarding") -> str:
    response = api.post("/companies", customer=ALICE, json={"name": "Acme Bakery Ltd", "journey": journey})
    assert response.status == 201, response.text
    return str(response.body["companyId"])


def new_connection(api: LocalApi, company_id: str, platform_key: str = "qhnd") -> str:
    response = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": platform_key})
    assert response.status in (200, 201), response.text
    return str(response.body["connectionId"])


def connections(api: LocalApi, company_id: str) -> dict[str, dict[str, Any]]:
    items = api.get(f"/companies/{company_id}/connections", customer=ALICE).body["items"]
    return {c["connectionId"]: c for c in items}


def journey(api: LocalApi, company_id: str) -> str:
    return str(api.get(f"/companies/{company_id}", customer=ALICE).body["journeys"][0]["status"])


def ledger(api: LocalApi, company_id: str) -> list[dict[str, Any]]:
    return list(api.get(f"/companies/{company_id}/events", customer=ALICE, query={"limit": "100"}).body["items"])


def drifted(
    api: LocalApi, simulator: CodatSimulator, authorize: Callable[..., None], count: int, status: str
) -> dict[str, str]:
    """`count` companies, each with a Linked connection that Codat then set to `status` without a webhook:
    company id → connection id."""
    companies = {}
    for _ in range(count):
        company_id = new_company(api)
        connection_id = new_connection(api, company_id)
        authorize(company_id, connection_id)
        simulator.set_connection_status(company_id, connection_id, status)
        companies[company_id] = connection_id
    return companies


def listed_companies(simulator: CodatSimulator, since: int = 0) -> list[str]:
    """The companies whose connections were listed in Codat, in order, from request number `since`."""
    return [
        call.path.split("/")[2]
        for call in simulator.calls()[since:]
        if call.operation == "GET /companies/{companyId}/connections"
    ]


def test_one_run_heals_every_drift_and_a_second_run_changes_nothing(
    api: LocalApi,
    simulator: CodatSimulator,
    clocks: TravellingClock,
    authorize: Callable[..., None],
    run: Callable[..., dict[str, Any]],
    outbox: StreamPump,
    events_queue: EventsQueue,
    table_items: Callable[[], list[dict[str, Any]]],
) -> None:
    # Given a connection left PendingAuth for a day and more
    stale = new_company(api)
    stale_connection = new_connection(api, stale)
    clocks.travel(timedelta(hours=25))
    # and, while Codat's webhooks went missing: a Linked connection deauthorized,
    deauthorized = new_company(api)
    deauthorized_connection = new_connection(api, deauthorized)
    authorize(deauthorized, deauthorized_connection)
    simulator.set_connection_status(deauthorized, deauthorized_connection, "Deauthorized")
    # a PendingAuth connection authorized,
    linked = new_company(api)
    linked_connection = new_connection(api, linked)
    simulator.set_connection_status(linked, linked_connection, "Linked")
    # a connection deleted in Codat,
    deleted = new_company(api)
    deleted_connection = new_connection(api, deleted)
    authorize(deleted, deleted_connection)
    simulator.state.delete_connection(simulator.connection(deleted, deleted_connection))
    # a whole company deleted in Codat,
    erased = new_company(api)
    erased_connection = new_connection(api, erased)
    authorize(erased, erased_connection)
    simulator.state.delete_company(erased)
    # a connection made outside our API (Codat's hosted link),
    adopting = new_company(api)
    adopted_connection = simulator.add_connection(adopting, "qhnd", status="Linked").id
    # and a company with nothing to heal
    quiet = new_company(api)
    quiet_connection = new_connection(api, quiet)
    outbox.drain()
    events_queue.receive()
    before = simulator.calls()

    # When reconciliation runs once
    report = run()

    # Then every connection is as Codat has it
    assert report["stopped"] == "pass_complete"
    assert report["companies_checked"] == 7
    assert connections(api, deauthorized)[deauthorized_connection]["status"] == "Deauthorized"
    assert connections(api, linked)[linked_connection]["status"] == "Linked"
    assert connections(api, deleted) == {}
    assert connections(api, erased) == {}
    [adopted] = connections(api, adopting).values()
    assert (adopted["connectionId"], adopted["status"], adopted["platformKey"]) == (
        adopted_connection,
        "Linked",
        "qhnd",
    )
    assert connections(api, stale) == {}
    assert connections(api, quiet)[quiet_connection]["status"] == "PendingAuth"
    # and the journeys follow
    assert journey(api, deauthorized) == "action_required"
    assert journey(api, linked) == "linked"
    assert journey(api, deleted) == "action_required"
    assert journey(api, erased) == "action_required"
    assert journey(api, adopting) == "linked"
    assert journey(api, stale) == "pending"
    # and the connection left PendingAuth is deleted in Codat, once, so the customer can start again cleanly
    deletes = [c for c in simulator.calls()[len(before) :] if c.method == "DELETE"]
    assert [c.path for c in deletes] == [f"/companies/{stale}/connections/{stale_connection}"]
    assert stale_connection not in simulator.companies[stale].connections
    # and the ledger says what reconciliation found, as the missed webhooks would have
    found = {
        company: [(e["type"], e.get("connectionId")) for e in ledger(api, company) if e["actor"] == "reconcile"]
        for company in (deauthorized, linked, deleted, erased, adopting, stale, quiet)
    }
    assert found == {
        deauthorized: [("connection.deauthorized", deauthorized_connection), ("journey.action_required", None)],
        linked: [("connection.linked", linked_connection), ("journey.linked", None)],
        deleted: [("connection.deleted", deleted_connection), ("journey.action_required", None)],
        erased: [("connection.deleted", erased_connection), ("journey.action_required", None)],
        adopting: [
            ("connection.created", adopted_connection),
            ("connection.linked", adopted_connection),
            ("journey.linked", None),
        ],
        stale: [("connection.expired", stale_connection)],
        quiet: [],
    }
    # and subscribers receive the consent events those webhooks would have produced
    outbox.drain()
    received = sorted((m.event["subject"], m.type, m.event["data"]["actor"]) for m in events_queue.receive())
    assert received == sorted(
        [
            (deauthorized, "consent.connection.deauthorized", "reconcile"),
            (deauthorized, "consent.journey.action_required", "reconcile"),
            (linked, "consent.connection.linked", "reconcile"),
            (linked, "consent.journey.linked", "reconcile"),
            (deleted, "consent.connection.deleted", "reconcile"),
            (deleted, "consent.journey.action_required", "reconcile"),
            (erased, "consent.connection.deleted", "reconcile"),
            (erased, "consent.journey.action_required", "reconcile"),
            (adopting, "consent.connection.created", "reconcile"),
            (adopting, "consent.connection.linked", "reconcile"),
            (adopting, "consent.journey.linked", "reconcile"),
            (stale, "consent.connection.deleted", "reconcile"),
        ]
    )

    # When it runs again, seeing the same things
    table = table_items()
    calls = len(simulator.calls())
    again = run()

    # Then nothing changes, and Codat is only read
    assert again["ledger_entries"] == 0
    assert again["stopped"] == "pass_complete"
    assert table_items() == table
    assert {c.method for c in simulator.calls()[calls:]} == {"GET"}
    outbox.drain()
    assert events_queue.receive() == []


def test_a_first_read_whose_webhook_never_came_completes_the_journey_on_a_later_run(
    api: LocalApi,
    simulator: CodatSimulator,
    clocks: TravellingClock,
    run: Callable[..., dict[str, Any]],
    outbox: StreamPump,
    events_queue: EventsQueue,
) -> None:
    # Given a connection authorized in Codat, found Linked by a first run
    company_id = new_company(api)
    connection_id = new_connection(api, company_id)
    simulator.set_connection_status(company_id, connection_id, "Linked")
    run()
    assert journey(api, company_id) == "linked"
    outbox.drain()
    events_queue.receive()

    # When Codat finishes the first read (its webhook lost) and reconciliation runs again
    clocks.travel(timedelta(minutes=15))
    simulator.state.complete_due_reads(everything=True)
    run()

    # Then the read is recorded, the journey is complete, and subscribers hear both
    assert journey(api, company_id) == "complete"
    last_sync = simulator.connection(company_id, connection_id).last_sync
    assert last_sync is not None
    assert connections(api, company_id)[connection_id]["lastSyncAt"][:19] == last_sync[:19]
    outbox.drain()
    assert [m.type for m in events_queue.receive()] == ["consent.sync.completed", "consent.journey.completed"]


def test_the_codat_budget_caps_each_run_and_the_next_run_resumes_where_it_stopped(
    api: LocalApi,
    simulator: CodatSimulator,
    make_services: Callable[..., Services],
    authorize: Callable[..., None],
    run: Callable[..., dict[str, Any]],
) -> None:
    # Given five companies whose Linked connections Codat deauthorized while webhooks went missing
    companies = drifted(api, simulator, authorize, 5, "Deauthorized")
    budgeted = make_services(reconcile_codat_budget=2)

    # When reconciliation runs with a budget of two Codat requests, three times
    reports, listed = [], []
    for _ in range(3):
        start = len(simulator.calls())
        reports.append(run(budgeted))
        listed.append(listed_companies(simulator, start))
        assert len(simulator.calls()) - start <= 2

    # Then each run checks two companies and the next one continues after them, until the pass is complete
    assert [r["stopped"] for r in reports] == ["budget_spent", "budget_spent", "pass_complete"]
    assert [len(companies_listed) for companies_listed in listed] == [2, 2, 1]
    assert sorted(c for companies_listed in listed for c in companies_listed) == sorted(companies)
    assert all(r["codat_requests"] <= 2 for r in reports)
    for company_id, connection_id in companies.items():
        assert connections(api, company_id)[connection_id]["status"] == "Deauthorized"
    # and the following run starts a new pass
    start = len(simulator.calls())
    run(budgeted)
    assert listed_companies(simulator, start) == listed[0]


def test_a_429_mid_run_stops_it_cleanly_and_the_next_run_resumes_at_that_company(
    api: LocalApi,
    simulator: CodatSimulator,
    authorize: Callable[..., None],
    run: Callable[..., dict[str, Any]],
) -> None:
    companies = drifted(api, simulator, authorize, 4, "Unlinked")
    # Given Codat rate limiting from the third request on, for longer than a run may wait
    simulator.inject(Fault(kind="status", status=429, retry_after=600, method="GET", skip=2, times=None))

    # When reconciliation runs
    first = run()

    # Then it stops after the two companies it could check, having healed them
    assert first["stopped"] == "rate_limited"
    done = listed_companies(simulator)[:2]
    rate_limited = listed_companies(simulator)[2]
    assert first["companies_healed"] == 2
    for company_id in done:
        assert connections(api, company_id)[companies[company_id]]["status"] == "Unlinked"
    assert connections(api, rate_limited)[companies[rate_limited]]["status"] == "Linked"

    # When Codat lets us in again and the next run comes
    simulator.clear_faults()
    start = len(simulator.calls())
    second = run()

    # Then it starts at the company that was refused, and the pass completes with everything healed
    assert second["stopped"] == "pass_complete"
    assert listed_companies(simulator, start)[0] == rate_limited
    assert set(listed_companies(simulator, start)).isdisjoint(done)
    for company_id, connection_id in companies.items():
        assert connections(api, company_id)[connection_id]["status"] == "Unlinked"


def test_an_expired_connection_is_deleted_once_and_the_customer_can_connect_again(
    api: LocalApi,
    simulator: CodatSimulator,
    clocks: TravellingClock,
    run: Callable[..., dict[str, Any]],
) -> None:
    # Given a connection the customer never authorized, and another whose link they asked for again today
    company_id = new_company(api, journey="loan_application")
    expired = new_connection(api, company_id, "qhnd")
    waiting = new_connection(api, company_id, "mqjo")
    clocks.travel(timedelta(hours=30))
    assert new_connection(api, company_id, "mqjo") == waiting  # a fresh link for the same connection

    # When reconciliation runs, and runs again
    first = run()
    second = run()

    # Then the forgotten one is deleted in Codat once and recorded as expired; the other one is left alone
    assert first["expired"] == 1
    assert second["expired"] == 0
    deletes = [c.path for c in simulator.calls() if c.method == "DELETE"]
    assert deletes == [f"/companies/{company_id}/connections/{expired}"]
    assert set(simulator.companies[company_id].connections) == {waiting}
    assert set(connections(api, company_id)) == {waiting}
    [entry] = [e for e in ledger(api, company_id) if e["type"] == "connection.expired"]
    assert (entry["actor"], entry["connectionId"], entry["platformKey"]) == ("reconcile", expired, "qhnd")
    assert "24 hours" in entry["detail"]

    # and the customer starts again cleanly: a new connection, with a link
    response = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"})
    assert response.status == 201, response.text
    assert response.body["connectionId"] != expired
    assert response.body["linkUrl"]


def test_reconciliation_never_undoes_a_newer_webhook_and_a_late_one_never_undoes_it(
    api: LocalApi,
    simulator: CodatSimulator,
    clocks: TravellingClock,
    run: Callable[..., dict[str, Any]],
    outbox: StreamPump,
    events_queue: EventsQueue,
) -> None:
    company_id = new_company(api)
    connection_id = new_connection(api, company_id)
    ids = {"company_id": company_id, "connection_id": connection_id}

    def deliver(body: dict[str, Any]) -> None:
        raw, headers = signed(body)
        assert api.post("/webhooks/codat", body=raw, headers=headers).status == 204

    # Given we know of an event newer than reconciliation's look at Codat (Codat's clock runs ahead a little)
    deliver(connection_event("connection.connected", status="Linked", generated=clocks() + timedelta(minutes=2), **ids))
    simulator.set_connection_status(company_id, connection_id, "Deauthorized")

    # When reconciliation runs now, then after that moment
    run()
    assert connections(api, company_id)[connection_id]["status"] == "Linked"
    clocks.travel(timedelta(minutes=5))
    run()

    # Then only the second run records what Codat reports
    assert connections(api, company_id)[connection_id]["status"] == "Deauthorized"
    outbox.drain()
    events_queue.receive()

    # When the webhook of that deauthorization arrives at last (generated before the run looked)
    deliver(
        connection_event(
            "connection.disconnected", status="Deauthorized", generated=clocks() - timedelta(minutes=1), **ids
        )
    )

    # Then it is kept in the ledger as late, and announces nothing a second time
    assert connections(api, company_id)[connection_id]["status"] == "Deauthorized"
    [late] = [e for e in ledger(api, company_id) if e["type"] == "connection.deauthorized" and e["actor"] == "codat"]
    assert late["detail"].startswith("arrived after a newer event")
    outbox.drain()
    assert events_queue.receive() == []


def test_a_run_with_too_little_time_left_stops_before_asking_codat(
    api: LocalApi, simulator: CodatSimulator, run: Callable[..., dict[str, Any]]
) -> None:
    new_connection(api, new_company(api))
    start = len(simulator.calls())

    report = run(timeout=5.0)

    assert report["stopped"] == "time_low"
    assert simulator.calls()[start:] == []


def test_a_pass_visits_every_company_once_whatever_the_page_size(api: LocalApi, store: DynamoDBConsentStore) -> None:
    # Companies among their connections and ledger entries, which the pass reads and skips
    companies = {new_company(api) for _ in range(4)}
    for company_id in list(companies)[:2]:
        new_connection(api, company_id)
    store.save_reconcile_cursor(store.sweep_cursor_after(sorted(companies)[0]))  # an item the pass must skip

    for limit in (1, 2, 3, 500):
        seen: list[str] = []
        page = store.sweep_companies(None, limit=limit)
        seen.extend(page.items)
        while page.next_cursor is not None:
            page = store.sweep_companies(page.next_cursor, limit=limit)
            seen.extend(page.items)
        assert sorted(seen) == sorted(companies), limit
    # and a pass stopped after a company continues with the next one
    first = store.sweep_companies(None, limit=500).items
    assert store.sweep_companies(store.sweep_cursor_after(first[1]), limit=500).items == first[2:]


def test_two_overlapping_runs_record_a_drift_once(
    api: LocalApi,
    simulator: CodatSimulator,
    authorize: Callable[..., None],
    run: Callable[..., dict[str, Any]],
    outbox: StreamPump,
    events_queue: EventsQueue,
) -> None:
    # Given a drift, and a run whose look at Codat is slow, so that another run (by hand) overtakes it
    company_id = new_company(api)
    connection_id = new_connection(api, company_id)
    authorize(company_id, connection_id)
    simulator.set_connection_status(company_id, connection_id, "Deauthorized")
    outbox.drain()
    events_queue.receive()
    simulator.inject(Fault(kind="slow", delay=0.3, method="GET", path="/connections$", times=1))

    # When both run
    reports: list[dict[str, Any]] = []
    slow = threading.Thread(target=lambda: reports.append(run()))
    slow.start()
    time.sleep(0.1)
    reports.append(run())
    slow.join()

    # Then the drift is recorded once (the run that came second found it healed), and announced once
    assert sorted(r["companies_healed"] for r in reports) == [0, 1]
    entries = [e for e in ledger(api, company_id) if e["actor"] == "reconcile"]
    assert [e["type"] for e in entries] == ["connection.deauthorized", "journey.action_required"]
    outbox.drain()
    assert [m.type for m in events_queue.receive()] == [
        "consent.connection.deauthorized",
        "consent.journey.action_required",
    ]


def test_a_company_with_more_connections_than_one_transaction_holds_is_healed_in_one_run(
    api: LocalApi,
    simulator: CodatSimulator,
    services: Services,
    authorize: Callable[..., None],
    run: Callable[..., dict[str, Any]],
    table_items: Callable[[], list[dict[str, Any]]],
) -> None:
    # Given a company with 60 Linked connections (120 items to write with their ledger entries), deleted in
    # Codat while its webhook went missing
    company_id = new_company(api)
    first = new_connection(api, company_id)
    authorize(company_id, first)
    view = services.store.get_company_by_id(company_id)
    assert view is not None
    [template] = view.connections
    more = [template.model_copy(update={"connection_id": f"conn-{n:02d}", "version": 1}) for n in range(59)]
    services.store.commit(Change(added=more[:40]))
    services.store.commit(Change(added=more[40:]))
    simulator.state.delete_company(company_id)

    # When reconciliation runs
    report = run()

    # Then the run completes, and every connection is deleted with its ledger entry, the journey needing action
    assert report["stopped"] == "pass_complete"
    assert connections(api, company_id) == {}
    found = [e["type"] for e in ledger(api, company_id) if e["actor"] == "reconcile"]
    assert found.count("connection.deleted") == 60
    assert found.count("journey.action_required") == 1
    assert journey(api, company_id) == "action_required"

    # and a second run changes nothing
    table = table_items()
    again = run()
    assert again["ledger_entries"] == 0
    assert table_items() == table


def test_a_company_whose_change_the_table_refuses_is_skipped_and_the_run_goes_on(
    api: LocalApi,
    simulator: CodatSimulator,
    authorize: Callable[..., None],
    run: Callable[..., dict[str, Any]],
    dynamodb_faults: Any,
) -> None:
    # Given three companies whose connections Codat unlinked silently
    companies = drifted(api, simulator, authorize, 3, "Unlinked")
    # and DynamoDB refusing the first company's change as invalid (say, an item over its size limit)
    dynamodb_faults.fail("TransactWriteItems", "ValidationException")

    # When reconciliation runs
    report = run()

    # Then that company is skipped, and every other one is healed in the same run
    assert report["stopped"] == "pass_complete"
    assert report["companies_skipped"] == 1
    [refused] = report["skipped_ids"]
    for company_id, connection_id in companies.items():
        expected = "Linked" if company_id == refused else "Unlinked"
        assert connections(api, company_id)[connection_id]["status"] == expected

    # and the next run heals it once the table takes it
    assert run()["companies_healed"] == 1
    assert connections(api, refused)[companies[refused]]["status"] == "Unlinked"


def test_a_company_tagged_with_the_customer_id_itself_is_retagged_once(
    api: LocalApi, services: Services, simulator: CodatSimulator, run: Callable[..., dict[str, Any]]
) -> None:
    # Given a company made before the keyed customer reference: Codat's copy carries her id itself
    company_id = new_company(api)
    codat_company = simulator.companies[company_id]
    request_ref = codat_company.tags["consentRequestRef"]
    codat_company.tags["consentCustomerRef"] = ALICE
    view = services.store.get_company_by_id(company_id)
    assert view is not None
    services.store.commit(Change(company=view.company.model_copy(update={"customer_ref_keyed": False})))

    # When reconciliation runs, twice
    run()
    patches_after_first = simulator.count("PATCH", "/companies/{companyId}")
    run()

    # Then Codat's copy carries the keyed reference (its other tags kept), and it was rewritten once
    assert codat_company.tags == {"consentCustomerRef": services.customer_ref(ALICE), "consentRequestRef": request_ref}
    assert ALICE not in str(codat_company.tags)
    assert patches_after_first == simulator.count("PATCH", "/companies/{companyId}") == 1
    refreshed = services.store.get_company_by_id(company_id)
    assert refreshed is not None
    assert refreshed.company.customer_ref_keyed


def test_a_company_made_now_is_tagged_keyed_and_never_retagged(
    api: LocalApi, services: Services, simulator: CodatSimulator, run: Callable[..., dict[str, Any]]
) -> None:
    company_id = new_company(api)

    run()

    assert simulator.companies[company_id].tags["consentCustomerRef"] == services.customer_ref(ALICE)
    assert simulator.count("PATCH", "/companies/{companyId}") == 0
    assert simulator.count("GET", "/companies/{companyId}") == 0


# -- Codat's webhook consumer for our receiver, checked on each run ------------------------------------------------

WEBHOOK_URL = "https://a1b2c3d4e5.execute-api.eu-west-2.amazonaws.com/webhooks/codat"


def consumer_metrics(capsys: pytest.CaptureFixture[str]) -> list[float]:
    """The WebhookConsumerUnhealthy values the runs since the last call published (Powertools' EMF on stdout)."""
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    return [value for blob in blobs for value in blob.get("WebhookConsumerUnhealthy", [])]


def test_each_run_checks_codats_webhook_consumer_and_publishes_whether_it_is_unhealthy(
    simulator: CodatSimulator,
    make_services: Callable[..., Services],
    run: Callable[..., dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    checked = make_services(webhook_url=WEBHOOK_URL)
    capsys.readouterr()
    handled = sorted(HANDLED_EVENT_TYPES)

    # When runs meet no consumer, then a healthy one, then one Codat disabled, then one short of a type
    missing = run(checked)
    healthy = simulator.add_webhook_consumer(WEBHOOK_URL, handled)
    found = run(checked)
    simulator.disable_webhook_consumer(healthy.id)
    disabled = run(checked)
    simulator.add_webhook_consumer(WEBHOOK_URL, handled[1:])
    short = run(checked)

    # Then each report says what it found, and the metric is 1 whenever it is not healthy
    assert [r["webhook_consumer"] for r in (missing, found, disabled, short)] == [
        "missing",
        "healthy",
        "disabled",
        "short_of_event_types",
    ]
    assert consumer_metrics(capsys) == [1.0, 0.0, 1.0, 1.0]
    # with one GET /webhooks a run, counted as the run's Codat requests, and nothing else sent about consumers
    assert simulator.count("GET", "/webhooks") == 4
    assert {r["codat_requests"] for r in (missing, found, disabled, short)} == {1}
    assert simulator.count("POST", "/webhooks") == simulator.count("DELETE", "/webhooks/{webhookId}") == 0


def test_without_a_webhook_url_no_consumer_is_checked(
    simulator: CodatSimulator, run: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    report = run()

    assert report["webhook_consumer"] is None
    assert simulator.count("GET", "/webhooks") == 0
    assert consumer_metrics(capsys) == []


def test_the_consumer_check_is_one_request_of_the_runs_codat_budget(
    api: LocalApi,
    simulator: CodatSimulator,
    make_services: Callable[..., Services],
    authorize: Callable[..., None],
    run: Callable[..., dict[str, Any]],
) -> None:
    companies = drifted(api, simulator, authorize, 3, "Deauthorized")
    budgeted = make_services(reconcile_codat_budget=2, webhook_url=WEBHOOK_URL)

    first = run(budgeted)

    # Then the check and one company spent the two requests; the next run checks again and goes on
    assert (first["stopped"], first["codat_requests"], first["companies_checked"]) == ("budget_spent", 2, 1)
    assert [r.operation for r in simulator.calls()[-2:]] == ["GET /webhooks", "GET /companies/{companyId}/connections"]
    second = run(budgeted)
    assert (second["webhook_consumer"], second["companies_checked"]) == ("missing", 1)
    assert len(listed_companies(simulator)) == 2 < len(companies)


@pytest.mark.parametrize(
    "fault",
    [
        Fault(kind="status", status=503, times=None),
        Fault(kind="status", status=429, retry_after=600, times=None),
        Fault(kind="status", status=403, times=None),
        Fault(kind="malformed", times=None),
    ],
    ids=["5xx", "429", "403", "malformed"],
)
def test_codat_refusing_the_consumer_check_is_recorded_and_the_pass_goes_on(
    api: LocalApi,
    simulator: CodatSimulator,
    make_services: Callable[..., Services],
    authorize: Callable[..., None],
    run: Callable[..., dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    fault: Fault,
) -> None:
    companies = drifted(api, simulator, authorize, 2, "Unlinked")
    capsys.readouterr()
    # Given Codat refusing GET /webhooks only
    simulator.inject(dataclasses.replace(fault, method="GET", path="^/webhooks$"))

    report = run(make_services(webhook_url=WEBHOOK_URL))

    # Then the finding is unknown (no metric: an alarm on it must not flap), and every company is healed
    assert report["webhook_consumer"] == "unknown"
    assert consumer_metrics(capsys) == []
    assert (report["stopped"], report["companies_healed"]) == ("pass_complete", 2)
    for company_id, connection_id in companies.items():
        assert connections(api, company_id)[connection_id]["status"] == "Unlinked"


def test_a_run_with_too_little_time_left_does_not_check_the_consumer_either(
    api: LocalApi, simulator: CodatSimulator, make_services: Callable[..., Services], run: Callable[..., Any]
) -> None:
    new_connection(api, new_company(api))
    start = len(simulator.calls())

    report = run(make_services(webhook_url=WEBHOOK_URL), timeout=5.0)

    assert (report["stopped"], report["webhook_consumer"]) == ("time_low", "unknown")
    assert simulator.calls()[start:] == []


def test_a_connection_made_in_codats_link_whose_webhooks_never_came_is_still_the_customers(
    api: LocalApi, simulator: CodatSimulator, run: Callable[..., dict[str, Any]]
) -> None:
    # Given the customer opened Codat's Link in the bank's page and connected her bank there, but none of Codat's
    # webhooks about it arrived
    company_id = new_company(api)
    opened = api.post(
        f"/companies/{company_id}/sdk-sessions", customer=ALICE, json={"component": "link", "consentVersion": "2026-01"}
    )
    assert opened.status == 201, opened.text
    made = simulator.add_connection(company_id, "qhnd", status="Linked").id

    # When reconciliation finds it
    run()

    # Then it is adopted as hers, with the consent version her app sent, as the webhook would have
    ledger = api.get(f"/companies/{company_id}/events", customer=ALICE).body["items"]
    created = [e for e in ledger if e["type"] == "connection.created"]
    assert [(e["connectionId"], e["actor"], e.get("consentVersion")) for e in created] == [
        (made, f"customer:{ALICE}", "2026-01")
    ]
