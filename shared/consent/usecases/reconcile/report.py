"""What a reconciliation run reports, and why a run stops."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum

from consent.codat.errors import (
    CodatBudgetExhausted,
    CodatError,
    CodatRateLimited,
    CodatTimeout,
    CodatUnavailable,
)
from consent.codat.models import CodatConnection, DataStatus

# Codat failures after which the run stops and the next one resumes at the same company.
STOPPING = (CodatBudgetExhausted, CodatRateLimited, CodatUnavailable, CodatTimeout)


class Stop(StrEnum):
    """Why a run ended."""

    PASS_COMPLETE = "pass_complete"  # noqa: S105 - every company was checked: the next run starts a new pass
    BUDGET_SPENT = "budget_spent"
    TIME_LOW = "time_low"
    RATE_LIMITED = "rate_limited"
    CODAT_UNAVAILABLE = "codat_unavailable"


@dataclass
class CompanyCheck:
    """What reconciling one company did."""

    changed: bool = False  # anything written (a lastSyncAt moving forward writes no ledger entry)
    entries: int = 0  # ledger entries written, journey milestones included
    adopted: int = 0
    expired: int = 0
    data_reads_healed: int = 0  # data types whose missed `read.completed` was recorded from Codat's data status
    data_reads_ambiguous: int = 0  # data types read in Codat that several Linked connections could have read: left
    # Set when Codat stopped answering part-way: what was observed is recorded, the company is checked again.
    stop: Stop | None = None


@dataclass
class ReconcileReport:
    """One run, for the logs and the invoker: identifiers and counts only."""

    companies_checked: int = 0
    companies_healed: int = 0
    companies_skipped: int = 0  # Codat refused or garbled the answer, the company kept changing or the table refused
    ledger_entries: int = 0
    adopted: int = 0
    expired: int = 0
    data_reads_healed: int = 0
    data_reads_ambiguous: int = 0
    codat_requests: int = 0
    stopped: Stop = Stop.PASS_COMPLETE
    skipped_ids: list[str] = field(default_factory=list)
    # Codat's webhook consumer for CODAT_WEBHOOK_URL: a `ConsumerStatus` value, "unknown" when Codat did not
    # answer (or the run had no time or budget to ask), None when no webhook URL is configured.
    webhook_consumer: str | None = None

    def add(self, check: CompanyCheck) -> None:
        self.companies_checked += 1
        self.companies_healed += 1 if check.changed else 0
        self.ledger_entries += check.entries
        self.adopted += check.adopted
        self.expired += check.expired
        self.data_reads_healed += check.data_reads_healed
        self.data_reads_ambiguous += check.data_reads_ambiguous

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "stopped": self.stopped.value}


@dataclass(frozen=True)
class Observation:
    """What Codat reported about one company, and when we looked."""

    at: datetime  # just before asking: anything Codat did earlier is reflected in its answer
    connections: dict[str, CodatConnection]
    company_in_codat: bool
    expiring: frozenset[str]  # PendingAuth for too long: deleted in Codat (or already gone)
    expired_at: datetime
    # Codat's status of each data type it has read for the company (`GET …/dataStatus`): empty when not asked (no
    # journey of the company needs data, or no Linked connection could have read it).
    data: dict[str, DataStatus] = field(default_factory=dict)


def stop_for(error: CodatError) -> Stop:
    if isinstance(error, CodatBudgetExhausted):
        return Stop.BUDGET_SPENT
    if isinstance(error, CodatRateLimited):
        return Stop.RATE_LIMITED
    return Stop.CODAT_UNAVAILABLE
