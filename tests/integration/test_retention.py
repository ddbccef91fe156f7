"""One-off consent and retention: a one-off journey (the credit check) unlinks the connections it used once its data
has been read, unless an ongoing journey of the company uses them too; once consent has ended, the data read through
a connection is deleted in Codat after the journeys' `retain_days` (`consent.data.purged`), and the company too when
nothing of it is left. All of it by the lifecycle run, on a clock the test moves with Codat's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from consent.codat.client import CodatClient
from consent.services import Services
from consent.settings import Settings
from consent.store.dynamodb import DynamoDBConsentStore
from consent_dev.clock import DevClock
from consent_dev.codat_simulator import CodatSimulator, Fault
from consent_dev.codat_webhooks import company_event, connection_event, read_event, signed
from consent_dev.local_api import LocalApi
from consent_dev.streams import StreamPump
from consent_dev.subscriber import EventsQueue

pytestmark = pytest.mark.integration

ALICE = "customer-alice"
DAY = timedelta(days=1)
CREDIT_CHECK_TYPES = {"gbol": ("balanceSheet", "profitAndLoss"), "qhnd": ("banking-accounts",)}


@pytest.fixture
def services(settings: Settings, store: DynamoDBConsentStore, codat: CodatClient, dev_clock: DevClock) -> Services:
    return Services(settings, store=store, codat=codat, clock=dev_clock)


@pytest.fixture
def run(run_lifecycle: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    return run_lifecycle


class Company:
    """A customer's company with books and a bank Linked (in Codat too), whose webhooks the test delivers."""

    def __init__(self, api: LocalApi, simulator: CodatSimulator, clock: DevClock, journey: str) -> None:
        self.api, self.simulator, self.clock = api, simulator, clock
        created = api.post("/companies", customer=ALICE, json={"name": "Acme", "journey": journey})
        assert created.status == 201, created.text
        self.id = str(created.body["companyId"])
        self.sent = 0
        self.connections = {key: self._linked(key) for key in ("gbol", "qhnd")}

    def _linked(self, platform_key: str) -> str:
        created = self.api.post(f"/companies/{self.id}/connections", customer=ALICE, json={"platformKey": platform_key})
        assert created.status == 201, created.text
        connection_id = str(created.body["connectionId"])
        self.simulator.set_connection_status(self.id, connection_id, "Linked")
        self.simulator.complete_reads()
        self.codat_says(connection_id, "connection.connected", "Linked")
        return connection_id

    def codat_says(self, connection_id: str, event_type: str, status: str) -> None:
        self.deliver(
            connection_event(
                event_type, company_id=self.id, connection_id=connection_id, status=status, generated=self.clock()
            )
        )

    def read_everything(self) -> None:
        for platform_key, types in CREDIT_CHECK_TYPES.items():
            self.deliver(
                read_event(
                    company_id=self.id,
                    connection_ids=[self.connections[platform_key]],
                    initial=True,
                    generated=self.clock(),
                    data_types=types,
                )
            )

    def deliver(self, body: dict[str, Any]) -> None:
        self.sent += 1
        raw, headers = signed(body, message_id=f"msg-retention-{self.id[:8]}-{self.sent}")
        response = self.api.post("/webhooks/codat", body=raw, headers=headers)
        assert response.status == 204, response.text

    def statuses(self) -> dict[str, str]:
        items = self.api.get(f"/companies/{self.id}/connections", customer=ALICE).body["items"]
        by_id = {c["connectionId"]: c["status"] for c in items}
        return {key: by_id.get(cid, "gone") for key, cid in self.connections.items()}

    def in_codat(self) -> dict[str, str]:
        company = self.simulator.companies.get(self.id)
        if company is None:
            return {"company": "gone"}
        return {
            key: (company.connections[cid].status if cid in company.connections else "gone")
            for key, cid in self.connections.items()
        }

    def history(self, *types: str) -> list[dict[str, Any]]:
        page = self.api.get(f"/companies/{self.id}/events", customer=ALICE, query={"limit": "100"}).body
        return sorted((e for e in page["items"] if e["type"] in types), key=lambda e: (e["at"], e["entryId"]))


@pytest.fixture
def company(api: LocalApi, simulator: CodatSimulator, dev_clock: DevClock) -> Callable[[str], Company]:
    return lambda journey: Company(api, simulator, dev_clock, journey)


def test_a_one_off_consent_ends_once_its_data_is_read_and_the_data_goes_after_retention(
    company: Callable[[str], Company],
    dev_clock: DevClock,
    run: Callable[[], dict[str, Any]],
    outbox: StreamPump,
    events_queue: EventsQueue,
) -> None:
    check = company("credit_check")
    assert run()["unlinked"] == 0  # its data is not read yet: consent stands
    check.read_everything()

    # Its data read: the run unlinks both connections in Codat, on her behalf, once
    assert run()["unlinked"] == 2
    assert run()["unlinked"] == 0
    assert check.statuses() == {"gbol": "Unlinked", "qhnd": "Unlinked"}
    assert check.in_codat() == {"gbol": "Unlinked", "qhnd": "Unlinked"}
    fulfilled = check.history("consent.fulfilled")
    assert sorted((e["actor"], e["connectionId"]) for e in fulfilled) == sorted(
        (f"customer:{ALICE}", cid) for cid in check.connections.values()
    )
    # Codat reports the unlinks: its confirmations, not news
    for connection_id in check.connections.values():
        check.codat_says(connection_id, "connection.disconnected", "Unlinked")
    assert len(check.history("consent.fulfilled")) == 2
    # Asking again would be a consent the lifecycle ends at once: refused
    again = check.api.post(f"/companies/{check.id}/connections", customer=ALICE, json={"platformKey": "gbol"})
    assert (again.status, again.body["code"]) == (409, "one_off_consent_used")

    # Retention: 30 days after consent ended, the data goes in Codat, then the company with nothing left
    dev_clock.advance(30 * DAY - timedelta(minutes=5))
    assert run()["purged"] == 0
    dev_clock.advance(timedelta(minutes=10))
    report = run()
    assert (report["purged"], report["erased"]) == (2, 1)
    assert run()["purged"] == 0
    assert check.in_codat() == {"company": "gone"}
    assert check.statuses() == {"gbol": "gone", "qhnd": "gone"}
    purged = check.history("data.purged")
    assert sorted(str((e.get("connectionId"), e["actor"], e.get("retainDays"))) for e in purged) == sorted(
        [str((cid, "consent-clock", 30)) for cid in check.connections.values()] + [str((None, "consent-clock", None))]
    )
    # Codat's report of the company's deletion is its echo: nothing more to record
    check.deliver(company_event("company.deleted", {"id": check.id, "name": "Acme"}, generated=dev_clock()))
    assert check.history("connection.deleted") == []
    # Her history stays; connecting again needs a new company
    again = check.api.post(f"/companies/{check.id}/connections", customer=ALICE, json={"platformKey": "qhnd"})
    assert (again.status, again.body["code"]) == (409, "company_data_purged")

    # Subscribers heard it: each unlink as consent.connection.unlinked, each purge as consent.data.purged
    outbox.drain()
    published = [m.event for m in events_queue.receive() if m.event["subject"] == check.id]
    assert sum(e["type"] == "consent.data.purged" for e in published) == 3
    unlinked = [e for e in published if e["type"] == "consent.connection.unlinked"]
    assert len(unlinked) == 2
    assert {e["data"]["actor"] for e in unlinked} == {f"customer:{ALICE}"}


def test_a_connection_an_ongoing_journey_uses_too_stays_linked(
    company: Callable[[str], Company], api: LocalApi, run: Callable[[], dict[str, Any]]
) -> None:
    check = company("credit_check")
    started = api.post(f"/companies/{check.id}/journeys", customer=ALICE, json={"journey": "onboarding"})
    assert started.status in (200, 201), started.text
    check.read_everything()
    # Onboarding (ongoing) uses banking and accounting both: neither consent is spent
    assert run()["unlinked"] == 0
    assert check.statuses() == {"gbol": "Linked", "qhnd": "Linked"}


def test_a_revoked_connection_s_data_goes_after_retention_and_one_no_journey_limits_is_kept(
    company: Callable[[str], Company], api: LocalApi, dev_clock: DevClock, run: Callable[[], dict[str, Any]]
) -> None:
    check = company("credit_check")
    kept = company("onboarding")  # no retention declared: its data is kept
    for who in (check, kept):
        revoked = api.delete(f"/companies/{who.id}/connections/{who.connections['qhnd']}", customer=ALICE)
        assert revoked.status == 200, revoked.text
    dev_clock.advance(31 * DAY)
    report = run()
    assert (report["purged"], report["erased"]) == (1, 0)  # the credit check's bank; its books are still Linked
    assert check.in_codat() == {"gbol": "Linked", "qhnd": "gone"}
    assert check.statuses() == {"gbol": "Linked", "qhnd": "gone"}
    assert kept.in_codat()["qhnd"] == "Unlinked"
    # Codat's report of the delete is its confirmation: recorded, not announced again
    check.codat_says(check.connections["qhnd"], "connection.deleted", "Unlinked")
    assert [e["entryId"] for e in check.history("data.purged")] == [f"purge:{check.connections['qhnd']}"]


def test_codat_failing_leaves_consent_to_end_on_the_next_run(
    company: Callable[[str], Company], simulator: CodatSimulator, run: Callable[[], dict[str, Any]]
) -> None:
    check = company("credit_check")
    check.read_everything()
    simulator.inject(Fault("status", method="PATCH", path="/connections/", status=503, times=None))
    report = run()
    assert (report["unlinked"], report["skipped"]) == (0, 0)
    assert check.statuses() == {"gbol": "Linked", "qhnd": "Linked"}
    simulator.clear_faults()
    assert run()["unlinked"] == 2
    assert check.statuses() == {"gbol": "Unlinked", "qhnd": "Unlinked"}


def test_an_unlink_codat_made_whose_record_was_lost_is_recorded_on_the_next_run(
    company: Callable[[str], Company], simulator: CodatSimulator, run: Callable[[], dict[str, Any]]
) -> None:
    check = company("credit_check")
    check.read_everything()
    # Codat unlinked the bank (an earlier run, whose write failed after Codat's answer; the replay window gone):
    # Codat now refuses to unlink it again, and says it is Unlinked
    simulator.set_connection_status(check.id, check.connections["qhnd"], "Unlinked")
    assert run()["unlinked"] == 2
    assert check.statuses() == {"gbol": "Unlinked", "qhnd": "Unlinked"}
    assert len(check.history("consent.fulfilled")) == 2


def test_codat_reporting_the_delete_before_the_run_writes_it_is_its_confirmation(
    company: Callable[[str], Company], services: Services, dev_clock: DevClock, run: Callable[[], dict[str, Any]]
) -> None:
    check = company("credit_check")
    check.read_everything()
    assert run()["unlinked"] == 2
    dev_clock.advance(31 * DAY)
    # Codat delivers its connection.deleted at once, before the run has written anything (forced: inside the call)
    codat = services.codat
    delete = codat.delete_connection

    def delete_then_report(company_id: str, connection_id: str) -> None:
        delete(company_id, connection_id)
        check.codat_says(connection_id, "connection.deleted", "Unlinked")

    codat.delete_connection = delete_then_report  # type: ignore[method-assign]
    try:
        report = run()
    finally:
        del codat.delete_connection
    # Its write met Codat's reports and, read again, recorded its purges all the same: the news, once each; Codat's
    # reports are their confirmations, not news of their own
    assert (report["purged"], report["erased"], report["skipped"]) == (2, 1, 0)
    assert len(check.history("data.purged")) == 3
    assert check.history("connection.deleted") == []
    assert len(check.history("codat.connection.deleted")) == 2
    assert check.in_codat() == {"company": "gone"}
    assert run()["purged"] == 0


def test_codat_reporting_the_unlink_before_the_run_writes_it_is_its_confirmation(
    company: Callable[[str], Company], services: Services, run: Callable[[], dict[str, Any]]
) -> None:
    check = company("credit_check")
    check.read_everything()
    # Codat delivers its connection.disconnected at once, before the run has written anything (forced: inside the call)
    codat = services.codat
    unlink = codat.unlink_connection

    def unlink_then_report(company_id: str, connection_id: str, **kwargs: Any) -> Any:
        answer = unlink(company_id, connection_id, **kwargs)
        check.codat_says(connection_id, "connection.disconnected", "Unlinked")
        return answer

    codat.unlink_connection = unlink_then_report  # type: ignore[method-assign]
    try:
        report = run()
    finally:
        del codat.unlink_connection
    # Her consent's end is recorded all the same, as hers, once each; Codat's reports are its confirmations
    assert (report["unlinked"], report["skipped"]) == (2, 0)
    fulfilled = check.history("consent.fulfilled")
    assert sorted((e["actor"], e["connectionId"]) for e in fulfilled) == sorted(
        (f"customer:{ALICE}", cid) for cid in check.connections.values()
    )
    assert check.history("connection.unlinked") == []
    assert len(check.history("codat.connection.unlinked")) == 2
    assert run()["unlinked"] == 0
