"""Consent reminders: before a connection's consent lapses, `consent.connection.expiring` at each lead time of the
policy (by default 14, 7 and 1 days before `renewBy`), once per lead time and consent period, whatever retries,
duplicates or concurrent runs happen.

A run reads only what is due (the store's index of `remind_at`), reads each company again, strongly, and writes the
reminder's ledger entry (the outbox publishes it) together with the connection's note of it, conditional on the
version it read: of two runs racing on one connection, one writes and the other finds the reminder gone. A run that
comes late sends the most urgent reminder due, not every one it missed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from consent.domain.consent_clock import ConsentClockPolicy, reminder_due
from consent.domain.ledger import connection_entry
from consent.domain.records import CompanyView, ConnectionRecord
from consent.domain.resources import Actor, ConnectionStatus, LedgerEntryType
from consent.observability import logger, metrics
from consent.services import Services
from consent.store import Change, ConflictError, StoreRejected
from consent.store.positions import sortable

# Time kept back from the function's remaining time: one more connection's read and write.
_TIME_RESERVE_SECONDS = 5.0
_ATTEMPTS = 3


@dataclass
class RemindersReport:
    due: int = 0  # connections the index said were due
    sent: int = 0  # reminders written (each published by the outbox)
    lapsed: int = 0  # due, but the consent had already lapsed: no reminder, the period closed
    refreshed: int = 0  # not due after all (the connection or the policy changed): its index entry moved
    skipped: list[str] = field(default_factory=list)  # connection ids left for the next run (kept changing)
    stopped: str = "done"  # or "time_low"

    def to_dict(self) -> dict[str, Any]:
        return {
            "due": self.due,
            "sent": self.sent,
            "lapsed": self.lapsed,
            "refreshed": self.refreshed,
            "skipped": len(self.skipped),
            "stopped": self.stopped,
        }


def send_reminders(services: Services) -> RemindersReport:
    """Every reminder due now, until the function's time runs low (the next run carries on: what was not done
    is still due)."""
    now = services.clock()
    policy = services.catalog.consent_clock
    report = RemindersReport()
    for due in services.store.due_reminders(now):
        left = services.time_left() if services.time_left is not None else None
        if left is not None and left < _TIME_RESERVE_SECONDS:
            report.stopped = "time_low"
            break
        report.due += 1
        for _ in range(_ATTEMPTS):
            view = services.store.get_company_by_id(due.company_id)
            connection = _connection(view, due.connection_id)
            if view is None or connection is None:
                break  # erased meanwhile (its items went with it)
            try:
                outcome = _remind(services, policy, view, connection, now)
            except (ConflictError, StoreRejected):
                continue
            setattr(report, outcome, getattr(report, outcome) + 1)
            break
        else:
            logger.warning("consent reminder not sent", extra={"connection_id": due.connection_id})
            report.skipped.append(due.connection_id)
    logger.info("consent reminders", extra={"reminders": report.to_dict()})
    metrics.add_metric(name="ConsentRemindersSent", unit="Count", value=report.sent)
    metrics.add_metric(name="ConsentRemindersSkipped", unit="Count", value=len(report.skipped))
    return report


def _connection(view: CompanyView | None, connection_id: str) -> ConnectionRecord | None:
    if view is None:
        return None
    return next((c for c in view.connections if c.connection_id == connection_id and not c.deleted), None)


def _remind(
    services: Services, policy: ConsentClockPolicy, view: CompanyView, connection: ConnectionRecord, now: datetime
) -> str:
    """Send the connection's due reminder, if it still has one: which outcome (a `RemindersReport` counter)."""
    current = connection.clocked(policy)  # as the policy reads it today (it may have changed since the write)
    renew_by, expires_at = current.renew_by, current.consent_expires_at
    if renew_by is None or expires_at is None or current.remind_at is None or current.remind_at > now:
        services.store.commit(Change(updated=[current]))  # moves (or drops) its index entry
        return "refreshed"
    sent = current.reminded.days if current.reminded is not None and current.reminded.renew_by == renew_by else None
    days = reminder_due(policy, renew_by, sent, now)
    assert days is not None, "remind_at is due, so a reminder is"
    if now >= expires_at:
        # Too late to warn: Codat will report the lapse (Deauthorized). The period's reminders are closed.
        services.store.commit(Change(updated=[current.with_reminder(policy, min(policy.reminder_days))]))
        return "lapsed"
    reminder = connection_entry(
        view.company,
        LedgerEntryType.CONNECTION_EXPIRING,
        connection=current,
        actor=Actor.CONSENT_CLOCK,
        at=now,
        # One per connection, consent period and lead time: the same id whoever sends it.
        entry_id=f"connection:{current.connection_id}:expiring:{sortable(renew_by)}:{days}",
        status=ConnectionStatus.LINKED,
        consent_expires_at=expires_at,
        renew_by=renew_by,
        reminder_days=days,
    )
    services.store.commit(Change(updated=[current.with_reminder(policy, days)], ledger=[reminder]))
    return "sent"
