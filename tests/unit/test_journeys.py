"""Journeys: the catalogue from configuration and the progress rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consent.domain.journeys import (
    DEFAULT_JOURNEYS_FILE,
    ConnectionState,
    JourneyCatalog,
    JourneyConfigError,
    evaluate,
)
from consent.domain.resources import ConnectionStatus, JourneyStatus, SourceType

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LOAN = JourneyCatalog.from_file(DEFAULT_JOURNEYS_FILE).journeys["loan_application"]


def conn(cid: str, source: SourceType, status: ConnectionStatus, read: bool = False) -> ConnectionState:
    return ConnectionState(cid, source, status, read)


def test_shipped_catalogue_offers_onboarding_and_loan_application() -> None:
    catalog = JourneyCatalog.from_file(DEFAULT_JOURNEYS_FILE)
    assert catalog.names == ["credit_check", "loan_application", "onboarding"]
    assert catalog.journeys["onboarding"].required == (SourceType.BANKING,)
    assert LOAN.required == (SourceType.ACCOUNTING, SourceType.BANKING)
    assert LOAN.optional == (SourceType.COMMERCE,)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "declares no"),
        ("[journeys]\n", "declares no"),  # an empty table: a deployment offering nothing is misconfigured
        ("journeys = 'onboarding'\n", "declares no"),
        ("[journeys.x]\nrequired = ['banking', 'banking']\n", "a source type is listed twice"),
        (
            "[journeys.x]\nrequired = ['banking']\noptional = ['commerce', 'commerce']\n",
            "a source type is listed twice",
        ),
        ("[journeys.x]\nrequired = []\n", "not a valid"),
        ("[journeys.x]\nrequired = ['banking']\noptional = ['banking']\n", "not a valid"),
        ("[journeys.x]\nrequired = ['payroll']\n", "not a valid"),
        ("[journeys.Bad-Name]\nrequired = ['banking']\n", "not a valid"),
        ("[journeys.x]\nrequired = ['banking']\ncolour = 'red'\n", "not a valid"),
        ("[journeys.x]\nrequired = ['banking']\naccess = 'one_off'\n", "a one_off journey declares the data"),
        ("[journeys.x]\nrequired = ['banking']\naccess = 'sometimes'\n", "not a valid"),
        ("[journeys.x]\nrequired = ['banking']\nretain_days = 0\n", "not a valid"),
        ("not toml at all [", "cannot read"),
    ],
)
def test_a_bad_journeys_file_is_refused_with_a_clear_reason(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "journeys.toml"
    path.write_text(content)
    with pytest.raises(JourneyConfigError, match=message):
        JourneyCatalog.from_file(path)


def test_a_journey_with_nothing_connected_is_pending() -> None:
    progress = evaluate(LOAN, [], started_at=T0, previous=None, now=T0)
    assert progress.status == JourneyStatus.PENDING
    assert [(r.source_type, r.required, r.satisfied) for r in progress.requirements] == [
        (SourceType.ACCOUNTING, True, False),
        (SourceType.BANKING, True, False),
        (SourceType.COMMERCE, False, False),
    ]


def test_connections_walk_the_journey_from_linking_to_complete() -> None:
    pending_auth = [conn("a", SourceType.ACCOUNTING, ConnectionStatus.PENDING_AUTH)]
    linking = evaluate(LOAN, pending_auth, started_at=T0, previous=None, now=T0)
    assert linking.status == JourneyStatus.LINKING

    both_linked = [
        conn("a", SourceType.ACCOUNTING, ConnectionStatus.LINKED),
        conn("b", SourceType.BANKING, ConnectionStatus.LINKED),
    ]
    linked = evaluate(LOAN, both_linked, started_at=T0, previous=linking, now=T0)
    assert linked.status == JourneyStatus.LINKED
    assert linked.completed_at is None

    both_read = [
        conn("a", SourceType.ACCOUNTING, ConnectionStatus.LINKED, read=True),
        conn("b", SourceType.BANKING, ConnectionStatus.LINKED, read=True),
    ]
    t1 = T0 + timedelta(minutes=3)
    complete = evaluate(LOAN, both_read, started_at=T0, previous=linked, now=t1)
    assert complete.status == JourneyStatus.COMPLETE
    assert complete.completed_at == t1
    assert all(r.satisfied for r in complete.requirements if r.required)
    assert complete.requirements[1].connection_ids == ["b"]


def test_losing_a_required_connection_after_completion_needs_action_until_relinked_and_read() -> None:
    read = [
        conn("a", SourceType.ACCOUNTING, ConnectionStatus.LINKED, read=True),
        conn("b", SourceType.BANKING, ConnectionStatus.LINKED, read=True),
    ]
    complete = evaluate(LOAN, read, started_at=T0, previous=None, now=T0)
    deauthorized = [read[0], conn("b", SourceType.BANKING, ConnectionStatus.DEAUTHORIZED)]
    action = evaluate(LOAN, deauthorized, started_at=T0, previous=complete, now=T0)
    assert action.status == JourneyStatus.ACTION_REQUIRED
    assert action.completed_at == T0  # when it was last complete

    relinked_not_read = [read[0], conn("b", SourceType.BANKING, ConnectionStatus.LINKED)]
    still = evaluate(LOAN, relinked_not_read, started_at=T0, previous=action, now=T0)
    assert still.status == JourneyStatus.ACTION_REQUIRED

    t2 = T0 + timedelta(days=1)
    again = evaluate(LOAN, read, started_at=T0, previous=still, now=t2)
    assert again.status == JourneyStatus.COMPLETE
    assert again.completed_at == t2


def test_optional_and_foreign_source_types_do_not_decide_completion() -> None:
    onboarding = JourneyCatalog.from_file(DEFAULT_JOURNEYS_FILE).journeys["onboarding"]
    only_optional = [conn("a", SourceType.ACCOUNTING, ConnectionStatus.LINKED, read=True)]
    assert evaluate(onboarding, only_optional, started_at=T0, previous=None, now=T0).status == JourneyStatus.LINKING
    only_commerce = [conn("c", SourceType.COMMERCE, ConnectionStatus.LINKED, read=True)]
    assert evaluate(onboarding, only_commerce, started_at=T0, previous=None, now=T0).status == JourneyStatus.PENDING


def test_a_journey_is_found_by_its_name_and_an_unknown_name_finds_none() -> None:
    catalog = JourneyCatalog.from_file(DEFAULT_JOURNEYS_FILE)

    assert catalog.get("loan_application") == LOAN
    assert catalog.get("mortgage") is None
