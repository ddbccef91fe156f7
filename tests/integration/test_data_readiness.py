"""Data readiness: a loan application's data is ready when each type it needs (balance sheet, profit and loss, bank
accounts and transactions) has completed a read from a Linked connection within 30 days; stale otherwise — before the
reads, after a failed read, once time has made the oldest read too old (whenever the company is read), or once the
connection that read it is revoked. Reads arriving in any order end in the same state."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from consent.codat.client import CodatClient
from consent.services import Services
from consent.settings import Settings
from consent.store.dynamodb import DynamoDBConsentStore
from consent_dev.clock import DevClock
from consent_dev.codat_webhooks import connection_event, read_event, signed
from consent_dev.local_api import LocalApi

pytestmark = pytest.mark.integration

ALICE = "customer-alice"
DAY = timedelta(days=1)
ACCOUNTING_TYPES = ("balanceSheet", "profitAndLoss")
BANKING_TYPES = ("banking-accounts", "banking-transactions")


@pytest.fixture
def services(settings: Settings, store: DynamoDBConsentStore, codat: CodatClient, dev_clock: DevClock) -> Services:
    return Services(settings, store=store, codat=codat, clock=dev_clock)


class Loan:
    def __init__(self, api: LocalApi, clock: DevClock) -> None:
        self.api, self.clock = api, clock
        company = api.post("/companies", customer=ALICE, json={"name": "Acme", "journey": "loan_application"})
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
        [journey] = company["journeys"]
        return dict(journey["data"])


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
