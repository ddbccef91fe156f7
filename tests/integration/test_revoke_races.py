"""A revoke racing Codat's `connection.connected` webhook: whatever wins, our record ends as Codat's, the
consent ledger says what happened once, and a redelivery of the webhook changes nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consent_dev.codat_simulator import CodatSimulator
from consent_dev.codat_webhooks import connection_event, signed
from consent_dev.local_api import LocalApi

pytestmark = pytest.mark.integration

ALICE = "customer-alice"
ROUNDS = 8


def pending_connection(api: LocalApi, new_company: Callable[..., Any]) -> tuple[str, str]:
    company_id = new_company(journey="onboarding")["companyId"]
    created = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"})
    assert created.status == 201, created.text
    return company_id, created.body["connectionId"]


def connected_webhook(company_id: str, connection_id: str, *, generated: datetime) -> tuple[bytes, dict[str, str]]:
    body = connection_event(
        "connection.connected",
        company_id=company_id,
        connection_id=connection_id,
        status="Linked",
        generated=generated,
    )
    return signed(body, message_id=f"msg-connected-{connection_id}")


def our_status(api: LocalApi, company_id: str, connection_id: str) -> str:
    response = api.get(f"/companies/{company_id}/connections", customer=ALICE)
    assert response.status == 200, response.text
    [connection] = [c for c in response.body["items"] if c["connectionId"] == connection_id]
    return str(connection["status"])


def at_once(*calls: Callable[[], int]) -> list[int]:
    """The calls' answers, each call started on its own thread at the same moment."""
    start = threading.Barrier(len(calls))
    answers: list[int] = [0] * len(calls)

    def run(index: int) -> None:
        start.wait()
        answers[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def ledger_types(api: LocalApi, company_id: str) -> list[str]:
    return [e["type"] for e in api.get(f"/companies/{company_id}/events", customer=ALICE).body["items"]]


def assert_matches_codat(api: LocalApi, simulator: CodatSimulator, company_id: str, connection_id: str) -> str:
    codat = simulator.connection(company_id, connection_id).status
    assert our_status(api, company_id, connection_id) == codat
    revoked = ledger_types(api, company_id).count("consent.revoked")
    assert revoked == (1 if codat == "Unlinked" else 0)
    return codat


@pytest.mark.parametrize("attempt", range(ROUNDS))
def test_a_revoke_racing_the_connected_webhook_ends_as_codat_says(
    api: LocalApi, simulator: CodatSimulator, new_company: Callable[..., Any], attempt: int
) -> None:
    # Given the customer has just authorized a connection in Codat, whose webhook is on its way
    company_id, connection_id = pending_connection(api, new_company)
    simulator.set_connection_status(company_id, connection_id, "Linked")
    raw, headers = connected_webhook(company_id, connection_id, generated=datetime.now(UTC))

    # When she revokes it while the webhook arrives
    answers = at_once(
        lambda: api.post("/webhooks/codat", body=raw, headers=headers).status,
        lambda: api.delete(f"/companies/{company_id}/connections/{connection_id}", customer=ALICE).status,
    )

    # Then both are answered, and our record is Codat's: Unlinked (the revoke reached Codat), recorded once
    assert answers == [204, 200]
    assert assert_matches_codat(api, simulator, company_id, connection_id) == "Unlinked"

    # and Codat redelivering the webhook changes nothing
    assert api.post("/webhooks/codat", body=raw, headers=headers).status == 204
    assert assert_matches_codat(api, simulator, company_id, connection_id) == "Unlinked"


def test_a_connected_webhook_stamped_ahead_of_our_clock_does_not_undo_a_later_revoke(
    api: LocalApi, simulator: CodatSimulator, new_company: Callable[..., Any]
) -> None:
    # Given Codat's clock runs 3 s ahead of ours, and its connected webhook is applied first
    company_id, connection_id = pending_connection(api, new_company)
    simulator.set_connection_status(company_id, connection_id, "Linked")
    raw, headers = connected_webhook(company_id, connection_id, generated=datetime.now(UTC) + timedelta(seconds=3))
    assert api.post("/webhooks/codat", body=raw, headers=headers).status == 204
    assert our_status(api, company_id, connection_id) == "Linked"

    # When she revokes it at once (by our clock, before the webhook's time)
    response = api.delete(f"/companies/{company_id}/connections/{connection_id}", customer=ALICE)

    # Then the revoke counts after what we had seen: Unlinked here as in Codat, and a redelivery keeps it so
    assert response.status == 200, response.text
    assert response.body["status"] == "Unlinked"
    assert_matches_codat(api, simulator, company_id, connection_id)
    assert api.post("/webhooks/codat", body=raw, headers=headers).status == 204
    assert assert_matches_codat(api, simulator, company_id, connection_id) == "Unlinked"
