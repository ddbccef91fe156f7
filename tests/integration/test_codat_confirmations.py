"""Codat confirming what we did: its `connection.created` for a connection a customer's request created, its
unlink (or delete) webhook for a revoke (or withdrawal) of ours. A confirmation is recorded, never announced
again and never "late", whichever came first and however Codat's clock stamped it: the ledger reads as a clean
audit trail, each confirmation just after what it confirms. A truly late event still says so."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consent_dev.codat_webhooks import connection_event, signed
from consent_dev.local_api import LocalApi
from consent_dev.streams import StreamPump
from consent_dev.subscriber import EventsQueue

ALICE = "customer-alice"
SKEWS = {"Codat stamps it before our write": -0.05, "Codat's clock runs ahead of ours": 0.05}


def deliver(api: LocalApi, event_type: str, company_id: str, connection_id: str, status: str, **kw: Any) -> None:
    body = connection_event(event_type, company_id=company_id, connection_id=connection_id, status=status, **kw)
    raw, headers = signed(body, message_id=f"msg-{event_type}-{status}-{kw.get('generated', 'now')}")
    response = api.post("/webhooks/codat", body=raw, headers=headers)
    assert response.status == 204, response.text


def ledger(api: LocalApi, company_id: str) -> list[dict[str, Any]]:
    return list(api.get(f"/companies/{company_id}/events", customer=ALICE).body["items"])


def trail(api: LocalApi, company_id: str) -> list[tuple[str, str]]:
    """The connection's entries, in ledger order: (type, actor)."""
    return [(e["type"], e["actor"]) for e in ledger(api, company_id) if "connectionId" in e]


def assert_nothing_late(api: LocalApi, company_id: str) -> None:
    entries = ledger(api, company_id)
    assert not [e for e in entries if "arrived after" in (e.get("detail") or "")], entries
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)


def announced(outbox: StreamPump, events_queue: EventsQueue, company_id: str) -> list[tuple[str, str]]:
    outbox.drain()
    return [
        (m.event["type"], m.event["data"]["actor"])
        for m in events_queue.receive()
        if m.event["subject"] == company_id and "connectionId" in m.event["data"]
    ]


def status_of(api: LocalApi, company_id: str, connection_id: str) -> str:
    items = api.get(f"/companies/{company_id}/connections", customer=ALICE).body["items"]
    return str(next(c["status"] for c in items if c["connectionId"] == connection_id))


def at(offset: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=offset)


@pytest.fixture
def connected(api: LocalApi, new_company: Callable[..., Any]) -> Callable[[], tuple[str, str]]:
    def make() -> tuple[str, str]:
        company_id = new_company(journey="onboarding")["companyId"]
        response = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"})
        assert response.status == 201, response.text
        return company_id, response.body["connectionId"]

    return make


@pytest.mark.parametrize("skew", SKEWS.values(), ids=SKEWS.keys())
def test_codat_s_connection_created_after_our_write_reads_as_its_confirmation(
    api: LocalApi, connected: Callable[[], tuple[str, str]], outbox: StreamPump, events_queue: EventsQueue, skew: float
) -> None:
    company_id, connection_id = connected()

    deliver(api, "connection.created", company_id, connection_id, "PendingAuth", generated=at(skew))

    assert trail(api, company_id) == [
        ("connection.created", f"customer:{ALICE}"),
        ("codat.connection.created", "codat"),
    ]
    assert_nothing_late(api, company_id)
    assert announced(outbox, events_queue, company_id) == [("consent.connection.created", f"customer:{ALICE}")]


def test_codat_s_connection_created_applied_before_our_write_is_moved_after_it(
    api: LocalApi, services: Any, new_company: Callable[..., Any]
) -> None:
    company_id = new_company(journey="onboarding")["companyId"]
    create = services.codat.create_connection

    def create_then_deliver(*args: Any, **kwargs: Any) -> Any:
        created = create(*args, **kwargs)  # Codat's webhook, applied before Codat's answer reaches us
        deliver(api, "connection.created", company_id, created.id, "PendingAuth", generated=at(-0.01))
        return created

    services.codat.create_connection = create_then_deliver
    response = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"})

    assert response.status == 201, response.text
    assert trail(api, company_id) == [
        ("connection.created", f"customer:{ALICE}"),
        ("codat.connection.created", "codat"),
    ]
    assert_nothing_late(api, company_id)


@pytest.mark.parametrize("skew", SKEWS.values(), ids=SKEWS.keys())
def test_codat_s_unlink_webhook_after_a_revoke_reads_as_its_confirmation(
    api: LocalApi,
    connected: Callable[[], tuple[str, str]],
    authorize: Callable[..., None],
    outbox: StreamPump,
    events_queue: EventsQueue,
    skew: float,
) -> None:
    company_id, connection_id = connected()
    authorize(company_id, connection_id)
    assert api.delete(f"/companies/{company_id}/connections/{connection_id}", customer=ALICE).status == 200
    announced(outbox, events_queue, company_id)  # what the creation and the revoke announced

    deliver(api, "connection.disconnected", company_id, connection_id, "Unlinked", generated=at(skew))

    assert trail(api, company_id)[-2:] == [
        ("consent.revoked", f"customer:{ALICE}"),
        ("codat.connection.unlinked", "codat"),
    ]
    assert_nothing_late(api, company_id)
    assert status_of(api, company_id, connection_id) == "Unlinked"
    assert announced(outbox, events_queue, company_id) == []  # confirmed, not announced again


def test_codat_s_unlink_webhook_applied_before_the_revoke_writes_still_records_her_revoke(
    api: LocalApi,
    services: Any,
    connected: Callable[[], tuple[str, str]],
    authorize: Callable[..., None],
    outbox: StreamPump,
    events_queue: EventsQueue,
) -> None:
    company_id, connection_id = connected()
    authorize(company_id, connection_id)
    announced(outbox, events_queue, company_id)
    unlink = services.codat.unlink_connection

    def unlink_then_deliver(*args: Any, **kwargs: Any) -> Any:
        unlinked = unlink(*args, **kwargs)
        deliver(api, "connection.disconnected", company_id, connection_id, "Unlinked", generated=at(-0.01))
        return unlinked

    services.codat.unlink_connection = unlink_then_deliver
    response = api.delete(f"/companies/{company_id}/connections/{connection_id}", customer=ALICE)

    assert response.status == 200, response.text
    assert response.body["status"] == "Unlinked"
    entries = trail(api, company_id)
    assert entries[-2:] == [("consent.revoked", f"customer:{ALICE}"), ("codat.connection.unlinked", "codat")]
    assert ("connection.unlinked", "codat") not in entries
    assert_nothing_late(api, company_id)
    # Codat's webhook was announced when it was applied (nothing had told us it was ours yet); hers follows
    assert announced(outbox, events_queue, company_id) == [
        ("consent.connection.unlinked", "codat"),
        ("consent.connection.unlinked", f"customer:{ALICE}"),
    ]


@pytest.mark.parametrize("at_once", [False, True], ids=["webhook after the write", "webhook before the write"])
def test_codat_s_delete_webhook_after_a_withdrawal_reads_as_its_confirmation(
    api: LocalApi, services: Any, connected: Callable[[], tuple[str, str]], at_once: bool
) -> None:
    company_id, connection_id = connected()  # PendingAuth: revoking it deletes it in Codat
    if at_once:
        delete = services.codat.delete_connection

        def delete_then_deliver(*args: Any, **kwargs: Any) -> Any:
            deleted = delete(*args, **kwargs)
            deliver(api, "connection.deleted", company_id, connection_id, "PendingAuth", generated=at(-0.01))
            return deleted

        services.codat.delete_connection = delete_then_deliver
    assert api.delete(f"/companies/{company_id}/connections/{connection_id}", customer=ALICE).status == 200
    if not at_once:
        deliver(api, "connection.deleted", company_id, connection_id, "PendingAuth", generated=at(-0.01))

    assert trail(api, company_id)[-2:] == [
        ("consent.withdrawn", f"customer:{ALICE}"),
        ("codat.connection.deleted", "codat"),
    ]
    assert_nothing_late(api, company_id)


def test_an_unlink_reported_after_a_newer_authorization_is_still_late(
    api: LocalApi, connected: Callable[[], tuple[str, str]], authorize: Callable[..., None]
) -> None:
    # Given a connection revoked, then authorized again (a fresh link for it)
    company_id, connection_id = connected()
    authorize(company_id, connection_id)
    before_revoke = at(0)
    assert api.delete(f"/companies/{company_id}/connections/{connection_id}", customer=ALICE).status == 200
    deliver(api, "connection.connected", company_id, connection_id, "Linked", generated=at(0.05))

    # When an unlink Codat stamped before the revoke arrives now
    deliver(api, "connection.disconnected", company_id, connection_id, "Unlinked", generated=before_revoke)

    # Then it confirms nothing of ours: it is late, and the connection stays Linked
    late = [e for e in ledger(api, company_id) if e["type"] == "connection.unlinked"]
    assert len(late) == 1
    assert late[0]["detail"].startswith("arrived after a newer event")
    assert status_of(api, company_id, connection_id) == "Linked"
