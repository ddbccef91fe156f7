"""The store port's guarantees, held by every store: the DynamoDB store (on the embedded moto) and the in-memory
FakeStore the bench times handlers with (`consent_dev.fake_store`). Each test runs against both, so that the fake
cannot drift from what the product relies on: conditional versions, all-or-nothing changes, idempotency keys,
exactly-once webhooks, owner checks, pages and their order, erasure, quotas, reconciliation's passes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from consent.domain.records import CompanyRecord, ConnectionRecord, LedgerKey, LedgerRecord
from consent.domain.resources import ConnectionStatus, LedgerEntryType, SourceType
from consent.store import (
    Change,
    ConflictError,
    ConsentStore,
    CursorError,
    IdempotencyOutcome,
    ParkedWebhook,
    QuotaExceeded,
)
from consent.store.port import IdempotencyResult, Page
from consent_dev.fake_store import FakeStore

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
ALICE, BOB = "customer-alice", "customer-bob"
SCOPE = "POST /companies"
T = TypeVar("T")


@pytest.fixture(params=["dynamodb", "fake"])
def store(request: pytest.FixtureRequest) -> ConsentStore:
    """Each store the port has: the conftest's DynamoDB store on moto, and the bench's fake."""
    if request.param == "fake":
        return FakeStore()
    dynamodb: ConsentStore = request.getfixturevalue("store")
    return dynamodb


def company(customer: str = ALICE, *, created: datetime = T0, company_id: str | None = None) -> CompanyRecord:
    return CompanyRecord(
        company_id=company_id or str(uuid.uuid4()),
        customer_id=customer,
        name="Acme Bakery Ltd",
        created_at=created,
        updated_at=created,
    )


def connection(owner: CompanyRecord, connection_id: str | None = None) -> ConnectionRecord:
    return ConnectionRecord(
        connection_id=connection_id or str(uuid.uuid4()),
        company_id=owner.company_id,
        customer_id=owner.customer_id,
        company_created_at=owner.created_at,
        platform_key="qhnd",
        platform_name="Bank",
        source_type=SourceType.BANKING,
        status=ConnectionStatus.PENDING_AUTH,
        created_at=owner.created_at,
    )


def entry(owner: CompanyRecord, *, at: datetime = T0, seq: int = 0, entry_id: str | None = None) -> LedgerRecord:
    return LedgerRecord(
        entry_id=entry_id or str(uuid.uuid4()),
        at=at,
        seq=seq,
        type=LedgerEntryType.CONNECTION_CREATED,
        actor="customer",
        company_id=owner.company_id,
        customer_id=owner.customer_id,
    )


def tombstone(owner: CompanyRecord) -> LedgerRecord:
    return LedgerRecord(
        entry_id=str(uuid.uuid4()),
        at=T0 + timedelta(days=1),
        type=LedgerEntryType.COMPANY_ERASED,
        actor="customer",
        company_id=owner.company_id,
        customer_id=owner.customer_id,
    )


def created(store: ConsentStore, customer: str = ALICE, **options: Any) -> CompanyRecord:
    record = company(customer, **options)
    store.create_company(record, [], None)
    return record


def every_page(read: Callable[[str | None], Page[T] | None]) -> list[T]:
    """Every item of a listing, page after page, from the first to the one without a next cursor."""
    items: list[T] = []
    cursor: str | None = None
    for _ in range(100):
        page = read(cursor)
        assert page is not None
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor
    raise AssertionError("the listing never ended")


# -- versions and all-or-nothing changes -------------------------------------------------------------------------


def test_a_change_saves_at_the_version_it_read_and_a_stale_one_changes_nothing(store: ConsentStore) -> None:
    record = created(store)
    renamed = record.model_copy(update={"name": "Acme Bakery Group"})
    store.commit(Change(company=renamed, ledger=[entry(record)]))

    saved = store.get_company(ALICE, record.company_id)
    assert saved is not None
    assert (saved.company.name, saved.company.version) == ("Acme Bakery Group", 2)

    # A writer that read version 1 too: refused whole, its ledger entry included
    stale = record.model_copy(update={"name": "Stale Ltd"})
    with pytest.raises(ConflictError):
        store.commit(Change(company=stale, ledger=[entry(record, entry_id="never-written")]))
    after = store.get_company(ALICE, record.company_id)
    assert after is not None
    assert (after.company.name, after.company.version) == ("Acme Bakery Group", 2)
    ledger = store.list_ledger(ALICE, record.company_id, limit=10, cursor=None)
    assert ledger is not None
    assert "never-written" not in [e.entry_id for e in ledger.items]


def test_connections_are_added_once_and_updated_at_the_version_they_were_read(store: ConsentStore) -> None:
    record = created(store)
    new = connection(record, "conn-1")
    store.commit(Change(added=[new]))
    with pytest.raises(ConflictError):
        store.commit(Change(added=[new]))  # it exists now

    linked = new.model_copy(update={"status": ConnectionStatus.LINKED})
    store.commit(Change(updated=[linked]))
    with pytest.raises(ConflictError):
        store.commit(Change(updated=[new.model_copy(update={"status": ConnectionStatus.UNLINKED})]))

    view = store.get_company_by_id(record.company_id)
    assert view is not None
    [saved] = view.connections
    assert (saved.status, saved.version) == (ConnectionStatus.LINKED, 2)


def test_a_change_that_fails_anywhere_writes_nothing(store: ConsentStore) -> None:
    record = created(store)
    existing = connection(record, "conn-1")
    store.commit(Change(added=[existing]))

    with pytest.raises(ConflictError):
        store.commit(
            Change(
                company=record,
                added=[connection(record, "conn-2"), existing],
                ledger=[entry(record, entry_id="e-1")],
                webhook_id="msg-atomic",
            )
        )

    view = store.get_company_by_id(record.company_id)
    assert view is not None
    assert view.company.version == 1
    assert [c.connection_id for c in view.connections] == ["conn-1"]
    ledger = store.list_ledger(ALICE, record.company_id, limit=10, cursor=None)
    assert ledger is not None
    assert ledger.items == []
    assert not store.webhook_seen("msg-atomic")


def test_ledger_entries_are_appended_once_retracted_and_replaced_in_place(store: ConsentStore) -> None:
    record = created(store)
    first, second = entry(record, seq=0, entry_id="e-1"), entry(record, seq=1, entry_id="e-2")
    store.commit(Change(ledger=[first, second]))
    with pytest.raises(ConflictError):
        store.commit(Change(ledger=[first]))  # the same key twice

    corrected = second.model_copy(update={"detail": "corrected"})
    store.commit(
        Change(company=record, retracted=[LedgerKey(first.at, first.seq, first.entry_id)], replaced=[corrected])
    )
    ledger = store.list_ledger(ALICE, record.company_id, limit=10, cursor=None)
    assert ledger is not None
    assert [(e.entry_id, e.detail) for e in ledger.items] == [("e-2", "corrected")]

    missing = entry(record, seq=2, entry_id="never-written")
    with pytest.raises(ConflictError):
        store.commit(Change(replaced=[missing]))  # a replacement needs the entry


# -- webhooks: exactly once ---------------------------------------------------------------------------------------


def test_a_webhook_id_is_applied_or_parked_once(store: ConsentStore) -> None:
    record = created(store)
    assert not store.webhook_seen("msg-1")
    store.commit(Change(ledger=[entry(record)], webhook_id="msg-1"))
    assert store.webhook_seen("msg-1")
    with pytest.raises(ConflictError):
        store.commit(Change(ledger=[entry(record)], webhook_id="msg-1"))

    parked = ParkedWebhook("msg-2", "company.product.added", "2026-11-01T09:30:00Z", "not handled", record.company_id)
    store.park_webhook(parked)
    assert store.webhook_seen("msg-2")
    with pytest.raises(ConflictError):
        store.park_webhook(parked)
    with pytest.raises(ConflictError):
        store.commit(Change(ledger=[entry(record)], webhook_id="msg-2"))
    ledger = store.list_ledger(ALICE, record.company_id, limit=10, cursor=None)
    assert ledger is not None
    assert len(ledger.items) == 1


# -- idempotency keys -------------------------------------------------------------------------------------------


def test_an_idempotency_key_is_claimed_once_then_replays_its_answer(store: ConsentStore) -> None:
    claim = store.claim_idempotency_key(SCOPE, "key-1", "fp-1")
    assert claim.outcome == IdempotencyOutcome.ACQUIRED
    assert claim.token is not None
    assert not claim.previous_attempt_reached_codat
    assert store.claim_idempotency_key(SCOPE, "key-1", "fp-1").outcome == IdempotencyOutcome.IN_PROGRESS
    assert store.claim_idempotency_key(SCOPE, "key-1", "fp-2").outcome == IdempotencyOutcome.MISMATCH
    # Scoped: the same key in another scope is another key
    assert store.claim_idempotency_key("POST /other", "key-1", "fp-1").outcome == IdempotencyOutcome.ACQUIRED

    record = company()
    store.create_company(record, [], IdempotencyResult(SCOPE, "key-1", claim.token, 201, '{"companyId": "x"}'))

    replay = store.claim_idempotency_key(SCOPE, "key-1", "fp-1")
    assert (replay.outcome, replay.status, replay.body) == (IdempotencyOutcome.REPLAY, 201, '{"companyId": "x"}')
    assert store.idempotency_key_state(SCOPE, "key-1", "fp-1").outcome == IdempotencyOutcome.REPLAY
    assert store.idempotency_key_state(SCOPE, "key-1", "fp-2").outcome == IdempotencyOutcome.MISMATCH
    assert store.idempotency_key_state(SCOPE, "unknown", "fp-1").outcome == IdempotencyOutcome.IN_PROGRESS


def test_a_released_key_can_be_claimed_again_and_remembers_that_codat_was_reached(store: ConsentStore) -> None:
    first = store.claim_idempotency_key(SCOPE, "key-1", "fp-1")
    assert first.token is not None
    store.release_idempotency_key(SCOPE, "key-1", "not-the-token", reached_codat=True)  # not the holder's: ignored
    assert store.claim_idempotency_key(SCOPE, "key-1", "fp-1").outcome == IdempotencyOutcome.IN_PROGRESS

    store.release_idempotency_key(SCOPE, "key-1", first.token, reached_codat=True)
    assert store.claim_idempotency_key(SCOPE, "key-1", "fp-2").outcome == IdempotencyOutcome.MISMATCH
    second = store.claim_idempotency_key(SCOPE, "key-1", "fp-1")
    assert second.outcome == IdempotencyOutcome.ACQUIRED
    assert second.previous_attempt_reached_codat
    assert second.token != first.token

    # The first attempt's token no longer completes the key: its company is not written
    with pytest.raises(ConflictError):
        store.create_company(company(), [], IdempotencyResult(SCOPE, "key-1", first.token, 201, "{}"))
    assert store.customer_companies(ALICE) == 0


# -- companies, owners and quotas ---------------------------------------------------------------------------------


def test_a_company_is_its_owner_s_only(store: ConsentStore) -> None:
    record = created(store)
    with pytest.raises(ConflictError):
        store.create_company(record, [], None)

    assert store.company_owner(record.company_id) == ALICE
    assert store.company_owner("no-such-company") is None
    view = store.get_company(ALICE, record.company_id)
    assert view is not None
    assert view.company.company_id == record.company_id
    assert store.get_company(BOB, record.company_id) is None
    assert store.get_company_by_id(record.company_id) is not None  # for Codat's webhooks: whoever owns it
    assert store.list_connections(BOB, record.company_id, limit=10, cursor=None) is None
    assert store.list_ledger(BOB, record.company_id, limit=10, cursor=None) is None
    assert store.list_companies(BOB, limit=10, cursor=None).items == []


def test_the_company_quota_refuses_one_too_many_and_counts_nothing(store: ConsentStore) -> None:
    created(store)
    created(store)
    assert store.customer_companies(ALICE) == 2

    with pytest.raises(QuotaExceeded) as refused:
        store.create_company(company(), [], None, max_companies=2)
    assert refused.value.kind == "companies"
    assert store.customer_companies(ALICE) == 2
    assert len(store.list_companies(ALICE, limit=10, cursor=None).items) == 2
    store.create_company(company(BOB), [], None, max_companies=2)  # another customer's own count


def test_the_codat_allowance_refuses_beyond_its_limits_and_counts_nothing_then(store: ConsentStore) -> None:
    now = datetime(2026, 11, 1, 9, 30, 15, tzinfo=UTC)
    for _ in range(2):
        store.spend_codat_allowance(ALICE, now, per_minute=2, per_day=3)
    with pytest.raises(QuotaExceeded) as minute:
        store.spend_codat_allowance(ALICE, now, per_minute=2, per_day=3)
    assert minute.value.kind == "codat_requests_per_minute"
    assert minute.value.retry_after is not None
    assert 0 < minute.value.retry_after <= 60

    later = now + timedelta(minutes=1)
    store.spend_codat_allowance(ALICE, later, per_minute=2, per_day=3)  # the refusal counted nothing
    with pytest.raises(QuotaExceeded) as day:
        store.spend_codat_allowance(ALICE, later + timedelta(minutes=1), per_minute=2, per_day=3)
    assert day.value.kind == "codat_requests_per_day"
    store.spend_codat_allowance(BOB, later, per_minute=2, per_day=3)  # each customer their own


# -- pages ----------------------------------------------------------------------------------------------------------


def test_companies_page_newest_first(store: ConsentStore) -> None:
    mine = [created(store, created=T0 + timedelta(minutes=n)) for n in range(5)]
    created(store, BOB)

    listed = every_page(lambda cursor: store.list_companies(ALICE, limit=2, cursor=cursor))

    assert [view.company.company_id for view in listed] == [c.company_id for c in reversed(mine)]


def test_a_listed_or_read_company_embeds_its_first_connections_and_says_where_the_rest_start(
    store: ConsentStore,
) -> None:
    record = created(store)
    ids = sorted(str(uuid.uuid4()) for _ in range(3))
    store.commit(Change(added=[connection(record, i) for i in ids]))

    read = store.get_company(ALICE, record.company_id, connections_limit=2)
    [listed] = store.list_companies(ALICE, limit=10, cursor=None, connections_limit=2).items

    for view in (read, listed):
        assert view is not None
        assert [c.connection_id for c in view.connections] == ids[:2]
        assert view.connections_cursor is not None
        rest = store.list_connections(ALICE, record.company_id, limit=10, cursor=view.connections_cursor)
        assert rest is not None
        assert [c.connection_id for c in rest.items] == ids[2:]
    whole = store.get_company(ALICE, record.company_id, connections_limit=3)
    assert whole is not None
    assert [c.connection_id for c in whole.connections] == ids
    if whole.connections_cursor is not None:  # a cursor may lead to an empty page, never to more than there is
        rest = store.list_connections(ALICE, record.company_id, limit=10, cursor=whole.connections_cursor)
        assert rest is not None
        assert rest.items == []


def test_connections_page_in_id_order_without_the_deleted(store: ConsentStore) -> None:
    record = created(store)
    ids = sorted(str(uuid.uuid4()) for _ in range(5))
    store.commit(Change(added=[connection(record, i) for i in ids]))
    gone = connection(record, ids[1]).model_copy(update={"deleted": True})
    store.commit(Change(updated=[gone]))

    listed = every_page(lambda cursor: store.list_connections(ALICE, record.company_id, limit=2, cursor=cursor))

    assert [c.connection_id for c in listed] == [ids[0], *ids[2:]]


def test_the_ledger_pages_oldest_first_in_the_order_of_each_moment(store: ConsentStore) -> None:
    record = created(store)
    entries = [
        entry(record, at=T0 + timedelta(seconds=1), seq=0, entry_id="b"),
        entry(record, at=T0, seq=1, entry_id="a-second"),
        entry(record, at=T0, seq=0, entry_id="z-first"),
        entry(record, at=T0 + timedelta(seconds=2), seq=0, entry_id="c"),
    ]
    store.commit(Change(ledger=entries))

    listed = every_page(lambda cursor: store.list_ledger(ALICE, record.company_id, limit=3, cursor=cursor))

    assert [e.entry_id for e in listed] == ["z-first", "a-second", "b", "c"]


@pytest.mark.parametrize("cursor", ["", "not a cursor", "2026-11-01T09:30:00Z_x", "../x"])
def test_a_cursor_the_store_did_not_issue_is_refused(store: ConsentStore, cursor: str) -> None:
    record = created(store)
    with pytest.raises(CursorError):
        store.list_companies(ALICE, limit=10, cursor=cursor)
    with pytest.raises(CursorError):
        store.list_ledger(ALICE, record.company_id, limit=10, cursor=cursor)
    with pytest.raises(CursorError):
        store.list_connections(ALICE, record.company_id, limit=10, cursor=cursor)
    with pytest.raises(CursorError):
        store.sweep_companies(cursor, limit=10)


# -- erasure -------------------------------------------------------------------------------------------------------


def test_an_erased_company_is_gone_with_its_count_and_its_create_key_stays_spent(store: ConsentStore) -> None:
    claim = store.claim_idempotency_key(SCOPE, "key-1", "fp-1")
    assert claim.token is not None
    record = company()
    store.create_company(record, [entry(record)], IdempotencyResult(SCOPE, "key-1", claim.token, 201, "{}"))
    store.commit(Change(added=[connection(record)], webhook_id="msg-1"))

    store.erase_company(record.company_id, tombstone(record))

    assert store.get_company(ALICE, record.company_id) is None
    assert store.get_company_by_id(record.company_id) is None
    assert store.company_owner(record.company_id) is None
    assert store.list_ledger(ALICE, record.company_id, limit=10, cursor=None) is None
    assert store.list_companies(ALICE, limit=10, cursor=None).items == []
    assert store.customer_companies(ALICE) == 0
    assert store.webhook_seen("msg-1")  # a redelivery after the erasure changes nothing either
    assert not store.finish_erasure(ALICE, record.company_id)  # nothing left to finish
    for fingerprint in ("fp-1", "fp-2"):
        assert store.claim_idempotency_key(SCOPE, "key-1", fingerprint).outcome == IdempotencyOutcome.ERASED
    store.erase_company(record.company_id, tombstone(record))  # again: nothing to do


# -- reconciliation ------------------------------------------------------------------------------------------------


def test_a_sweep_visits_every_company_once_and_resumes_where_it_stopped(store: ConsentStore) -> None:
    records = [created(store, customer) for customer in (ALICE, ALICE, BOB, BOB, ALICE)]
    store.commit(Change(added=[connection(records[0])], ledger=[entry(records[0])]))  # items that are not companies

    swept = every_page(lambda cursor: store.sweep_companies(cursor, limit=2))
    assert sorted(swept) == sorted(r.company_id for r in records)

    resumed = every_page(lambda cursor: store.sweep_companies(cursor or store.sweep_cursor_after(swept[1]), limit=2))
    assert resumed == swept[2:]

    assert store.reconcile_cursor() is None
    position = store.sweep_cursor_after(swept[0])
    store.save_reconcile_cursor(position)
    assert store.reconcile_cursor() == position
    store.save_reconcile_cursor(None)
    assert store.reconcile_cursor() is None


# -- the consent clock ----------------------------------------------------------------------------------------


def test_due_connections_are_read_oldest_first_from_their_index_and_move_or_leave_it(store: ConsentStore) -> None:
    owner = created(store)
    due_at = [T0 + timedelta(days=d) for d in (3, 1, 2, 9)]
    connections = [connection(owner).model_copy(update={"remind_at": at}) for at in due_at]
    gone = connection(owner).model_copy(update={"remind_at": T0, "deleted": True})
    never = connection(owner)  # no reminder to come: not in the index at all
    store.commit(Change(added=[*connections, gone, never]))

    def due(until: datetime) -> list[tuple[str, datetime]]:
        found = [d for d in store.due_lifecycle(until) if d.company_id == owner.company_id]
        return [(d.connection_id, d.due_at) for d in found]

    # what is due by then; not the later one, nor a deleted connection's
    until = T0 + timedelta(days=3)
    expected = sorted(((c.connection_id, c.remind_at) for c in connections[:3]), key=lambda pair: pair[1])
    assert due(until) == expected  # oldest due first, across the index's shards
    # a reminder sent: the connection's next one moves it later, its last one takes it out
    first = store.get_company_by_id(owner.company_id)
    assert first is not None
    stored = {c.connection_id: c for c in first.connections}
    moved = stored[connections[1].connection_id].model_copy(update={"remind_at": T0 + timedelta(days=30)})
    done = stored[connections[2].connection_id].model_copy(update={"remind_at": None})
    store.commit(Change(updated=[moved, done]))
    assert due(until) == [(connections[0].connection_id, due_at[0])]
    assert (moved.connection_id, T0 + timedelta(days=30)) in due(T0 + timedelta(days=30))
    # a keep-alive refresh due puts a connection in it too, at the sooner of its two times
    refreshed = moved.model_copy(update={"refresh_at": T0 + timedelta(days=2), "version": moved.version + 1})
    store.commit(Change(updated=[refreshed]))
    assert due(until) == [(moved.connection_id, T0 + timedelta(days=2)), (connections[0].connection_id, due_at[0])]


def test_the_day_s_keep_alive_requests_are_counted_up_to_their_limit(store: ConsentStore) -> None:
    day = f"2099-01-{uuid.uuid4().int % 28 + 1:02d}-{uuid.uuid4().hex[:6]}"  # a day of this test's own
    assert [store.spend_keep_alive_request(day, 2) for _ in range(3)] == [True, True, False]
    assert store.spend_keep_alive_request(day + "-next", 2)
    assert not store.spend_keep_alive_request(day + "-none", 0)
