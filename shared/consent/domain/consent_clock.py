"""The consent clock: when a Linked connection's access lapses, and by when the customer should renew it.

Codat sends no warning before access lapses and gives a connection no expiry date: a lapse shows up afterwards, as
`connection.disconnected` with `Deauthorized`. So the product keeps the clock itself, from a policy in the journeys
file (`[consent_clock]`), per source type and, where needed, per platform:

- `valid_days`: consent lasts that long from the authorization, or from the last re-consent (a fresh link for the
  same connection that Codat reports authorized again restarts it) — open banking's 90 days;
- `idle_sync_days`: access lapses after that long without a successful sync, counted from the last one (or from
  the authorization, before the first) — accounting platforms that revoke idle tokens.

Where the policy says nothing, the clock is unknown: `None`, never a guess presented as fact. `renewBy` is
`renew_margin_days` before the lapse (renewing a week early leaves time for a reminder to be acted on); reminders go
out `reminder_days` before `renewBy`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from consent.domain.resources import ConnectionStatus, SourceType


class ClockRule(BaseModel):
    """How long consent lasts for a source type or a platform: one of the two measures, or neither (unknown)."""

    # Built on first use (when a function loads the journeys file), not at import: a cold start pays only if it reads
    # the policy.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    valid_days: int | None = Field(default=None, ge=1, le=3650)
    idle_sync_days: int | None = Field(default=None, ge=1, le=3650)

    @model_validator(mode="after")
    def _one_measure(self) -> ClockRule:
        if self.valid_days is not None and self.idle_sync_days is not None:
            raise ValueError("a rule sets valid_days or idle_sync_days, not both")
        return self

    @property
    def known(self) -> bool:
        return self.valid_days is not None or self.idle_sync_days is not None


class SourceTypeClock(ClockRule):
    # A platform's own rule (by Codat's platform key) replaces its source type's.
    platforms: dict[str, ClockRule] = Field(default_factory=dict)


class ConsentClockPolicy(BaseModel):
    """The `[consent_clock]` table of the journeys file. Absent, banking consent lasts 90 days (open banking's
    re-confirmation period) and every other source type's clock is unknown."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    renew_margin_days: int = Field(default=7, ge=0, le=365)
    reminder_days: tuple[int, ...] = Field(default=(14, 7, 1), max_length=10)
    banking: SourceTypeClock = Field(default_factory=lambda: SourceTypeClock(valid_days=90))
    accounting: SourceTypeClock = Field(default_factory=SourceTypeClock)
    commerce: SourceTypeClock = Field(default_factory=SourceTypeClock)

    @model_validator(mode="after")
    def _reminders(self) -> ConsentClockPolicy:
        if any(days < 0 for days in self.reminder_days) or len(set(self.reminder_days)) != len(self.reminder_days):
            raise ValueError("reminder_days are distinct numbers of days, none negative")
        return self

    @classmethod
    def from_table(cls, table: Any) -> ConsentClockPolicy:
        """The policy from the journeys file's `[consent_clock]` table (None: the defaults). ValueError if invalid."""
        if table is None:
            return cls()
        try:
            return cls.model_validate(table)
        except ValidationError as error:
            raise ValueError(f"[consent_clock] is not valid: {error}") from error

    def renewal_opens(self, renew_by: datetime) -> datetime:
        """From when a Linked connection can be renewed (a fresh link for it): its first reminder's time."""
        return renew_by - timedelta(days=max(self.reminder_days, default=0))

    def rule(self, source_type: SourceType, platform_key: str) -> ClockRule:
        clock: SourceTypeClock = getattr(self, source_type.value)
        return clock.platforms.get(platform_key, clock)


@dataclass(frozen=True)
class ConsentClock:
    expires_at: datetime  # when access lapses unless renewed (or synced, for an idle-sync rule)
    renew_by: datetime  # when the customer should have renewed: `renew_margin_days` earlier

    def reminders_due(self, policy: ConsentClockPolicy, now: datetime) -> list[int]:
        """The reminders (their days before `renew_by`) whose time has come by `now`, earliest first."""
        return sorted(
            (days for days in policy.reminder_days if self.renew_by - timedelta(days=days) <= now), reverse=True
        )


def reminders_left(policy: ConsentClockPolicy, sent: int | None) -> list[int]:
    """The reminders (days before `renewBy`) still to go in a consent period whose last one sent was `sent` days
    before (None: none yet), earliest first. Each goes once: after the 7-day one, the 14-day one never does."""
    return sorted((days for days in policy.reminder_days if sent is None or days < sent), reverse=True)


def next_reminder(policy: ConsentClockPolicy, renew_by: datetime, sent: int | None) -> datetime | None:
    """When the period's next reminder is due (None: every one has gone)."""
    left = reminders_left(policy, sent)
    return renew_by - timedelta(days=left[0]) if left else None


def reminder_due(policy: ConsentClockPolicy, renew_by: datetime, sent: int | None, now: datetime) -> int | None:
    """The one reminder to send `now`: the most urgent whose time has come and that has not gone (a run that comes
    late sends the 7-day reminder, not the 14-day one as well). None: nothing is due."""
    due = [days for days in reminders_left(policy, sent) if renew_by - timedelta(days=days) <= now]
    return due[-1] if due else None


def consent_clock(
    policy: ConsentClockPolicy,
    *,
    source_type: SourceType,
    platform_key: str,
    status: ConnectionStatus,
    linked_at: datetime | None,
    last_sync_at: datetime | None,
) -> ConsentClock | None:
    """The clock of a connection, or None: it is not Linked (nothing to lapse), or the policy does not know."""
    if status != ConnectionStatus.LINKED or linked_at is None:
        return None
    rule = policy.rule(source_type, platform_key)
    if rule.valid_days is not None:
        expires_at = linked_at + timedelta(days=rule.valid_days)
    elif rule.idle_sync_days is not None:
        synced = max(linked_at, last_sync_at) if last_sync_at is not None else linked_at
        expires_at = synced + timedelta(days=rule.idle_sync_days)
    else:
        return None
    return ConsentClock(expires_at=expires_at, renew_by=expires_at - timedelta(days=policy.renew_margin_days))
