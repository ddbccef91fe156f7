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


class KeepAlivePolicy(BaseModel):
    """`[consent_clock.keep_alive]`: accounting platforms revoke access after weeks without a sync, and Codat advises
    refreshing at least one data type a month. A Linked connection of a source type listed in `data_types` whose last
    successful sync (or authorization) is `refresh_after_days` old — or whose first reminder is near, if sooner — gets
    a refresh of that one light data type queued in Codat; one queued but not followed by a sync is queued again
    `retry_after_hours` later. How many Codat requests a day this may spend is the deployment's setting."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    refresh_after_days: int = Field(default=30, ge=1, le=365)
    retry_after_hours: int = Field(default=24, ge=1, le=24 * 30)
    data_types: dict[SourceType, str] = Field(default_factory=lambda: {SourceType.ACCOUNTING: "company"})

    @model_validator(mode="after")
    def _data_types(self) -> KeepAlivePolicy:
        for data_type in self.data_types.values():
            if not 1 <= len(data_type) <= 64 or not data_type.replace("-", "").isalpha():
                raise ValueError(f"keep_alive.data_types: {data_type!r} is not one of Codat's data type names")
        return self


class ConsentClockPolicy(BaseModel):
    """The `[consent_clock]` table of the journeys file. Absent, banking consent lasts 90 days (open banking's
    re-confirmation period) and every other source type's clock is unknown."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    renew_margin_days: int = Field(default=7, ge=0, le=365)
    reminder_days: tuple[int, ...] = Field(default=(14, 7, 1), max_length=10)
    banking: SourceTypeClock = Field(default_factory=lambda: SourceTypeClock(valid_days=90))
    accounting: SourceTypeClock = Field(default_factory=SourceTypeClock)
    commerce: SourceTypeClock = Field(default_factory=SourceTypeClock)
    keep_alive: KeepAlivePolicy = Field(default_factory=KeepAlivePolicy)

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


def refresh_due(
    policy: ConsentClockPolicy,
    *,
    source_type: SourceType,
    status: ConnectionStatus,
    linked_at: datetime | None,
    last_sync_at: datetime | None,
    requested_at: datetime | None,
    renew_by: datetime | None,
) -> datetime | None:
    """When a keep-alive refresh of the connection is due (None: never — not Linked, or its source type is not kept
    alive). Before its first reminder at the latest (keeping it alive is better than asking the customer)."""
    keep_alive = policy.keep_alive
    if status != ConnectionStatus.LINKED or linked_at is None or source_type not in keep_alive.data_types:
        return None
    synced = max(linked_at, last_sync_at) if last_sync_at is not None else linked_at
    due = synced + timedelta(days=keep_alive.refresh_after_days)
    if renew_by is not None:
        due = min(due, policy.renewal_opens(renew_by))
    if requested_at is not None and requested_at >= synced:  # asked, and no sync since: wait before asking again
        due = max(due, requested_at + timedelta(hours=keep_alive.retry_after_hours))
    return due
