"""A change to one company's partition, and how a change too large for one transaction is cut into parts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consent.domain.records import CompanyRecord, ConnectionRecord, LedgerKey, LedgerRecord


@dataclass(frozen=True)
class Change:
    """One all-or-nothing change to a company's partition.

    `company` and `updated` connections are saved only if their stored version is still the one they
    carry (they were read at it); `added` connections must not exist yet. Ledger entries are appended."""

    company: CompanyRecord | None = None
    added: Sequence[ConnectionRecord] = ()
    updated: Sequence[ConnectionRecord] = ()
    ledger: Sequence[LedgerRecord] = ()
    # Ledger entries withdrawn (journey milestones that a late event showed never happened), by sort key.
    retracted: Sequence[LedgerKey] = ()
    # Ledger entries rewritten in place (same key, the entry must exist): a correction of what an earlier entry
    # said. Not published again: the relay publishes new entries only.
    replaced: Sequence[LedgerRecord] = ()
    # A processed webhook's id, remembered so that a redelivery changes nothing (the write fails if known).
    webhook_id: str | None = None

    @property
    def items(self) -> int:
        """How many items the change writes or deletes."""
        return (
            (self.company is not None)
            + len(self.added)
            + len(self.updated)
            + len(self.ledger)
            + len(self.retracted)
            + len(self.replaced)
            + (self.webhook_id is not None)
        )

    def parts(self, max_items: int) -> list[Change]:
        """The change as transactions of at most `max_items` items, for a store that cannot take it whole: the
        connections first, each with its own ledger entries, and the company, the rest of the ledger, the
        retractions, the replacements and the webhook id in the last part (so a redelivery is refused only once
        all is written).

        Not all or nothing any more: only for a use case that, retried, skips what an interrupted attempt wrote
        (reconciliation compares with Codat again; `company.deleted` skips connections already marked, and a read
        those that remember its webhook id)."""
        if self.items <= max_items:
            return [self]
        connections = [*self.added, *self.updated]
        added = {c.connection_id for c in self.added}
        own: dict[str, list[LedgerRecord]] = {c.connection_id: [] for c in connections}
        rest: list[LedgerRecord] = []
        for entry in self.ledger:
            own.get(entry.connection_id or "", rest).append(entry)
        tail = Change(
            company=self.company,
            ledger=rest,
            retracted=self.retracted,
            replaced=self.replaced,
            webhook_id=self.webhook_id,
        )
        if tail.items > max_items:
            raise ValueError(f"the company's own part of the change exceeds {max_items} items")
        # Filled from the end: the last part has the room the tail leaves, the others `max_items` each.
        chunks: list[list[ConnectionRecord]] = [[]]
        room, used = max_items - tail.items, 0
        for connection in reversed(connections):
            weight = 1 + len(own[connection.connection_id])
            if weight > max_items:
                raise ValueError(f"a connection's part of the change exceeds {max_items} items")
            if used + weight > room:
                chunks.insert(0, [])
                room, used = max_items, 0
            chunks[0].insert(0, connection)
            used += weight

        def part(members: list[ConnectionRecord], then: Change | None = None) -> Change:
            return Change(
                company=then.company if then else None,
                added=[c for c in members if c.connection_id in added],
                updated=[c for c in members if c.connection_id not in added],
                ledger=[*(e for c in members for e in own[c.connection_id]), *(then.ledger if then else ())],
                retracted=then.retracted if then else (),
                replaced=then.replaced if then else (),
                webhook_id=then.webhook_id if then else None,
            )

        return [*(part(members) for members in chunks[:-1]), part(chunks[-1], tail)]
