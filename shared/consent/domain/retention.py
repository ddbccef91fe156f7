"""When consent ends by design, and when the data read under it goes.

- **One-off consent.** A journey declared `access = "one_off"` needs its data once: when it is first ready (its
  `journey:<name>:data_ready:1` entry), the Linked connections it uses are unlinked, except those an ongoing journey
  of the company uses too.
- **Retention.** Once a connection's consent has ended (unlinked, revoked or lapsed), the data read through it is
  kept in Codat for `retain_days` of the company's journeys that use it (the longest; a journey that declares none
  keeps it), then the connection is deleted in Codat: `consent.data.purged`. When no connection of the company is
  left, the company is erased in Codat too (our record and its ledger stay, for the audit trail).

Pure rules: the lifecycle run (`consent.usecases.lifecycle`) acts on them; the webhook path only writes when they fall
due (`CompanyRecord.retention_at`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from consent.domain.journeys import JourneyAccess, JourneyCatalog, JourneyDefinition
from consent.domain.records import CompanyRecord, ConnectionRecord
from consent.domain.resources import ConnectionStatus, DataStatus
from consent.domain.timeline import derive

# Consent has ended: nothing more is read through the connection (a failed link never read anything).
_ENDED = frozenset({ConnectionStatus.UNLINKED, ConnectionStatus.DEAUTHORIZED})


def _journeys(catalog: JourneyCatalog, company: CompanyRecord) -> list[JourneyDefinition]:
    found = (catalog.get(progress.journey) for progress in company.journeys)
    return [journey for journey in found if journey is not None]


def one_off_done(company: CompanyRecord, journey: JourneyDefinition) -> bool:
    """Whether the one-off journey has had what it needed: its data was ready once."""
    return f"journey:{journey.name}:data_{DataStatus.READY.value}:1" in company.milestones


def one_off_unlinks(
    catalog: JourneyCatalog, company: CompanyRecord, connections: Iterable[ConnectionRecord]
) -> list[ConnectionRecord]:
    """The Linked connections whose one-off consent is spent: used by a one-off journey whose data has been read,
    and by no ongoing journey of the company."""
    journeys = _journeys(catalog, company)
    ongoing = {t for j in journeys if j.access == JourneyAccess.ONGOING for t in j.source_types}
    spent = {
        t for j in journeys if j.access == JourneyAccess.ONE_OFF and one_off_done(company, j) for t in j.source_types
    }
    return [
        c
        for c in connections
        if not c.deleted
        and c.status == ConnectionStatus.LINKED
        and c.source_type in spent
        and c.source_type not in ongoing
    ]


def consent_ended_at(connection: ConnectionRecord) -> datetime | None:
    """When the connection's consent ended (its latest status event, if that left it unlinked or lapsed)."""
    if connection.deleted or connection.status not in _ENDED:
        return None
    latest = derive(connection.history).latest
    return latest.at if latest is not None else None


def retain_days(catalog: JourneyCatalog, company: CompanyRecord, connection: ConnectionRecord) -> int | None:
    """How long the connection's data is kept after consent ended: the longest `retain_days` of the company's
    journeys that use its source type; None (kept) if one of them declares none, or none uses it."""
    using = [j for j in _journeys(catalog, company) if j.allows(connection.source_type)]
    if not using or any(j.retain_days is None for j in using):
        return None
    return max(j.retain_days for j in using if j.retain_days is not None)


def purge_at(catalog: JourneyCatalog, company: CompanyRecord, connection: ConnectionRecord) -> datetime | None:
    """When the connection's data is to be deleted in Codat (None: not while things stay as they are)."""
    ended = consent_ended_at(connection)
    days = retain_days(catalog, company, connection)
    if ended is None or days is None:
        return None
    return ended + timedelta(days=days)


def retention_at(
    catalog: JourneyCatalog, company: CompanyRecord, connections: Sequence[ConnectionRecord], now: datetime
) -> datetime | None:
    """When the lifecycle run has consent to end or data to delete for the company: now, for a spent one-off
    consent; the first purge due otherwise."""
    if one_off_unlinks(catalog, company, connections):
        return now
    due = [at for c in connections if (at := purge_at(catalog, company, c)) is not None]
    return min(due) if due else None
