"""The consent clock's rule: when a Linked connection's access lapses and by when to renew it, from the journeys
file's `[consent_clock]` policy; unknown where the policy says nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consent.domain.consent_clock import (
    ConsentClock,
    ConsentClockPolicy,
    consent_clock,
    next_reminder,
    refresh_due,
    reminder_due,
)
from consent.domain.journeys import DEFAULT_JOURNEYS_FILE, JourneyCatalog, JourneyConfigError
from consent.domain.resources import ConnectionStatus, SourceType

LINKED_AT = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def clock(
    policy: ConsentClockPolicy,
    source_type: SourceType,
    platform_key: str = "qhnd",
    *,
    status: ConnectionStatus = ConnectionStatus.LINKED,
    linked_at: datetime = LINKED_AT,
    last_sync_at: datetime | None = None,
) -> ConsentClock | None:
    return consent_clock(
        policy,
        source_type=source_type,
        platform_key=platform_key,
        status=status,
        linked_at=linked_at,
        last_sync_at=last_sync_at,
    )


def known(found: ConsentClock | None) -> ConsentClock:
    assert found is not None
    return found


def test_banking_consent_lasts_90_days_from_the_authorization_and_is_renewed_a_week_early() -> None:
    found = known(clock(ConsentClockPolicy(), SourceType.BANKING))
    assert found.expires_at == LINKED_AT + 90 * DAY
    assert found.renew_by == LINKED_AT + 83 * DAY


def test_a_re_consent_restarts_the_clock() -> None:
    renewed = known(clock(ConsentClockPolicy(), SourceType.BANKING, linked_at=LINKED_AT + 80 * DAY))
    assert renewed.expires_at == LINKED_AT + 170 * DAY


@pytest.mark.parametrize("source_type", [SourceType.ACCOUNTING, SourceType.COMMERCE])
def test_where_the_policy_says_nothing_the_clock_is_unknown_not_guessed(source_type: SourceType) -> None:
    assert clock(ConsentClockPolicy(), source_type) is None


@pytest.mark.parametrize(
    "status", [ConnectionStatus.PENDING_AUTH, ConnectionStatus.UNLINKED, ConnectionStatus.DEAUTHORIZED]
)
def test_a_connection_that_is_not_linked_has_no_clock(status: ConnectionStatus) -> None:
    assert clock(ConsentClockPolicy(), SourceType.BANKING, status=status) is None


def test_an_idle_sync_limit_counts_from_the_last_successful_sync() -> None:
    policy = ConsentClockPolicy.model_validate({"accounting": {"platforms": {"gbol": {"idle_sync_days": 60}}}})
    never_synced = known(clock(policy, SourceType.ACCOUNTING, "gbol"))
    synced = known(clock(policy, SourceType.ACCOUNTING, "gbol", last_sync_at=LINKED_AT + 10 * DAY))
    other_platform = clock(policy, SourceType.ACCOUNTING, "mqjo")
    assert never_synced.expires_at == LINKED_AT + 60 * DAY
    assert synced.expires_at == LINKED_AT + 70 * DAY
    assert other_platform is None


def test_a_platform_rule_replaces_its_source_types() -> None:
    policy = ConsentClockPolicy.model_validate(
        {"banking": {"valid_days": 90, "platforms": {"aiwb": {"valid_days": 180}}}}
    )
    assert known(clock(policy, SourceType.BANKING, "aiwb")).expires_at == LINKED_AT + 180 * DAY
    assert known(clock(policy, SourceType.BANKING, "qhnd")).expires_at == LINKED_AT + 90 * DAY


def test_reminders_fall_due_before_renew_by_earliest_first() -> None:
    policy = ConsentClockPolicy()
    found = known(clock(policy, SourceType.BANKING))
    renew_by = found.renew_by
    assert found.reminders_due(policy, renew_by - 15 * DAY) == []
    assert found.reminders_due(policy, renew_by - 14 * DAY) == [14]
    assert found.reminders_due(policy, renew_by - 2 * DAY) == [14, 7]
    assert found.reminders_due(policy, renew_by) == [14, 7, 1]


def test_each_reminder_goes_once_and_a_late_one_is_the_most_urgent_due() -> None:
    policy = ConsentClockPolicy()
    renew_by = LINKED_AT + 83 * DAY
    assert next_reminder(policy, renew_by, None) == renew_by - 14 * DAY
    assert reminder_due(policy, renew_by, None, renew_by - 15 * DAY) is None
    assert reminder_due(policy, renew_by, None, renew_by - 14 * DAY) == 14
    # a run that comes late, after the 7-day point, sends the 7-day reminder: not the 14 as well
    assert reminder_due(policy, renew_by, None, renew_by - 3 * DAY) == 7
    # once the 7-day one went, the 14-day one never does; the 1-day one is next
    assert reminder_due(policy, renew_by, 7, renew_by - 3 * DAY) is None
    assert next_reminder(policy, renew_by, 7) == renew_by - 1 * DAY
    assert next_reminder(policy, renew_by, 1) is None


def refresh(
    policy: ConsentClockPolicy,
    *,
    source_type: SourceType = SourceType.ACCOUNTING,
    last_sync_at: datetime | None = None,
    requested_at: datetime | None = None,
    renew_by: datetime | None = None,
) -> datetime | None:
    return refresh_due(
        policy,
        source_type=source_type,
        status=ConnectionStatus.LINKED,
        linked_at=LINKED_AT,
        last_sync_at=last_sync_at,
        requested_at=requested_at,
        renew_by=renew_by,
    )


def test_keep_alive_refreshes_an_idle_accounting_connection_a_month_after_its_last_sync() -> None:
    policy = ConsentClockPolicy()
    assert refresh(policy) == LINKED_AT + 30 * DAY
    assert refresh(policy, last_sync_at=LINKED_AT + 10 * DAY) == LINKED_AT + 40 * DAY
    # asked, and no sync since: again a day later; a sync since: a month after it
    asked = LINKED_AT + 30 * DAY
    assert refresh(policy, requested_at=asked) == asked + DAY
    assert refresh(policy, requested_at=asked, last_sync_at=asked + 2 * 3600 * timedelta(seconds=1)) == (
        asked + timedelta(hours=2) + 30 * DAY
    )
    # before the first reminder, when an idle-sync limit makes that sooner
    assert refresh(policy, renew_by=LINKED_AT + 20 * DAY) == LINKED_AT + 6 * DAY
    # a source type that is not kept alive never is; nor is a connection that is not Linked
    assert refresh(policy, source_type=SourceType.BANKING) is None
    not_linked = refresh_due(
        policy,
        source_type=SourceType.ACCOUNTING,
        status=ConnectionStatus.DEAUTHORIZED,
        linked_at=LINKED_AT,
        last_sync_at=None,
        requested_at=None,
        renew_by=None,
    )
    assert not_linked is None


@pytest.mark.parametrize(
    "table",
    [
        {"keep_alive": {"data_types": {"accounting": "company; DROP"}}},
        {"keep_alive": {"refresh_after_days": 0}},
        {"banking": {"valid_days": 90, "idle_sync_days": 30}},
        {"banking": {"valid_days": 0}},
        {"reminder_days": [7, 7]},
        {"reminder_days": [-1]},
        {"payroll": {"valid_days": 30}},
        {"banking": {"valid_day": 30}},
    ],
    ids=[
        "a data type that is not one",
        "a refresh every 0 days",
        "both measures",
        "zero days",
        "a reminder twice",
        "a negative reminder",
        "unknown source type",
        "a typo",
    ],
)
def test_an_invalid_policy_is_refused(table: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="consent_clock"):
        ConsentClockPolicy.from_table(table)


def test_the_shipped_journeys_file_declares_the_default_policy() -> None:
    assert JourneyCatalog.from_file(DEFAULT_JOURNEYS_FILE).consent_clock == ConsentClockPolicy()


def test_a_journeys_file_without_a_policy_gets_the_defaults_and_a_broken_one_is_refused(tmp_path: Path) -> None:
    journeys = '[journeys.onboarding]\nrequired = ["banking"]\n'
    plain = tmp_path / "plain.toml"
    plain.write_text(journeys, encoding="utf-8")
    broken = tmp_path / "broken.toml"
    broken.write_text(journeys + "[consent_clock.banking]\nvalid_days = -3\n", encoding="utf-8")
    misspelt = tmp_path / "misspelt.toml"
    misspelt.write_text(journeys + "[consent_clocks.banking]\nvalid_days = 30\n", encoding="utf-8")

    assert JourneyCatalog.from_file(plain).consent_clock == ConsentClockPolicy()
    with pytest.raises(JourneyConfigError, match="consent_clock"):
        JourneyCatalog.from_file(broken)
    with pytest.raises(JourneyConfigError, match="consent_clocks"):
        JourneyCatalog.from_file(misspelt)
