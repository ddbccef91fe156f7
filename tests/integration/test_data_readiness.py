"""Data readiness: a loan application's data is ready when each type it needs (balance sheet, profit and loss, bank
accounts and transactions) has completed a read from a Linked connection within 30 days; stale otherwise — before the
reads, after a failed read, once time has made the oldest read too old (whenever the company is read), or once the
connection that read it is revoked. Reads arriving in any order end in the same state.

Each transition is announced once (`journey.data_ready`, `journey.data_stale`), in event time: time making the data
stale is announced by the lifecycle run when it happens. Starting the journey, or its becoming complete, has the
lifecycle run queue a read in Codat of each stale type it needs."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from consent.codat.client import CodatClient
from consent.services import Services
from consent.settings import Settings
from consent.store.dynamodb import DynamoDBConsentStore
from consent_dev.clock import DevClock
from consent_dev.codat_simulator import CodatSimulator
from consent_dev.codat_webhooks import connection_event, read_event, signed
from consent_dev.local_api import LocalApi

pytestmark = pytest.mark.integration

ALICE = "customer-alice"
DAY = timedelta(days=1)
ACCOUNTING_TYPES = ("balanceSheet", "profitAndLoss")
BANKING_TYPES = ("banking-accounts", "banking-transactions")
QUEUE = "/companies/{companyId}/data/queue/{dataType}"
DATA_ENTRIES = ("journey.data_ready", "journey.data_stale")


@pytest.fixture
def run(run_lifecycle: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    return run_lifecycle


@pytest.fixture
def services(settings: Settings, store: DynamoDBConsentStore, codat: CodatClient, dev_clock: DevClock) -> Services:
    return Services(settings, store=store, codat=codat, clock=dev_clock)


class Loan:
    def __init__(self, api: LocalApi, clock: DevClock, journey: str = "loan_application") -> None:
        self.api, self.clock = api, clock
        company = api.post("/companies", customer=ALICE, json={"name": "Acme", "journey": journey})
        assert company.status == 201, company.text
        self.company_id = str(company.body["companyId"])
        self.sent = 0
        self.books = self._linked("gbol")
        self.bank = self._linked("qhnd")

    def _linked(self, platform_key: str) -> str:
        created = self.api.post(
            f"/companies/{self.company_id}/connections", customer=ALICE, json={"platformKey": platform_key}
        )
        assert created.status == 201, created.text
        connection_id = str(created.body["connectionId"])
        self.deliver(
            connection_event(
                "connection.connected",
                company_id=self.company_id,
                connection_id=connection_id,
                status="Linked",
                generated=self.clock(),
            )
        )
        return connection_id

    def read(self, connection_id: str, types: tuple[str, ...], *, at: datetime | None = None, **kw: Any) -> None:
        self.deliver(
            read_event(
                company_id=self.company_id,
                connection_ids=[connection_id],
                initial=False,
                generated=at or self.clock(),
                data_types=types,
                **kw,
            )
        )

    def deliver(self, body: dict[str, Any]) -> None:
        self.sent += 1
        raw, headers = signed(body, message_id=f"msg-data-{self.company_id[:8]}-{self.sent}")
        response = self.api.post("/webhooks/codat", body=raw, headers=headers)
        assert response.status == 204, response.text

    def data(self) -> dict[str, Any]:
        company = self.api.get(f"/companies/{self.company_id}", customer=ALICE).body
        [journey] = [j for j in company["journeys"] if j["journey"] == "loan_application"]
        return dict(journey["data"])

    def transitions(self) -> list[dict[str, Any]]:
        """The data readiness entries of the company's history, oldest first."""
        page = self.api.get(f"/companies/{self.company_id}/events", customer=ALICE, query={"limit": "100"}).body
        return sorted((e for e in page["items"] if e["type"] in DATA_ENTRIES), key=lambda e: (e["at"], e["entryId"]))


@pytest.fixture
def loan(api: LocalApi, dev_clock: DevClock) -> Loan:
    return Loan(api, dev_clock)


def test_the_data_is_ready_once_every_type_it_needs_has_been_read_and_stale_before(loan: Loan) -> None:
    before = loan.data()
    assert before["status"] == "stale"
    assert [t["dataType"] for t in before["types"]] == [*ACCOUNTING_TYPES, *BANKING_TYPES]
    assert all("lastReadAt" not in t for t in before["types"])
    assert "freshUntil" not in before

    loan.read(loan.books, ACCOUNTING_TYPES)
    assert loan.data()["status"] == "stale"  # the bank's data is still missing
    loan.read(loan.bank, BANKING_TYPES)

    ready = loan.data()
    assert ready["status"] == "ready"
    assert ready["maxAgeDays"] == 30
    oldest = min(datetime.fromisoformat(t["lastReadAt"]) for t in ready["types"])
    assert datetime.fromisoformat(ready["freshUntil"]) == oldest + 30 * DAY


def test_a_failed_read_does_not_count(loan: Loan) -> None:
    loan.read(loan.books, ACCOUNTING_TYPES, statuses={"profitAndLoss": "FetchError"})
    loan.read(loan.bank, BANKING_TYPES)
    data = loan.data()
    assert data["status"] == "stale"
    assert [t["dataType"] for t in data["types"] if "lastReadAt" not in t] == ["profitAndLoss"]


def test_time_alone_makes_ready_data_stale_whenever_the_company_is_read(loan: Loan, dev_clock: DevClock) -> None:
    loan.read(loan.books, ACCOUNTING_TYPES)
    loan.read(loan.bank, BANKING_TYPES)
    assert loan.data()["status"] == "ready"

    dev_clock.advance(30 * DAY + timedelta(minutes=1))
    assert loan.data()["status"] == "stale"  # nothing was written since: the answer is read against the clock
    listed = loan.api.get("/companies", customer=ALICE).body["items"]
    assert next(c for c in listed if c["companyId"] == loan.company_id)["journeys"][0]["data"]["status"] == "stale"

    # A fresh read of the oldest types makes it ready again
    loan.read(loan.books, ACCOUNTING_TYPES)
    loan.read(loan.bank, BANKING_TYPES)
    assert loan.data()["status"] == "ready"


def test_a_revoked_connection_s_reads_no_longer_count(loan: Loan) -> None:
    loan.read(loan.books, ACCOUNTING_TYPES)
    loan.read(loan.bank, BANKING_TYPES)
    revoked = loan.api.delete(f"/companies/{loan.company_id}/connections/{loan.bank}", customer=ALICE)
    assert revoked.status == 200, revoked.text
    assert loan.data()["status"] == "stale"


def test_reads_in_any_order_keep_the_latest_of_each_type(loan: Loan, dev_clock: DevClock) -> None:
    now = dev_clock()
    loan.read(loan.bank, BANKING_TYPES, at=now - DAY)
    loan.read(loan.books, ACCOUNTING_TYPES, at=now)
    loan.read(loan.books, ACCOUNTING_TYPES, at=now - 40 * DAY)  # an old read, delivered late
    data = loan.data()
    assert data["status"] == "ready"
    reads = {t["dataType"]: datetime.fromisoformat(t["lastReadAt"]) for t in data["types"]}
    assert reads["balanceSheet"] == now
    assert datetime.fromisoformat(data["freshUntil"]) == now - DAY + 30 * DAY


def test_the_catalog_says_what_data_each_journey_needs(api: LocalApi, loan: Loan) -> None:
    journeys = {j["name"]: j for j in api.get("/journeys", customer=ALICE).body["items"]}
    assert journeys["loan_application"]["data"] == {"types": [*ACCOUNTING_TYPES, *BANKING_TYPES], "maxAgeDays": 30}
    assert "data" not in journeys["onboarding"]


def _at(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["at"])


def test_each_transition_is_announced_once_and_time_making_data_stale_by_the_lifecycle_run(
    loan: Loan, dev_clock: DevClock, run: Callable[[], dict[str, Any]]
) -> None:
    read_at = dev_clock()
    loan.read(loan.books, ACCOUNTING_TYPES, at=read_at)
    assert loan.transitions() == []  # stale from the start: not a transition
    loan.read(loan.bank, BANKING_TYPES)
    loan.read(loan.bank, BANKING_TYPES, event_id="same-read")
    loan.read(loan.bank, BANKING_TYPES, event_id="same-read")  # a duplicate delivery changes nothing
    [ready] = loan.transitions()
    assert (ready["type"], ready["actor"], ready["journey"]) == ("journey.data_ready", "codat", "loan_application")
    assert ready["entryId"] == "journey:loan_application:data_ready:1"
    fresh_until = datetime.fromisoformat(ready["freshUntil"])
    assert fresh_until == read_at + 30 * DAY

    # Not stale yet: the run settles nothing
    dev_clock.advance(fresh_until - dev_clock() - timedelta(minutes=1))
    assert run()["settled"] == 0
    # Time makes it stale: the next run announces it, when it happened, once
    dev_clock.advance(timedelta(hours=1))
    assert run()["settled"] == 1
    assert run()["settled"] == 0
    stale = loan.transitions()[-1]
    assert (stale["type"], stale["actor"], _at(stale)) == ("journey.data_stale", "consent-clock", fresh_until)
    assert stale["staleTypes"] == list(ACCOUNTING_TYPES)  # read first, so too old first
    assert stale["entryId"] == "journey:loan_application:data_stale:1"

    # Read again: ready a second time
    loan.read(loan.books, ACCOUNTING_TYPES)
    loan.read(loan.bank, BANKING_TYPES)
    assert [e["entryId"].rsplit(":", 2)[-2:] for e in loan.transitions()] == [
        ["data_ready", "1"],
        ["data_stale", "1"],
        ["data_ready", "2"],
    ]


def test_revoking_the_connection_that_read_it_makes_the_data_stale_by_the_customer(loan: Loan) -> None:
    loan.read(loan.books, ACCOUNTING_TYPES)
    loan.read(loan.bank, BANKING_TYPES)
    revoked = loan.api.delete(f"/companies/{loan.company_id}/connections/{loan.bank}", customer=ALICE)
    assert revoked.status == 200, revoked.text
    stale = loan.transitions()[-1]
    assert (stale["type"], stale["actor"], stale["staleTypes"]) == (
        "journey.data_stale",
        f"customer:{ALICE}",
        list(BANKING_TYPES),
    )


@pytest.mark.parametrize("order", list(itertools.permutations(range(4)))[::5])
def test_reads_in_any_order_announce_the_same_transitions(
    api: LocalApi, dev_clock: DevClock, order: tuple[int, ...]
) -> None:
    """A gap between two reads of the books (more than 30 days) makes the data ready, stale and ready again, however
    the reads arrive: late, early, twice."""
    loan = Loan(api, dev_clock)
    start = dev_clock()
    reads = [
        (loan.bank, BANKING_TYPES, start + DAY),
        (loan.books, ACCOUNTING_TYPES, start + 2 * DAY),
        (loan.bank, BANKING_TYPES, start + 40 * DAY),
        (loan.books, ACCOUNTING_TYPES, start + 45 * DAY),
    ]
    dev_clock.advance(50 * DAY)
    for index in order:
        connection_id, types, at = reads[index]
        loan.read(connection_id, types, at=at, event_id=f"read-{index}")
        loan.read(connection_id, types, at=at, event_id=f"read-{index}")
    # Each transition once, named by its place in the journey's data history
    if order == (0, 1, 2, 3):  # in order: each when it happened, and why
        assert [(e["actor"], _at(e) - start) for e in loan.transitions()] == [
            ("codat", 2 * DAY),
            ("consent-clock", 31 * DAY),
            ("codat", 45 * DAY),
        ]
    ids = sorted((e["type"], e["entryId"]) for e in loan.transitions())
    assert ids == [
        ("journey.data_ready", "journey:loan_application:data_ready:1"),
        ("journey.data_ready", "journey:loan_application:data_ready:2"),
        ("journey.data_stale", "journey:loan_application:data_stale:1"),
    ]


class LinkedInCodat(Loan):
    """A loan application whose connections Codat itself knows as Linked (so it takes reads queued on them)."""

    def __init__(self, api: LocalApi, clock: DevClock, simulator: CodatSimulator, journey: str) -> None:
        self.simulator = simulator
        super().__init__(api, clock, journey)

    def _linked(self, platform_key: str) -> str:
        connection_id = super()._linked(platform_key)
        self.simulator.set_connection_status(self.company_id, connection_id, "Linked")
        self.simulator.complete_reads()  # its first read is done: nothing is being read when a read is queued
        return connection_id

    def queued(self) -> list[str]:
        """The reads queued in Codat for the company: data type and connection."""
        return sorted(
            f"{call.path.rsplit('/', 1)[-1]}:{call.query.get('connectionId')}"
            for call in self.simulator.calls("POST", QUEUE)
            if call.path.split("/")[2] == self.company_id
        )


def test_starting_a_journey_has_the_lifecycle_read_its_stale_data_again(
    api: LocalApi, dev_clock: DevClock, simulator: CodatSimulator, run: Callable[[], dict[str, Any]]
) -> None:
    # An onboarding company whose books and bank were read 40 days ago, and its balance sheet a week ago
    company = LinkedInCodat(api, dev_clock, simulator, "onboarding")
    company.read(company.books, ACCOUNTING_TYPES, at=dev_clock() - 40 * DAY)
    company.read(company.bank, BANKING_TYPES, at=dev_clock() - 40 * DAY)
    company.read(company.books, ("balanceSheet",), at=dev_clock() - 7 * DAY)
    run()
    assert company.queued() == []  # onboarding needs no data: nothing wanted

    started = api.post(
        f"/companies/{company.company_id}/journeys", customer=ALICE, json={"journey": "loan_application"}
    )
    assert started.status in (200, 201), started.text
    assert company.queued() == []  # not on her request's path: Codat is asked by the lifecycle run
    assert run()["data_reads"] == 1
    assert company.queued() == [
        f"banking-accounts:{company.bank}",
        f"banking-transactions:{company.bank}",
        f"profitAndLoss:{company.books}",
    ]
    run()
    assert len(company.queued()) == 3  # asked once


def test_a_journey_becoming_complete_with_stale_data_has_it_read_and_a_spent_budget_defers_it(
    api: LocalApi,
    dev_clock: DevClock,
    simulator: CodatSimulator,
    run: Callable[[], dict[str, Any]],
    services: Services,
) -> None:
    services.settings = services.settings.model_copy(update={"keep_alive_daily_codat_budget": 2})
    company = LinkedInCodat(api, dev_clock, simulator, "loan_application")
    # The first reads complete the journey, but read no bank transactions
    company.read(company.books, ACCOUNTING_TYPES)
    company.deliver(
        read_event(
            company_id=company.company_id,
            connection_ids=[company.books, company.bank],
            initial=True,
            generated=dev_clock(),
            data_types=("banking-accounts",),
        )
    )
    assert company.data()["status"] == "stale"
    assert run()["data_reads"] == 1
    assert company.queued() == [f"banking-transactions:{company.bank}"]

    # Later the journey needs the customer again, then completes again with its data too old: the day's budget
    # (2 requests) does not cover the three reads; the rest waits for the next day
    dev_clock.advance(40 * DAY)
    company.read(company.books, ("invoices",))  # the books synced (so keep-alive has nothing to ask): no loan data
    company.deliver(
        connection_event(
            "connection.disconnected",
            company_id=company.company_id,
            connection_id=company.bank,
            status="Deauthorized",
            generated=dev_clock(),
        )
    )
    company.deliver(
        connection_event(
            "connection.connected",
            company_id=company.company_id,
            connection_id=company.bank,
            status="Linked",
            generated=dev_clock() + timedelta(seconds=1),
        )
    )
    company.deliver(
        read_event(
            company_id=company.company_id,
            connection_ids=[company.bank],
            initial=True,
            generated=dev_clock() + timedelta(seconds=2),
            data_types=("banking-accounts",),
        )
    )
    report = run()
    assert (report["data_reads"], report["data_deferred"], report["refreshed"]) == (0, 1, 0)
    assert len(company.queued()) == 1 + 2
    dev_clock.advance(DAY)  # the next day's budget: the two reads left, not the one asked already
    assert run()["data_reads"] == 1
    assert company.queued() == sorted(
        [
            f"banking-transactions:{company.bank}",
            f"balanceSheet:{company.books}",
            f"banking-transactions:{company.bank}",
            f"profitAndLoss:{company.books}",
        ]
    )
    assert run()["data_reads"] == 0
