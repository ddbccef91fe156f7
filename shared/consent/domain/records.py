"""What the store keeps: the domain resources plus the bookkeeping they need (owner, versions, order)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import ConfigDict, Field

from consent.domain.consent_clock import ConsentClockPolicy, consent_clock, next_reminder, refresh_due
from consent.domain.data_readiness import DATA_TYPE, compress
from consent.domain.resources import (
    Company,
    Connection,
    ConnectionStatus,
    DataStatus,
    JourneyProgress,
    LedgerEntry,
    Resource,
    SdkComponent,
)
from consent.domain.timeline import ConnectionTimeline, StatusEvent, derive

# Nearly every request reads or writes these: unlike the other resources (built on first use, see
# consent.domain.resources.Resource) they are built at import, during Lambda's init, which runs with more CPU than
# a request. And they read what a newer version of the code wrote: during a deployment (functions update one by
# one) or after a rollback, an item may carry a field this version does not know. It is ignored, not refused (the
# API's own bodies stay strict).
_STORED = ConfigDict(defer_build=False, extra="ignore")


# How many data types a connection remembers reads of (Codat has about 50).
MAX_DATA_TYPES_REMEMBERED = 64
# How far before the session's opening Codat's clock may stamp what happened in it (clocks differ a little).
SDK_CLOCK_SKEW = timedelta(minutes=1)


class SdkSession(Resource):
    """The customer opened one of Codat's components in the bank's page (`POST …/sdk-sessions`): what Codat reports
    meanwhile about the company's connections is hers (a connection made, one disconnected), until `until`."""

    model_config = _STORED

    component: SdkComponent
    opened_at: datetime
    until: datetime
    # The version of the consent text she accepted before opening Codat's Link (the SDK itself carries none).
    consent_version: str | None = None

    def covers(self, at: datetime) -> bool:
        return self.opened_at - SDK_CLOCK_SKEW <= at <= self.until


class CompanyRecord(Resource):
    model_config = _STORED

    company_id: str
    customer_id: str
    name: str
    description: str | None = None
    external_ref: str | None = None
    created_at: datetime
    updated_at: datetime
    journeys: list[JourneyProgress] = Field(default_factory=list)
    # How many connections were ever requested for the company: part of Codat's Idempotency-Key for the
    # next one, so that concurrent or retried requests create one Codat connection, not two.
    connection_requests: int = 0
    # Whether Codat's copy is tagged with the keyed customer reference (`Services.customer_ref`). Companies made
    # before it carry the customer id itself: reconciliation re-tags them once.
    customer_ref_keyed: bool = False
    # The ledger entries derived from the connections' events (entry id → when): journey milestones and consent
    # renewals, so an event arriving late can add one or withdraw one (see consent.domain.progress).
    milestones: dict[str, datetime] = Field(default_factory=dict)
    # The customer's latest session in each of Codat's components (Option 1: the SDK in the bank's page).
    sdk_sessions: dict[SdkComponent, SdkSession] = Field(default_factory=dict)
    # Journeys whose stale data should be read again (journey name → since when): one was started, or became
    # complete. The lifecycle run queues the reads in Codat (the webhook path never calls Codat).
    data_wanted: dict[str, datetime] = Field(default_factory=dict)
    # The reads already queued for a journey still wanted (`<data type>:<connection id>`): what a run that ran out of
    # budget asked for is not asked again by the next one.
    data_asked: dict[str, list[str]] = Field(default_factory=dict)
    # When consent is to be ended (a spent one-off consent) or data deleted in Codat (retention), as the company's
    # journeys declare (consent.domain.retention); and when the company itself was erased in Codat, nothing left.
    retention_at: datetime | None = None
    codat_erased_at: datetime | None = None
    # Optimistic concurrency: every update is conditional on the version it read.
    version: int = 1

    @property
    def lifecycle_at(self) -> datetime | None:
        """When the lifecycle run has something to do for the company: read stale data a journey wants, end a spent
        one-off consent or delete data whose retention ran out, or settle it when a journey's ready data grows too
        old (so `consent.journey.data_stale` goes out at the time). The
        store indexes companies by it (sparse), as it does connections."""
        due = list(self.data_wanted.values())
        if self.retention_at is not None:
            due.append(self.retention_at)
        due.extend(
            p.data.fresh_until
            for p in self.journeys
            if p.data is not None and p.data.status == DataStatus.READY and p.data.fresh_until is not None
        )
        return min(due) if due else None

    def sdk_session(self, component: SdkComponent, at: datetime) -> SdkSession | None:
        """Her session in `component` that was open at `at`, if any."""
        session = self.sdk_sessions.get(component)
        return session if session is not None and session.covers(at) else None


class Reminded(Resource):
    """The last consent reminder sent for a connection: for which consent period (its `renewBy`), how many days
    before it."""

    model_config = _STORED

    renew_by: datetime
    days: int


class ConnectionRecord(Connection):
    """A connection as stored. `link_url` is never stored: Codat's link URLs are one-time and expire."""

    model_config = _STORED

    company_id: str
    customer_id: str
    company_created_at: datetime
    initial_read_done: bool = False
    deleted: bool = False
    # Everything that happened to the connection, in event time; the fields above are derived from it.
    history: list[StatusEvent] = Field(default_factory=list)
    # The ids of the last read webhooks applied to it: a retry of one written in parts skips it here.
    recent_reads: list[str] = Field(default_factory=list)
    # When a read of each data type last completed (Codat's read.completed): what data readiness counts.
    data_reads: dict[str, datetime] = Field(default_factory=dict)
    # The complete reads of each data type a journey needs, as many as tell when its data was fresh (`with_reads`):
    # what data readiness's transitions are derived from, in event time.
    read_history: dict[str, list[datetime]] = Field(default_factory=dict)
    # The consent reminders: the last one sent, and when the next is due (None: none is, or the clock is unknown).
    reminded: Reminded | None = None
    remind_at: datetime | None = None
    # Keep-alive: when a refresh was last queued in Codat, and when the next is due (None: never).
    refresh_requested_at: datetime | None = None
    refresh_at: datetime | None = None
    version: int = 1

    @property
    def lifecycle_at(self) -> datetime | None:
        """When the lifecycle run has something to do for this connection (a reminder, a refresh): the store indexes
        connections by it (sparse), so a run reads only what is due."""
        due = [at for at in (self.remind_at, self.refresh_at) if at is not None]
        return min(due) if due else None

    def with_reads(self, completed: Iterable[str], at: datetime, ages: Mapping[str, timedelta]) -> ConnectionRecord:
        """This connection once a read at `at` completed the data types `completed` (whatever order reads arrive in:
        the latest stays latest). The types a journey needs (`ages`: the shortest age any journey allows each) keep
        their read history too. Names that are not Codat's are not kept; nor are more than 64 types."""
        reads = dict(self.data_reads)
        history = dict(self.read_history)
        for data_type in completed:
            if not DATA_TYPE.fullmatch(data_type):
                continue
            if data_type not in reads or at > reads[data_type]:
                reads[data_type] = at
            if data_type in ages:
                history[data_type] = compress([*history.get(data_type, []), at], ages[data_type])
        if len(reads) > MAX_DATA_TYPES_REMEMBERED:
            newest = sorted(reads, key=lambda t: reads[t], reverse=True)[:MAX_DATA_TYPES_REMEMBERED]
            reads = {t: reads[t] for t in newest}
        history = {t: h for t, h in history.items() if t in reads}
        return self.model_copy(update={"data_reads": reads, "read_history": history})

    def with_event(self, event: StatusEvent) -> ConnectionRecord:
        """This connection after `event` (a repeat of a known event id changes nothing)."""
        if any(known.id == event.id for known in self.history):
            return self
        history = sorted([*self.history, event], key=lambda e: e.order)
        state = derive(history)
        return self.model_copy(
            update={
                "history": history,
                "status": state.status or self.status,
                "linked_at": state.linked_at,
                "status_reason": state.status_reason,
                "initial_read_done": state.initial_read_done,
                "deleted": state.deleted,
            }
        )

    def clocked(self, policy: ConsentClockPolicy) -> ConnectionRecord:
        """This connection with its consent clock as `policy` reads it (none once deleted or not Linked), and when
        its next reminder is due."""
        clock = None
        if not self.deleted:
            clock = consent_clock(
                policy,
                source_type=self.source_type,
                platform_key=self.platform_key,
                status=self.status,
                linked_at=self.linked_at,
                last_sync_at=self.last_sync_at,
            )
        expires_at, renew_by = (clock.expires_at, clock.renew_by) if clock is not None else (None, None)
        remind_at = refresh_at = None
        if renew_by is not None:
            sent = self.reminded.days if self.reminded is not None and self.reminded.renew_by == renew_by else None
            remind_at = next_reminder(policy, renew_by, sent)
        if not self.deleted:
            refresh_at = refresh_due(
                policy,
                source_type=self.source_type,
                status=self.status,
                linked_at=self.linked_at,
                last_sync_at=self.last_sync_at,
                requested_at=self.refresh_requested_at,
                renew_by=renew_by,
            )
        derived = (expires_at, renew_by, remind_at, refresh_at)
        if derived == (self.consent_expires_at, self.renew_by, self.remind_at, self.refresh_at):
            return self
        return self.model_copy(
            update={
                "consent_expires_at": expires_at,
                "renew_by": renew_by,
                "remind_at": remind_at,
                "refresh_at": refresh_at,
            }
        )

    def with_refresh_requested(self, policy: ConsentClockPolicy, at: datetime) -> ConnectionRecord:
        """This connection once a keep-alive refresh was queued in Codat at `at`."""
        return self.model_copy(update={"refresh_requested_at": at}).clocked(policy)

    def with_reminder(self, policy: ConsentClockPolicy, days: int) -> ConnectionRecord:
        """This connection once the reminder `days` before its `renewBy` has gone (the later ones are still due)."""
        assert self.renew_by is not None, "a reminder is about a known clock"
        reminded = Reminded(renew_by=self.renew_by, days=days)
        return self.model_copy(update={"reminded": reminded, "remind_at": next_reminder(policy, self.renew_by, days)})

    def is_newest(self, event: StatusEvent) -> bool:
        """Whether `event` is at least as new as every status event already known (else it is late)."""
        latest = derive(self.history).latest
        return latest is None or event.order >= latest.order

    def to_timeline(self) -> ConnectionTimeline:
        return ConnectionTimeline(self.connection_id, self.source_type, self.history)

    def to_resource(self, link_url: str | None = None) -> Connection:
        fields = self.model_dump(include=set(Connection.model_fields))
        fields["link_url"] = link_url
        return Connection.model_validate(fields)


class LedgerRecord(LedgerEntry):
    """A ledger entry as stored, with what is needed to publish it as a consent event."""

    model_config = _STORED

    company_id: str
    customer_id: str | None = None
    # Journeys of the company when the entry was written, for subscribers' filter policies.
    journeys: list[str] = Field(default_factory=list)
    # The connection's status after this entry (connection entries only).
    status: ConnectionStatus | None = None
    # sync.completed: the data types read and how each went, e.g. [{"dataType": "invoices", "status": "Complete"}].
    data_types: list[dict[str, str]] | None = None
    # An event older than what the connection already reflected when it arrived: kept for the record; it
    # changed no status (order safety).
    late: bool = False
    # Order among entries with the same `at` (an event's own entry before the milestones it caused).
    seq: int = 0

    def to_entry(self) -> LedgerEntry:
        return LedgerEntry.model_validate(self.model_dump(include=set(LedgerEntry.model_fields)))


@dataclass(frozen=True)
class LedgerKey:
    """Where a ledger entry is: enough to delete it."""

    at: datetime
    seq: int
    entry_id: str


@dataclass
class CompanyView:
    """A company with its connections, as read in one go."""

    company: CompanyRecord
    connections: list[ConnectionRecord] = field(default_factory=list)
    # Only some of the connections were read: where the rest start (a connections page cursor).
    connections_cursor: str | None = None

    def to_resource(self, now: datetime | None = None) -> Company:
        """The company as the API serves it; at `now`, its journeys' data as fresh as it still is then."""
        record = self.company
        journeys = record.journeys
        if now is not None:
            journeys = [p.model_copy(update={"data": p.data.as_of(now)}) if p.data is not None else p for p in journeys]
        return Company(
            company_id=record.company_id,
            name=record.name,
            description=record.description,
            external_ref=record.external_ref,
            created_at=record.created_at,
            updated_at=record.updated_at,
            journeys=journeys,
            connections=[
                c.to_resource() for c in sorted(self.connections, key=lambda c: c.created_at) if not c.deleted
            ],
            connections_next_cursor=self.connections_cursor,
        )
