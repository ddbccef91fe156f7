"""The consent lifecycle on `make dev`, over HTTP only, with the stack's clock moved forward: a bank connection's
consent clock, the reminders the scheduled `LifecycleFunction` sends before `renewBy` (each lead time once, a late
run only the most urgent), a renewal through the API and the simulator's link page that restarts the clock, and the
new period's own reminders; a loan application's ready data going stale as time passes, announced once by the run;
a credit check's one-off consent ended by the run once its data is read, and its data deleted in Codat 30 days later
(the company with it); each consent event reaches the stack's subscriber, within its published contract."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from consent_dev.devserver import DevStack
from consent_dev.jwt_auth import LocalIssuer

pytestmark = pytest.mark.e2e

ISSUER = LocalIssuer(url="https://issuer.consent.test")
ALICE = {"Authorization": f"Bearer {ISSUER.token('customer-alice')}"}
DAY = timedelta(days=1)
WAIT_SECONDS = 20.0
BANK = "qhnd"  # Codat's banking sandbox: 90 days of consent, to renew 7 days early (the shipped policy)


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    with DevStack(port=0, codat_port=0, environ={}, issuer=ISSUER) as running:
        yield running


@pytest.fixture
def http(stack: DevStack) -> Iterator[httpx.Client]:
    stack.reset()  # an empty deployment; the clock stays where earlier moves left it (it never goes back)
    with httpx.Client(base_url=stack.api_url, timeout=30.0) as client:
        yield client


def instant(text: str) -> datetime:
    """Our timestamps and Codat's (7 fractional digits) alike."""
    head, _, fraction = text.removesuffix("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(fraction or '0')[:6]:0<6}+00:00")


def now(http: httpx.Client) -> datetime:
    """The stack's time (the product's and the simulator's)."""
    answer = http.get("/_dev/clock")
    assert answer.status_code == 200, answer.text
    return instant(answer.json()["now"])


def move_to(http: httpx.Client, moment: datetime) -> datetime:
    """Move the stack's clock on to `moment` (rounded up to the minute, the clock's finest step): the new time."""
    ahead = moment - now(http)
    assert ahead > timedelta(0), f"{moment} has passed"
    minutes = -(-ahead // timedelta(minutes=1))
    answer = http.post("/_dev/clock", json={"advance": f"PT{minutes}M"})
    assert answer.status_code == 200, answer.text
    moved = instant(answer.json()["now"])
    assert moved >= moment
    return moved


def run_lifecycle(http: httpx.Client) -> dict[str, Any]:
    """The scheduled LifecycleFunction, now, as EventBridge would run it: its report."""
    answer = http.post("/_dev/schedules/LifecycleFunction")
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    assert report["stopped"] == "done", report
    assert report["skipped"] == 0, report
    return report


def flush_codat(stack: DevStack) -> None:
    """The simulator's pending first reads completed and its webhooks delivered (its control route)."""
    answer = httpx.post(f"{stack.codat_url}/_simulator/webhooks/flush", params={"timeout": str(WAIT_SECONDS)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["drained"] is True, answer.json()


def authorize_on_link_page(link_url: str) -> None:
    with httpx.Client(timeout=10.0) as browser:
        answer = browser.post(link_url, data={"action": "authorize"})
        assert answer.status_code in (200, 302, 303), answer.text


def ask_for_bank(http: httpx.Client, company_id: str, consent_version: str) -> httpx.Response:
    return http.post(
        f"/companies/{company_id}/connections",
        json={"platformKey": BANK, "consentVersion": consent_version},
        headers=ALICE,
    )


def connection(http: httpx.Client, company_id: str) -> dict[str, Any]:
    answer = http.get(f"/companies/{company_id}/connections", headers=ALICE)
    assert answer.status_code == 200, answer.text
    [found] = answer.json()["items"]
    return dict(found)


def ledger(http: httpx.Client, company_id: str, entry_type: str) -> list[dict[str, Any]]:
    answer = http.get(f"/companies/{company_id}/events", params={"limit": "100"}, headers=ALICE)
    assert answer.status_code == 200, answer.text
    assert "nextCursor" not in answer.json()
    return [entry for entry in answer.json()["items"] if entry["type"] == entry_type]


def journey_data(http: httpx.Client, company_id: str) -> dict[str, Any]:
    """The loan application's `data` (its readiness) as the API gives it."""
    answer = http.get(f"/companies/{company_id}", headers=ALICE)
    assert answer.status_code == 200, answer.text
    [journey] = [j for j in answer.json()["journeys"] if j["journey"] == "loan_application"]
    return dict(journey["data"])


def reminders(http: httpx.Client, company_id: str) -> list[tuple[int, datetime]]:
    """Each `connection.expiring` entry, in ledger order: its lead time and the renewBy it is about."""
    return [(e["reminderDays"], instant(e["renewBy"])) for e in ledger(http, company_id, "connection.expiring")]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_reminders_go_once_per_lead_time_and_a_renewal_starts_the_next_period(
    http: httpx.Client, stack: DevStack
) -> None:
    # Given a customer who links her bank, accepting the terms of 2026-01
    created = http.post("/companies", json={"name": "Acme Bakery Ltd", "journey": "onboarding"}, headers=ALICE)
    assert created.status_code == 201, created.text
    company_id = created.json()["companyId"]
    asked = ask_for_bank(http, company_id, "2026-01")
    assert asked.status_code == 201, asked.text
    connection_id = asked.json()["connectionId"]
    linked_from = now(http).replace(microsecond=0)
    authorize_on_link_page(asked.json()["linkUrl"])
    flush_codat(stack)
    linked_by = now(http)

    # Then its consent clock runs 90 days from the authorization, to be renewed a week early
    bank = connection(http, company_id)
    assert (bank["connectionId"], bank["status"]) == (connection_id, "Linked")
    renew_by, expires_at = instant(bank["renewBy"]), instant(bank["consentExpiresAt"])
    assert linked_from + 83 * DAY <= renew_by <= linked_by + 83 * DAY, (bank, linked_from, linked_by)
    assert expires_at - renew_by == 7 * DAY
    # and renewal is not open yet: the refusal says when it opens
    early = ask_for_bank(http, company_id, "2026-01")
    assert early.status_code == 409, early.text
    assert early.json()["code"] == "connection_already_linked"
    assert "renewal opens at" in early.json()["detail"]
    assert run_lifecycle(http)["sent"] == 0
    assert reminders(http, company_id) == []

    # When the clock reaches 13 days before renewBy and the schedule runs twice
    move_to(http, renew_by - 13 * DAY)
    first_run, second_run = run_lifecycle(http), run_lifecycle(http)

    # Then exactly one reminder went, the 14-day one, by the consent clock
    assert (first_run["sent"], second_run["sent"]) == (1, 0), (first_run, second_run)
    [fourteen] = ledger(http, company_id, "connection.expiring")
    assert (fourteen["reminderDays"], fourteen["actor"], fourteen["connectionId"]) == (
        14,
        "consent-clock",
        connection_id,
    )
    assert (instant(fourteen["renewBy"]), instant(fourteen["consentExpiresAt"])) == (renew_by, expires_at)

    # When the runs stop past both the 7-day and the 1-day points, and one comes
    move_to(http, renew_by - timedelta(hours=12))
    late = run_lifecycle(http)

    # Then only the most urgent reminder is added: the 1-day one, not the 7-day one as well
    assert late["sent"] == 1, late
    assert reminders(http, company_id) == [(14, renew_by), (1, renew_by)]

    # When she renews: the same connection, still Linked, with a fresh link (her new terms recorded)
    renewing = ask_for_bank(http, company_id, "2026-02")
    assert renewing.status_code == 200, renewing.text
    assert (renewing.json()["connectionId"], renewing.json()["status"]) == (connection_id, "Linked")
    assert renewing.json()["linkUrl"]
    [requested] = [e for e in ledger(http, company_id, "connection.link_requested") if e.get("detail")]
    assert (requested["consentVersion"], requested["actor"]) == ("2026-02", "customer:customer-alice")
    assert "renew" in requested["detail"]
    # and authorizes it on the link page
    renewed_from = now(http).replace(microsecond=0)
    authorize_on_link_page(renewing.json()["linkUrl"])
    flush_codat(stack)
    renewed_by = now(http)

    # Then the renewal is recorded and the clock restarts: renewBy 83 days from the renewal
    [renewal] = ledger(http, company_id, "connection.renewed")
    bank = connection(http, company_id)
    assert bank["status"] == "Linked"
    new_renew_by = instant(bank["renewBy"])
    assert renewed_from + 83 * DAY <= new_renew_by <= renewed_by + 83 * DAY, (bank, renewed_from, renewed_by)
    assert instant(bank["consentExpiresAt"]) - new_renew_by == 7 * DAY
    assert (renewal["connectionId"], instant(renewal["renewBy"])) == (connection_id, new_renew_by)
    assert instant(renewal["consentExpiresAt"]) == instant(bank["consentExpiresAt"])

    # When the schedule runs again at once: nothing is due in the new period
    assert run_lifecycle(http)["sent"] == 0
    assert reminders(http, company_id) == [(14, renew_by), (1, renew_by)]

    # When the clock reaches the new period's 14-day point
    move_to(http, new_renew_by - 14 * DAY)
    assert run_lifecycle(http)["sent"] == 1

    # Then its own 14-day reminder goes, for the new renewBy
    assert reminders(http, company_id) == [(14, renew_by), (1, renew_by), (14, new_renew_by)]

    # And the stack's subscriber got each consent event of the clock, within the published contract
    assert stack.events_log is not None
    events_log = stack.events_log

    def published() -> list[dict[str, Any]]:
        return [
            event
            for event in events_log.events()
            if event.get("subject") == company_id
            and event["type"] in ("consent.connection.expiring", "consent.connection.renewed")
        ]

    wait_until(lambda: len(published()) == 4, "the reminders and the renewal at the subscriber")
    expiring = sorted(
        (e["data"]["reminderDays"], instant(e["data"]["renewBy"]))
        for e in published()
        if e["type"] == "consent.connection.expiring"
    )
    assert expiring == sorted([(14, renew_by), (1, renew_by), (14, new_renew_by)])
    [renewed_event] = [e for e in published() if e["type"] == "consent.connection.renewed"]
    assert renewed_event["data"]["connectionId"] == connection_id
    assert instant(renewed_event["data"]["renewBy"]) == new_renew_by
    assert not [
        line
        for line in events_log.violations
        if line.startswith(("consent.connection.expiring", "consent.connection.renewed"))
    ]


def test_the_clock_is_unknown_for_accounting_and_it_gets_no_reminder(http: httpx.Client, stack: DevStack) -> None:
    # Given a loan application with its bank and its accounting package linked
    created = http.post("/companies", json={"name": "Brick Lane Cycles", "journey": "loan_application"}, headers=ALICE)
    assert created.status_code == 201, created.text
    company_id = created.json()["companyId"]
    for platform_key in (BANK, "mqjo"):
        asked = http.post(f"/companies/{company_id}/connections", json={"platformKey": platform_key}, headers=ALICE)
        assert asked.status_code == 201, asked.text
        authorize_on_link_page(asked.json()["linkUrl"])
    flush_codat(stack)
    answer = http.get(f"/companies/{company_id}/connections", headers=ALICE)
    by_type = {c["sourceType"]: c for c in answer.json()["items"]}
    assert {c["status"] for c in by_type.values()} == {"Linked"}

    # Then the accounting connection has no clock (unknown is never a date); the bank's has
    assert "renewBy" not in by_type["accounting"]
    assert "consentExpiresAt" not in by_type["accounting"]
    renew_by = instant(by_type["banking"]["renewBy"])

    # When the clock passes the bank's 14-day point and the schedule runs
    move_to(http, renew_by - 14 * DAY + timedelta(minutes=1))
    run_lifecycle(http)

    # Then the bank alone is reminded
    [reminder] = ledger(http, company_id, "connection.expiring")
    assert reminder["connectionId"] == by_type["banking"]["connectionId"]


def test_ready_data_goes_stale_when_time_passes_freshness_announced_once_by_the_lifecycle_run(
    http: httpx.Client, stack: DevStack
) -> None:
    # Given a loan application whose bank and accounting package are linked, and their first reads done
    created = http.post("/companies", json={"name": "Mill Lane Joinery", "journey": "loan_application"}, headers=ALICE)
    assert created.status_code == 201, created.text
    company_id = created.json()["companyId"]
    for platform_key in (BANK, "mqjo"):
        asked = http.post(f"/companies/{company_id}/connections", json={"platformKey": platform_key}, headers=ALICE)
        assert asked.status_code == 201, asked.text
        authorize_on_link_page(asked.json()["linkUrl"])
    flush_codat(stack)

    # Then its data is ready until the oldest read grows 30 days old, and the history says so once, by Codat's read
    data = journey_data(http, company_id)
    assert data["status"] == "ready", data
    fresh_until = instant(data["freshUntil"])
    oldest = min(instant(t["lastReadAt"]) for t in data["types"])
    assert fresh_until == oldest + 30 * DAY
    [ready] = ledger(http, company_id, "journey.data_ready")
    assert (ready["entryId"], ready["actor"], ready["journey"]) == (
        "journey:loan_application:data_ready:1",
        "codat",
        "loan_application",
    )
    assert instant(ready["freshUntil"]) == fresh_until
    assert ledger(http, company_id, "journey.data_stale") == []

    # When the schedule runs a minute before freshUntil: the data is still fresh, nothing is announced
    move_to(http, fresh_until - timedelta(minutes=1))
    run_lifecycle(http)
    assert ledger(http, company_id, "journey.data_stale") == []

    # When the clock passes freshUntil and the schedule runs twice
    move_to(http, fresh_until + timedelta(minutes=1))
    run_lifecycle(http)
    run_lifecycle(http)

    # Then the data is stale, announced once, by the consent clock, when it happened: the oldest reads too old
    assert journey_data(http, company_id)["status"] == "stale"
    [stale] = ledger(http, company_id, "journey.data_stale")
    assert (stale["entryId"], stale["actor"], stale["journey"]) == (
        "journey:loan_application:data_stale:1",
        "consent-clock",
        "loan_application",
    )
    assert instant(stale["at"]) == fresh_until
    assert stale["staleTypes"] == [t["dataType"] for t in data["types"] if instant(t["lastReadAt"]) == oldest]
    assert len(ledger(http, company_id, "journey.data_ready")) == 1

    # And the stack's subscriber got both, within the published contract
    assert stack.events_log is not None
    events_log = stack.events_log
    data_events = ("consent.journey.data_ready", "consent.journey.data_stale")

    def published() -> list[dict[str, Any]]:
        return [e for e in events_log.events() if e.get("subject") == company_id and e["type"] in data_events]

    wait_until(lambda: len(published()) == 2, "data_ready and data_stale at the subscriber")
    by_type = {e["type"]: e for e in published()}
    assert set(by_type) == set(data_events)
    ready_event, stale_event = by_type["consent.journey.data_ready"], by_type["consent.journey.data_stale"]
    assert (ready_event["id"], ready_event["data"]["journey"]) == (ready["entryId"], "loan_application")
    assert instant(ready_event["data"]["freshUntil"]) == fresh_until
    assert (stale_event["id"], stale_event["data"]["actor"]) == (stale["entryId"], "consent-clock")
    assert stale_event["data"]["staleTypes"] == stale["staleTypes"]
    assert instant(stale_event["time"]) == fresh_until
    assert not [line for line in events_log.violations if line.startswith(data_events)]


def in_codat(stack: DevStack, company_id: str) -> dict[str, str] | None:
    """The company's connections as Codat (the simulator's API) lists them, by platform key; None: no such company."""
    assert stack.simulator is not None
    with httpx.Client(base_url=stack.codat_url, timeout=10.0) as codat:
        answer = codat.get(
            f"/companies/{company_id}/connections",
            params={"pageSize": "100"},
            headers={"Authorization": stack.simulator.authorization},
        )
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    return {c["integrationKey"]: c["status"] for c in answer.json()["results"]}


def test_a_one_off_credit_check_ends_consent_once_read_and_its_data_goes_30_days_later(
    http: httpx.Client, stack: DevStack
) -> None:
    # Given a credit check (one-off, its data kept 30 days) with her books and her bank linked and first read
    created = http.post("/companies", json={"name": "Harbour Chandlery", "journey": "credit_check"}, headers=ALICE)
    assert created.status_code == 201, created.text
    company_id = created.json()["companyId"]
    connection_ids = {}
    for platform_key in (BANK, "mqjo"):
        asked = http.post(f"/companies/{company_id}/connections", json={"platformKey": platform_key}, headers=ALICE)
        assert asked.status_code == 201, asked.text
        connection_ids[platform_key] = asked.json()["connectionId"]
        authorize_on_link_page(asked.json()["linkUrl"])
    flush_codat(stack)
    assert journey_status(http, company_id) == ("complete", "ready")
    assert statuses(http, company_id) == {BANK: "Linked", "mqjo": "Linked"}

    # When the lifecycle runs: its data was read, so her one-off consent is spent
    first = run_lifecycle(http)
    assert first["unlinked"] == 2, first
    flush_codat(stack)  # Codat's reports of the unlinks: confirmations, not news
    assert run_lifecycle(http)["unlinked"] == 0

    # Then both connections are Unlinked, here and in Codat, on her behalf, each recorded once
    assert statuses(http, company_id) == {BANK: "Unlinked", "mqjo": "Unlinked"}
    assert in_codat(stack, company_id) == {BANK: "Unlinked", "mqjo": "Unlinked"}
    fulfilled = ledger(http, company_id, "consent.fulfilled")
    assert sorted((e["connectionId"], e["actor"]) for e in fulfilled) == sorted(
        (cid, "customer:customer-alice") for cid in connection_ids.values()
    )
    ended = max(instant(e["at"]) for e in ledger(http, company_id, "codat.connection.unlinked") + fulfilled)

    # When the clock passes 30 days after consent ended, and the lifecycle runs twice
    move_to(http, ended + 31 * DAY)
    purging, after = run_lifecycle(http), run_lifecycle(http)
    flush_codat(stack)

    # Then each connection's data is deleted in Codat once, then the company with nothing left, by the consent clock
    assert (purging["purged"], purging["erased"], after["purged"], after["erased"]) == (2, 1, 0, 0)
    purged = ledger(http, company_id, "data.purged")
    assert sorted(str((e.get("connectionId"), e["actor"], e.get("retainDays"))) for e in purged) == sorted(
        [str((cid, "consent-clock", 30)) for cid in connection_ids.values()] + [str((None, "consent-clock", None))]
    )
    assert len({e["entryId"] for e in purged}) == 3
    [erased] = [e for e in purged if "connectionId" not in e]
    assert "erased in Codat" in erased["detail"]
    assert in_codat(stack, company_id) is None
    # our record and its history stay; its connections are gone; connecting again needs a new company
    assert statuses(http, company_id) == {}
    again = http.post(f"/companies/{company_id}/connections", json={"platformKey": BANK}, headers=ALICE)
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "company_data_purged"

    # And the stack's subscriber heard each unlink (as hers) and each purge, once, within the published contract
    assert stack.events_log is not None
    events_log = stack.events_log
    retention_events = ("consent.connection.unlinked", "consent.data.purged")

    def published() -> list[dict[str, Any]]:
        return [e for e in events_log.events() if e.get("subject") == company_id and e["type"] in retention_events]

    wait_until(lambda: len(published()) >= 5, "the unlinks and the purges at the subscriber")
    unlinked = [e for e in published() if e["type"] == "consent.connection.unlinked"]
    assert sorted((e["data"]["connectionId"], e["data"]["actor"]) for e in unlinked) == sorted(
        (cid, "customer:customer-alice") for cid in connection_ids.values()
    )
    purged_events = [e for e in published() if e["type"] == "consent.data.purged"]
    assert sorted(e["id"] for e in purged_events) == sorted(e["entryId"] for e in purged)
    assert not [line for line in events_log.violations if line.startswith(retention_events)]


def journey_status(http: httpx.Client, company_id: str) -> tuple[str, str]:
    """The company's one journey: its status and its data's."""
    answer = http.get(f"/companies/{company_id}", headers=ALICE)
    assert answer.status_code == 200, answer.text
    [journey] = answer.json()["journeys"]
    return journey["status"], journey["data"]["status"]


def statuses(http: httpx.Client, company_id: str) -> dict[str, str]:
    """The company's connections as our API lists them, by platform key."""
    answer = http.get(f"/companies/{company_id}/connections", headers=ALICE)
    assert answer.status_code == 200, answer.text
    return {c["platformKey"]: c["status"] for c in answer.json()["items"]}
