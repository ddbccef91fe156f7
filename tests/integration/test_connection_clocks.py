"""Each connection carries its consent clock (`consentExpiresAt`, `renewBy`) from the deployment's policy, kept by
every change that moves it: an authorization starts it, a re-consent restarts it, a sync moves an idle-sync clock,
a revoke ends it. Unknown stays absent."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consent.domain.consent_clock import ConsentClockPolicy
from consent.services import Services
from consent_dev.codat_simulator import CodatSimulator
from consent_dev.codat_webhooks import connection_event, read_event, signed
from consent_dev.local_api import LocalApi

ALICE = "customer-alice"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
DAY = timedelta(days=1)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def deliver(api: LocalApi) -> Callable[..., None]:
    count = iter(range(1000))

    def send(body: dict[str, Any]) -> None:
        raw, headers = signed(body, message_id=f"msg-clock-{next(count)}")
        response = api.post("/webhooks/codat", body=raw, headers=headers)
        assert response.status == 204, response.text

    return send


def connection(api: LocalApi, company_id: str, connection_id: str) -> dict[str, Any]:
    items = api.get(f"/companies/{company_id}/connections", customer=ALICE).body["items"]
    return dict(next(c for c in items if c["connectionId"] == connection_id))


def connect(api: LocalApi, company_id: str, platform_key: str) -> str:
    response = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": platform_key})
    assert response.status == 201, response.text
    return str(response.body["connectionId"])


def linked(company_id: str, connection_id: str, when: datetime, **kw: Any) -> dict[str, Any]:
    return connection_event(
        "connection.connected",
        company_id=company_id,
        connection_id=connection_id,
        status="Linked",
        generated=when,
        **kw,
    )


def test_an_authorized_bank_connection_lasts_90_days_and_is_to_be_renewed_a_week_early(
    api: LocalApi, new_company: Callable[..., Any], deliver: Callable[..., None]
) -> None:
    company_id = new_company(journey="onboarding")["companyId"]
    connection_id = connect(api, company_id, "qhnd")
    assert "renewBy" not in connection(api, company_id, connection_id)  # PendingAuth: nothing to lapse yet

    deliver(linked(company_id, connection_id, at(0)))

    found = connection(api, company_id, connection_id)
    assert datetime.fromisoformat(found["consentExpiresAt"]) == at(0) + 90 * DAY
    assert datetime.fromisoformat(found["renewBy"]) == at(0) + 83 * DAY
    # the company's own read embeds it too
    embedded = api.get(f"/companies/{company_id}", customer=ALICE).body["connections"][0]
    assert embedded["renewBy"] == found["renewBy"]


def test_a_re_consent_restarts_the_clock_and_a_revoke_ends_it(
    api: LocalApi, simulator: CodatSimulator, new_company: Callable[..., Any], deliver: Callable[..., None]
) -> None:
    company_id = new_company(journey="onboarding")["companyId"]
    connection_id = connect(api, company_id, "qhnd")
    simulator.set_connection_status(company_id, connection_id, "Linked")
    deliver(linked(company_id, connection_id, at(0)))

    deliver(
        connection_event(
            "connection.reconnected",
            company_id=company_id,
            connection_id=connection_id,
            status="Linked",
            generated=at(30),
        )
    )
    assert datetime.fromisoformat(connection(api, company_id, connection_id)["consentExpiresAt"]) == at(30) + 90 * DAY

    assert api.delete(f"/companies/{company_id}/connections/{connection_id}", customer=ALICE).status == 200
    revoked = connection(api, company_id, connection_id)
    assert revoked["status"] == "Unlinked"
    assert "consentExpiresAt" not in revoked
    assert "renewBy" not in revoked


def test_where_the_policy_knows_nothing_the_clock_stays_absent(
    api: LocalApi, new_company: Callable[..., Any], deliver: Callable[..., None]
) -> None:
    company_id = new_company(journey="loan_application")["companyId"]
    connection_id = connect(api, company_id, "mqjo")  # accounting: no idle-sync limit in the shipped policy
    deliver(
        linked(company_id, connection_id, at(0), integration_key="mqjo", source_type="Accounting", platform_name="x")
    )

    found = connection(api, company_id, connection_id)
    assert found["status"] == "Linked"
    assert "consentExpiresAt" not in found
    assert "renewBy" not in found


def test_a_sync_moves_an_idle_sync_clock(
    api: LocalApi,
    services: Services,
    new_company: Callable[..., Any],
    deliver: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a deployment whose policy knows this accounting platform revokes access after 60 days without a sync
    policy = ConsentClockPolicy.model_validate({"accounting": {"platforms": {"mqjo": {"idle_sync_days": 60}}}})
    monkeypatch.setattr(services, "catalog", dataclasses.replace(services.catalog, consent_clock=policy))
    company_id = new_company(journey="loan_application")["companyId"]
    connection_id = connect(api, company_id, "mqjo")
    deliver(
        linked(company_id, connection_id, at(0), integration_key="mqjo", source_type="Accounting", platform_name="x")
    )
    assert datetime.fromisoformat(connection(api, company_id, connection_id)["consentExpiresAt"]) == at(0) + 60 * DAY

    # When Codat reports a successful read later
    deliver(read_event(company_id=company_id, connection_ids=[connection_id], initial=True, generated=at(45)))

    # Then the clock counts from that sync
    assert datetime.fromisoformat(connection(api, company_id, connection_id)["consentExpiresAt"]) == at(45) + 60 * DAY


def _expiring(api: LocalApi, before: datetime | str, **query: str) -> Any:
    moment = before if isinstance(before, str) else before.isoformat().replace("+00:00", "Z")
    return api.get("/companies", customer=ALICE, query={"expiringBefore": moment, **query})


def test_the_companies_to_renew_before_a_date_page_like_the_others(
    api: LocalApi, new_company: Callable[..., Any], deliver: Callable[..., None]
) -> None:
    # Given three companies with a bank linked at different times, and one whose connection waits for her
    linked_at = {}
    for minutes in (0, 10, 20):
        company_id = new_company(journey="onboarding")["companyId"]
        deliver(linked(company_id, connect(api, company_id, "qhnd"), at(minutes)))
        linked_at[company_id] = at(minutes)
    waiting = new_company(journey="onboarding")["companyId"]
    connect(api, waiting, "qhnd")

    # When she asks which must be renewed before a date
    everything = _expiring(api, at(0) + 84 * DAY)
    only_the_first = _expiring(api, at(5) + 83 * DAY)
    none = _expiring(api, at(0) + 83 * DAY)  # renewBy is not before itself

    # Then only those, newest first, paged like the other lists
    assert everything.status == 200, everything.text
    assert [c["companyId"] for c in everything.body["items"]] == list(reversed(linked_at))
    assert [c["companyId"] for c in only_the_first.body["items"]] == [next(iter(linked_at))]
    assert none.body["items"] == []
    pages, cursor = [], None
    while True:
        page = _expiring(api, at(0) + 84 * DAY, limit="1", **({"cursor": cursor} if cursor else {}))
        pages.append([c["companyId"] for c in page.body["items"]])
        cursor = page.body.get("nextCursor")
        if cursor is None:
            break
    assert pages == [[company] for company in reversed(linked_at)]


@pytest.mark.parametrize("before", ["2027-02-31T00:00:00Z", "2027-03-01", "1700000000", "soon"])
def test_a_date_that_is_not_rfc_3339_is_422(api: LocalApi, before: str) -> None:
    response = _expiring(api, before)
    assert response.status == 422, response.text
    assert response.body["errors"][0]["field"] == "expiringBefore"
