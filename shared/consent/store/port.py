"""The store port: what use cases need from persistence, and the failures they must handle."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

from consent.domain.records import CompanyRecord, CompanyView, ConnectionRecord, LedgerRecord
from consent.store.change import Change


class StoreUnavailable(Exception):
    """The table could not be read or written (throttled beyond retries, or unreachable)."""


class StoreRejected(Exception):
    """The table refused the request as invalid (an item or a transaction over DynamoDB's limits, …): the same
    request will never succeed, so it is not retried as an outage is."""


class ConflictError(Exception):
    """A conditional write lost a race: what it read has changed. Safe to re-read and retry."""


class QuotaExceeded(Exception):
    """A customer's quota refused the request before anything was done. `retry_after`: seconds until the same
    request may pass (None when only the customer's own action can lift it, as erasing a company)."""

    def __init__(self, kind: str, retry_after: int | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.retry_after = retry_after


class CursorError(ValueError):
    """A pagination cursor that this store did not issue for this caller."""


class IdempotencyOutcome(StrEnum):
    ACQUIRED = "acquired"  # go ahead; `token` proves it
    REPLAY = "replay"  # done before: answer `status` and `body` again
    MISMATCH = "mismatch"  # the key was used with another request body
    IN_PROGRESS = "in_progress"  # another request with this key is running
    ERASED = "erased"  # the key made a company that has been erased since: spent, whatever the body


@dataclass(frozen=True)
class IdempotencyClaim:
    outcome: IdempotencyOutcome
    token: str | None = None
    status: int | None = None
    body: str | None = None
    # A previous attempt with this key reached Codat and may have created something there.
    previous_attempt_reached_codat: bool = False


@dataclass(frozen=True)
class IdempotencyResult:
    """The response to keep under a claimed key, written in the same transaction as the change."""

    scope: str
    key: str
    token: str
    status: int
    body: str


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class ParkedWebhook:
    """What is kept of a webhook that cannot be applied: identifiers and the reason, no payload."""

    webhook_id: str
    event_type: str
    generated_at: str
    reason: str
    company_id: str | None = None
    connection_id: str | None = None


@dataclass(frozen=True, order=True)
class LifecycleDue:
    """A connection the lifecycle run has something to do for (a reminder, a refresh), or a company (its journeys'
    data to read again, or to settle as time makes it stale), as its index knows it."""

    due_at: datetime
    company_id: str
    connection_id: str  # "": the company itself

    @property
    def is_company(self) -> bool:
        return not self.connection_id


class ConsentStore(ABC):
    """Persistence of the consent domain. Every write that must not race is conditional or transactional."""

    # -- idempotency of API requests ---------------------------------------------------------

    @abstractmethod
    def claim_idempotency_key(self, scope: str, key: str, fingerprint: str) -> IdempotencyClaim:
        """Claim `key` for a request whose body hashes to `fingerprint`, or say why not."""

    @abstractmethod
    def idempotency_key_state(self, scope: str, key: str, fingerprint: str) -> IdempotencyClaim:
        """Where a key stands without claiming it: REPLAY, MISMATCH or IN_PROGRESS."""

    @abstractmethod
    def release_idempotency_key(self, scope: str, key: str, token: str, *, reached_codat: bool) -> None:
        """Give up a claim after a failure, so that a retry can claim it (remembering if Codat was reached)."""

    # -- companies -------------------------------------------------------------------------

    @abstractmethod
    def create_company(
        self,
        company: CompanyRecord,
        ledger: list[LedgerRecord],
        idempotency: IdempotencyResult | None,
        *,
        max_companies: int | None = None,
    ) -> None:
        """Write a new company, its first ledger entries and the idempotent response, all or nothing; and count
        it among its customer's companies. With `max_companies`, QuotaExceeded (nothing written) when the customer
        has that many already."""

    # -- per-customer quotas ---------------------------------------------------------------------

    @abstractmethod
    def customer_companies(self, customer_id: str) -> int:
        """How many companies the customer has (created and not erased)."""

    @abstractmethod
    def spend_codat_allowance(self, customer_id: str, now: datetime, *, per_minute: int, per_day: int) -> None:
        """Count one request of the customer's that may call Codat, or raise QuotaExceeded (nothing counted)
        when the customer has made `per_minute` of them this UTC minute or `per_day` this UTC day."""

    @abstractmethod
    def get_company(
        self, customer_id: str, company_id: str, *, connections_limit: int | None = None
    ) -> CompanyView | None:
        """The caller's company with its connections, or None (also when it is another customer's).

        With `connections_limit`, at most that many connections in one read, and the view's `connections_cursor`
        says where the rest start (for `list_connections`)."""

    @abstractmethod
    def list_companies(
        self, customer_id: str, *, limit: int, cursor: str | None, connections_limit: int | None = None
    ) -> Page[CompanyView]:
        """The caller's companies, newest first. With `connections_limit`, each with at most that many connections
        and, when it has more, its `connections_cursor` (as `get_company` gives)."""

    # The most items one `commit` can take (DynamoDB: 100 a transaction); None: no limit.
    max_items_per_commit: int | None = None

    @abstractmethod
    def commit(self, change: Change) -> None:
        """Apply `change` atomically, or raise ConflictError if anything it read has changed since."""

    def commit_in_parts(self, change: Change) -> None:
        """Apply `change` in as many commits as it needs (see `Change.parts`: only for a use case that skips,
        when retried, what an interrupted attempt wrote)."""
        limit = self.max_items_per_commit
        for part in change.parts(limit) if limit is not None else [change]:
            self.commit(part)

    @abstractmethod
    def webhook_seen(self, webhook_id: str) -> bool:
        """Whether a webhook with this id was already processed (within the last 8 days)."""

    @abstractmethod
    def park_webhook(self, parked: ParkedWebhook) -> None:
        """Record an authentic webhook that can never be applied, with the reason, so it is not retried."""

    @abstractmethod
    def get_company_by_id(self, company_id: str) -> CompanyView | None:
        """The company with its connections whoever owns it: for Codat's webhooks, never for API callers."""

    @abstractmethod
    def company_owner(self, company_id: str) -> str | None:
        """The customer who owns the company, or None if there is no such company (one cheap read)."""

    @abstractmethod
    def list_connections(
        self, customer_id: str, company_id: str, *, limit: int, cursor: str | None
    ) -> Page[ConnectionRecord] | None:
        """The company's connections, oldest first; None if the company is not the caller's."""

    @abstractmethod
    def list_ledger(
        self, customer_id: str, company_id: str, *, limit: int, cursor: str | None
    ) -> Page[LedgerRecord] | None:
        """The company's consent ledger, oldest first; None if the company is not the caller's."""

    @abstractmethod
    def erase_company(self, company_id: str, tombstone: LedgerRecord) -> None:
        """Delete every item about the company, leaving only `tombstone` (which holds no personal data).

        The company item goes first, with the tombstone, in one transaction (a reader sees the company whole or
        not at all); the rest after. An erasure interrupted after the first step is finished by `finish_erasure`."""

    def finish_erasure(self, customer_id: str, company_id: str) -> bool:
        """Delete what an interrupted erasure of the customer's company left (all but its tombstone); whether
        there was any. A store that erases in one step has nothing to finish."""
        return False

    # -- the consent lifecycle ------------------------------------------------------------------

    @abstractmethod
    def due_lifecycle(self, until: datetime) -> Iterator[LifecycleDue]:
        """The connections and companies the lifecycle has something to do for by `until`
        (`ConnectionRecord.lifecycle_at`: a reminder, a keep-alive refresh; `CompanyRecord.lifecycle_at`: data to
        read again or to settle), oldest due first, read lazily from an index of them (never a scan of the
        table); a connection written meanwhile may be missed or seen with its old due time (the caller reads it again
        before acting)."""

    @abstractmethod
    def spend_keep_alive_request(self, day: str, limit: int) -> bool:
        """Count one keep-alive request to Codat on UTC `day` (YYYY-MM-DD), if fewer than `limit` were; whether it
        was (concurrent runs share the count)."""

    # -- reconciliation: resumable passes over every company ----------------------------------

    @abstractmethod
    def sweep_companies(self, cursor: str | None, *, limit: int) -> Page[str]:
        """Company ids in the table's own order, from `cursor` (None: a new pass); `next_cursor` is None once
        the pass is complete. A page may hold no company at all. For reconciliation only: it reads the table."""

    @abstractmethod
    def sweep_cursor_after(self, company_id: str) -> str:
        """The cursor that continues a pass right after `company_id` (to stop in the middle of a page)."""

    @abstractmethod
    def reconcile_cursor(self) -> str | None:
        """Where the last reconciliation run stopped, or None: the next run starts a new pass."""

    @abstractmethod
    def save_reconcile_cursor(self, cursor: str | None) -> None:
        """Remember where this run stopped (None: the pass is complete, the next run starts over)."""
