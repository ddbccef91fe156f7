"""Consent events: which ledger entries publish what, the CloudEvents envelope, SNS attributes, no personal data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from consent.domain.ledger import entry
from consent.domain.records import CompanyRecord, LedgerRecord
from consent.domain.resources import Actor, ConnectionStatus, JourneyProgress, JourneyStatus, SourceType
from consent.events import (
    EVENT_CATALOG,
    LEDGER_EVENT_TYPES,
    MAX_DETAIL_CHARS,
    MAX_EVENT_BYTES,
    ConnectionEventData,
    ConsentEventType,
    EventOutOfContract,
    EventTooLarge,
    dataschema,
    to_cloud_event,
)

pytestmark = pytest.mark.unit

SOURCE = "urn:example-bank:consent"
AT = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)

# Personal data a company carries, and secrets a journey handles: none may ever reach an event.
PLANTED = {
    "name": "Planted Bakery Name Ltd",
    "description": "planted-description-text",
    "external_ref": "planted-external-ref-42",
    "link_url": "https://link.codat.io/planted-link-url",
    "access_token": "planted-access-token-value",
}


def company(**fields: Any) -> CompanyRecord:
    return CompanyRecord(
        company_id="company-1",
        customer_id="customer-1",
        name=PLANTED["name"],
        description=PLANTED["description"],
        external_ref=PLANTED["external_ref"],
        created_at=AT,
        updated_at=AT,
        journeys=[
            JourneyProgress(journey="onboarding", status=JourneyStatus.LINKING, started_at=AT),
            JourneyProgress(journey="loan_application", status=JourneyStatus.PENDING, started_at=AT),
        ],
        **fields,
    )


# What the code's entries of each kind carry (see consent.domain.ledger.connection_entry and progress.settle).
CONNECTION_FIELDS = {"connection_id": "conn-1", "platform_key": "gbol", "source_type": SourceType.ACCOUNTING}


CLOCK_FIELDS = {"consent_expires_at": AT + timedelta(days=21), "renew_by": AT + timedelta(days=14)}


def ledger(type_: str, **fields: Any) -> LedgerRecord:
    """A ledger entry of `type_` with what entries of its kind always carry, and `fields`."""
    event_type = LEDGER_EVENT_TYPES.get(type_)
    if event_type is not None and issubclass(EVENT_CATALOG[event_type][0], ConnectionEventData):
        fields = {**CONNECTION_FIELDS, **fields}
    if type_ == "sync.completed":
        fields = {"data_types": [{"dataType": "invoices", "status": "Complete"}], **fields}
    if type_.startswith("journey."):
        fields = {"journey": "onboarding", **fields}
    if type_ == "journey.data_ready":
        fields = {"fresh_until": AT + timedelta(days=30), **fields}
    if type_ == "journey.data_stale":
        fields = {"stale_types": ["balanceSheet"], **fields}
    actor = Actor.customer("customer-1")
    if type_ == "data.purged":
        actor = Actor.CONSENT_CLOCK
    if type_ == "connection.expiring":
        actor = Actor.CONSENT_CLOCK
        fields = {**CLOCK_FIELDS, "reminder_days": 7, **fields}
    return entry(company(), type_, actor=actor, at=AT, entry_id="entry-1", **fields)


def bare(type_: str, **fields: Any) -> LedgerRecord:
    return entry(company(), type_, actor=Actor.customer("customer-1"), at=AT, entry_id="entry-1", **fields)


@pytest.mark.parametrize(
    ("ledger_type", "event_type"),
    [
        ("company.created", "consent.company.created"),
        ("connection.created", "consent.connection.created"),
        ("connection.linked", "consent.connection.linked"),
        ("connection.failed", "consent.connection.failed"),
        ("connection.unlinked", "consent.connection.unlinked"),
        ("consent.revoked", "consent.connection.unlinked"),
        ("connection.deauthorized", "consent.connection.deauthorized"),
        ("connection.deleted", "consent.connection.deleted"),
        ("connection.expired", "consent.connection.deleted"),
        ("sync.completed", "consent.sync.completed"),
        ("journey.linked", "consent.journey.linked"),
        ("journey.completed", "consent.journey.completed"),
        ("journey.action_required", "consent.journey.action_required"),
        ("company.erased", "consent.company.erased"),
    ],
)
def test_each_consent_ledger_type_publishes_its_event_type(ledger_type: str, event_type: str) -> None:
    event = to_cloud_event(ledger(ledger_type), source=SOURCE)
    assert event is not None
    assert event.type == event_type


def test_every_event_type_of_the_contract_is_published_by_some_ledger_type() -> None:
    assert set(LEDGER_EVENT_TYPES.values()) == set(ConsentEventType)
    assert len(ConsentEventType) == 17


@pytest.mark.parametrize(
    "ledger_type", ["journey.started", "connection.link_requested", "codat.connection.created", "webhook.unknown", ""]
)
def test_other_ledger_entries_publish_nothing(ledger_type: str) -> None:
    # (a type the writer refuses, as an item of an older version could hold, publishes nothing either)
    record = ledger("company.created").model_copy(update={"type": ledger_type})
    assert to_cloud_event(record, source=SOURCE) is None


def test_the_ledger_writer_refuses_a_type_outside_the_closed_set() -> None:
    with pytest.raises(ValueError, match="is not a valid LedgerEntryType"):
        ledger("client.rateLimit.reached")


def test_a_late_entry_publishes_nothing() -> None:
    late = ledger("connection.linked", connection_id="conn-1", status=ConnectionStatus.LINKED, late=True)
    assert to_cloud_event(late, source=SOURCE) is None


def test_the_envelope_is_cloudevents_1_0_with_the_ledger_entry_id_and_only_present_fields() -> None:
    record = ledger(
        "connection.linked",
        connection_id="conn-1",
        platform_key="gbol",
        source_type=SourceType.ACCOUNTING,
        status=ConnectionStatus.LINKED,
        consent_version="2026-01",
    )
    event = to_cloud_event(record, source=SOURCE)
    assert event is not None
    assert json.loads(event.to_json()) == {
        "specversion": "1.0",
        "id": "entry-1",
        "source": SOURCE,
        "type": "consent.connection.linked",
        "time": "2026-03-04T05:06:07.123456Z",
        "subject": "company-1",
        "datacontenttype": "application/json",
        "dataschema": "urn:consent-journey:schemas:consent.connection.linked.v1.json",
        "data": {
            "companyId": "company-1",
            "customerId": "customer-1",
            "connectionId": "conn-1",
            "platformKey": "gbol",
            "sourceType": "accounting",
            "status": "Linked",
            "journeys": ["onboarding", "loan_application"],
            "actor": "customer:customer-1",
            "consentVersion": "2026-01",
        },
    }


def test_time_is_utc_with_a_z_whatever_the_entry_offset() -> None:
    paris = timezone(timedelta(hours=1))
    record = ledger("company.created").model_copy(update={"at": datetime(2026, 3, 4, 6, 6, 7, tzinfo=paris)})
    event = to_cloud_event(record, source=SOURCE)
    assert event is not None
    assert json.loads(event.to_json())["time"] == "2026-03-04T05:06:07.000000Z"


def test_sync_completed_carries_the_data_types_and_their_statuses() -> None:
    data_types = [{"dataType": "invoices", "status": "Complete"}, {"dataType": "bills", "status": "Failed"}]
    event = to_cloud_event(ledger("sync.completed", connection_id="conn-1", data_types=data_types), source=SOURCE)
    assert event is not None
    assert json.loads(event.to_json())["data"]["dataTypes"] == data_types


def test_message_attributes_carry_the_routing_facts_for_filter_policies() -> None:
    record = ledger("connection.linked", connection_id="conn-1", platform_key="gbol", source_type=SourceType.ACCOUNTING)
    event = to_cloud_event(record, source=SOURCE)
    assert event is not None
    assert event.message_attributes() == {
        "type": {"DataType": "String", "StringValue": "consent.connection.linked"},
        "journey": {"DataType": "String.Array", "StringValue": '["onboarding", "loan_application"]'},
        "sourceType": {"DataType": "String", "StringValue": "accounting"},
        "platformKey": {"DataType": "String", "StringValue": "gbol"},
    }


@pytest.mark.parametrize(
    ("ledger_type", "missing"),
    [
        ("connection.linked", "connectionId, platformKey, sourceType"),
        ("sync.completed", "connectionId, platformKey, sourceType"),
        ("journey.completed", "journey"),
        ("journey.data_ready", "freshUntil, journey"),
        ("journey.data_stale", "journey, staleTypes"),
    ],
)
def test_an_entry_lacking_what_its_event_type_carries_is_out_of_contract(ledger_type: str, missing: str) -> None:
    with pytest.raises(EventOutOfContract, match=missing):
        to_cloud_event(bare(ledger_type), source=SOURCE)


def test_a_field_another_kind_of_event_carries_is_left_out() -> None:
    # A milestone entry written with a connection's fields: its contract has no place for them
    event = to_cloud_event(ledger("journey.linked", **CONNECTION_FIELDS), source=SOURCE)
    assert event is not None
    assert "connectionId" not in json.loads(event.to_json())["data"]
    assert set(event.message_attributes()) == {"type", "journey"}


def test_dataschema_names_the_type_and_the_major_version_under_the_configured_base() -> None:
    event = to_cloud_event(ledger("company.created"), source=SOURCE, schema_base_uri="https://bank.example/s/")
    assert event is not None
    assert event.dataschema == "https://bank.example/s/consent.company.created.v1.json"
    assert dataschema(ConsentEventType.COMPANY_CREATED) == "urn:consent-journey:schemas:consent.company.created.v1.json"


def test_absent_routing_facts_are_left_out_of_the_attributes() -> None:
    record = ledger("company.erased", journeys=[])
    event = to_cloud_event(record, source=SOURCE)
    assert event is not None
    assert event.message_attributes() == {"type": {"DataType": "String", "StringValue": "consent.company.erased"}}


@pytest.mark.parametrize("ledger_type", sorted(LEDGER_EVENT_TYPES))
def test_no_event_carries_personal_data_or_secrets(ledger_type: str) -> None:
    # Given a company full of personal data, and an entry of this type with every field the ledger has
    record = ledger(
        ledger_type,
        connection_id="conn-1",
        platform_key="gbol",
        source_type=SourceType.BANKING,
        status=ConnectionStatus.LINKED,
        consent_version="v1",
        detail="Codat reported the connection as linked",
        data_types=[{"dataType": "banking-accounts", "status": "Complete"}],
        journey="onboarding",
        **CLOCK_FIELDS,
    )
    # When it is published
    event = to_cloud_event(record, source=SOURCE)
    assert event is not None
    published = event.to_json() + json.dumps(event.message_attributes())
    # Then none of the planted values is in the message or its attributes
    for value in PLANTED.values():
        assert value not in published


def test_the_ledger_has_no_field_that_could_hold_personal_data() -> None:
    assert not set(PLANTED) & set(LedgerRecord.model_fields)
    # A field it does not have (as a newer version's item could carry) is dropped, never kept nor published.
    planted = LedgerRecord.model_validate({**ledger("company.created").model_dump(), "name": PLANTED["name"]})
    assert PLANTED["name"] not in planted.model_dump_json()
    event = to_cloud_event(planted, source=SOURCE)
    assert event is not None
    assert PLANTED["name"] not in event.model_dump_json()


def test_a_long_detail_is_truncated_and_every_event_stays_far_below_the_sns_limit() -> None:
    event = to_cloud_event(ledger("connection.failed", detail="x" * 50_000), source=SOURCE)
    assert event is not None
    assert len(event.data.detail or "") == MAX_DETAIL_CHARS
    assert event.size() <= MAX_EVENT_BYTES < 256 * 1024 // 10


def test_an_event_that_cannot_fit_is_refused() -> None:
    data_types = [{"dataType": f"type-{n}", "status": "Complete"} for n in range(1000)]
    with pytest.raises(EventTooLarge):
        to_cloud_event(ledger("sync.completed", data_types=data_types), source=SOURCE)
