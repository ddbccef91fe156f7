"""A change too large for one DynamoDB transaction is split: every item once, no part over the limit, each
connection with its own ledger entries, and the company, the rest of the ledger and the webhook id last."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.domain.records import CompanyRecord, ConnectionRecord, LedgerKey, LedgerRecord
from consent.domain.resources import ConnectionStatus, SourceType
from consent.store import Change

T0 = datetime(2026, 11, 1, tzinfo=UTC)
COMPANY = CompanyRecord(company_id="co", customer_id="alice", name="Acme", created_at=T0, updated_at=T0)


def connection(n: int) -> ConnectionRecord:
    return ConnectionRecord(
        connection_id=f"conn-{n}",
        company_id="co",
        customer_id="alice",
        company_created_at=T0,
        platform_key="qhnd",
        platform_name="Bank",
        source_type=SourceType.BANKING,
        status=ConnectionStatus.LINKED,
        created_at=T0,
    )


def entry(entry_id: str, connection_id: str | None = None) -> LedgerRecord:
    return LedgerRecord(
        entry_id=entry_id, at=T0, type="connection.deleted", actor="codat", company_id="co", connection_id=connection_id
    )


def change(added: int, updated: int, entries_each: list[int], milestones: int, retracted: int) -> Change:
    connections = [connection(n) for n in range(added + updated)]
    ledger = [
        entry(f"e-{c.connection_id}-{k}", c.connection_id)
        for c, count in zip(connections, entries_each, strict=False)
        for k in range(count)
    ]
    ledger += [entry(f"milestone-{k}") for k in range(milestones)]
    return Change(
        company=COMPANY,
        added=connections[:added],
        updated=connections[added:],
        ledger=ledger,
        retracted=[LedgerKey(T0, 5, f"gone-{k}") for k in range(retracted)],
        webhook_id="msg_1",
    )


def ids(part: Change) -> list[str]:
    return [c.connection_id for c in [*part.added, *part.updated]]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    added=st.integers(0, 60),
    updated=st.integers(0, 160),
    entries_each=st.lists(st.integers(0, 3), min_size=220, max_size=220),
    milestones=st.integers(0, 4),
    retracted=st.integers(0, 3),
    max_items=st.sampled_from([25, 100]),
)
def test_every_item_goes_once_in_a_part_that_fits_with_its_connection_and_the_company_last(
    added: int, updated: int, entries_each: list[int], milestones: int, retracted: int, max_items: int
) -> None:
    whole = change(added, updated, entries_each, milestones, retracted)

    parts = whole.parts(max_items)

    assert all(part.items <= max_items for part in parts)
    assert sum(part.items for part in parts) == whole.items
    assert sorted(c for part in parts for c in ids(part)) == sorted(ids(whole))
    assert sorted(e.entry_id for part in parts for e in part.ledger) == sorted(e.entry_id for e in whole.ledger)
    added_ids = {c.connection_id for c in whole.added}
    for part in parts:
        assert {c.connection_id for c in part.added} <= added_ids
        assert not {c.connection_id for c in part.updated} & added_ids
        mine = set(ids(part))
        assert all(e.connection_id in mine for e in part.ledger if e.connection_id is not None)
    *earlier, last = parts
    assert (last.company, last.webhook_id, list(last.retracted)) == (whole.company, "msg_1", list(whole.retracted))
    assert [e.entry_id for e in last.ledger if e.connection_id is None] == [f"milestone-{k}" for k in range(milestones)]
    assert all(p.company is None and p.webhook_id is None and not p.retracted for p in earlier)
    if whole.items <= max_items:
        assert parts == [whole]


def test_a_change_whose_company_part_alone_is_too_large_is_refused() -> None:
    with pytest.raises(ValueError, match="company"):
        change(0, 1, [1], milestones=30, retracted=0).parts(25)


def test_replaced_entries_count_and_go_with_the_company_in_the_last_part() -> None:
    replaced = [entry("created-by-codat", "conn-0")]
    whole = Change(company=COMPANY, updated=[connection(n) for n in range(150)], replaced=replaced)

    parts = whole.parts(100)

    assert whole.items == 152
    assert [list(p.replaced) for p in parts] == [[], replaced]
    assert parts[-1].company == COMPANY
