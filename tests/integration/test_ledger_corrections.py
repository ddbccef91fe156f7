"""A ledger entry corrected in place (`Change.replaced`): the same key, the new content, never published again,
and never a new entry when the one to correct is missing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from consent.domain.records import LedgerRecord
from consent.store import Change, ConflictError
from consent.store.dynamodb import DynamoDBConsentStore
from consent_dev.local_api import LocalApi

pytestmark = pytest.mark.integration

ALICE = "customer-alice"
AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _entry(company_id: str, type_: str) -> LedgerRecord:
    return LedgerRecord(
        entry_id="webhook:msg-1", at=AT, type=type_, actor="codat", company_id=company_id, customer_id=ALICE
    )


def test_a_replaced_entry_keeps_its_place_and_says_the_new_thing(
    api: LocalApi, store: DynamoDBConsentStore, new_company: Any
) -> None:
    company_id = new_company()["companyId"]
    store.commit(Change(ledger=[_entry(company_id, "connection.created")]))

    store.commit(Change(replaced=[_entry(company_id, "codat.connection.created")]))

    ledger = store.list_ledger(ALICE, company_id, limit=100, cursor=None).items
    assert [(e.entry_id, e.type) for e in ledger if e.entry_id == "webhook:msg-1"] == [
        ("webhook:msg-1", "codat.connection.created")
    ]


def test_replacing_an_entry_that_is_not_there_writes_nothing(
    store: DynamoDBConsentStore, new_company: Any, table_items: Any
) -> None:
    company_id = new_company()["companyId"]
    before = table_items()

    with pytest.raises(ConflictError):
        store.commit(Change(replaced=[_entry(company_id, "codat.connection.created")]))

    assert table_items() == before
