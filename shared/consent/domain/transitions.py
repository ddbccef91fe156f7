"""The one table of what can happen to a connection: each kind of event, the status it leaves the connection in,
the ledger entry that records it, and the entry that records Codat confirming the same change made by us.

Every mapping between statuses, event kinds and ledger entry types is read from here."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from consent.domain.resources import ConnectionStatus, LedgerEntryType


class EventKind(StrEnum):
    CREATED = "created"  # PendingAuth
    LINKED = "linked"  # connected or reconnected
    FAILED = "failed"  # the customer cancelled or the platform refused; status as Codat reports it
    UNLINKED = "unlinked"
    DEAUTHORIZED = "deauthorized"
    DELETED = "deleted"
    INITIAL_READ = "initial_read"  # the first read after an authorization completed


@dataclass(frozen=True)
class Transition:
    # The status the connection is left in; None: as Codat reports it (FAILED), or unchanged.
    status: ConnectionStatus | None
    # The entry recording it when Codat (or reconciliation) reports it.
    entry: LedgerEntryType
    # The entry recording Codat reporting back the same change made by us (a customer's request, reconciliation).
    confirmation: LedgerEntryType | None = None


TRANSITIONS: dict[EventKind, Transition] = {
    EventKind.CREATED: Transition(
        ConnectionStatus.PENDING_AUTH, LedgerEntryType.CONNECTION_CREATED, LedgerEntryType.CODAT_CONNECTION_CREATED
    ),
    EventKind.LINKED: Transition(ConnectionStatus.LINKED, LedgerEntryType.CONNECTION_LINKED),
    EventKind.FAILED: Transition(None, LedgerEntryType.CONNECTION_FAILED),
    EventKind.UNLINKED: Transition(
        ConnectionStatus.UNLINKED, LedgerEntryType.CONNECTION_UNLINKED, LedgerEntryType.CODAT_CONNECTION_UNLINKED
    ),
    EventKind.DEAUTHORIZED: Transition(ConnectionStatus.DEAUTHORIZED, LedgerEntryType.CONNECTION_DEAUTHORIZED),
    EventKind.DELETED: Transition(None, LedgerEntryType.CONNECTION_DELETED, LedgerEntryType.CODAT_CONNECTION_DELETED),
    EventKind.INITIAL_READ: Transition(None, LedgerEntryType.SYNC_COMPLETED),
}
# The kind of event that leaves a connection in each status.
KIND_SETTING: dict[ConnectionStatus, EventKind] = {
    t.status: kind for kind, t in TRANSITIONS.items() if t.status is not None
}
