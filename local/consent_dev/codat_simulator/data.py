"""Codat's data side: the data types each kind of source supplies, the pull operations (Codat's "datasets") a read
makes, one per data type and connection, and each data type's status per company (``GET .../dataStatus``).

The names are Codat's: the spec's ``DataStatus.dataType`` and ``PullOperation.status`` enums (a contract test keeps
them the same). This module is state only; ``SimState`` starts and completes the reads, ``api`` answers for them."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

# How long after it is queued a read completes (``read.completed``), on the simulator's clock.
DEFAULT_READ_DELAY = 2.0

ACCOUNTING_DATA_TYPES: tuple[str, ...] = (
    "accountTransactions", "balanceSheet", "bankAccounts", "bankTransactions", "billCreditNotes", "billPayments",
    "bills", "cashFlowStatement", "chartOfAccounts", "company", "creditNotes", "customers", "directCosts",
    "directIncomes", "invoices", "itemReceipts", "items", "journalEntries", "journals", "paymentMethods", "payments",
    "profitAndLoss", "purchaseOrders", "salesOrders", "suppliers", "taxRates", "trackingCategories", "transfers",
)  # fmt: skip
BANKING_DATA_TYPES: tuple[str, ...] = (
    "banking-accountBalances", "banking-accounts", "banking-transactionCategories", "banking-transactions",
)  # fmt: skip
COMMERCE_DATA_TYPES: tuple[str, ...] = (
    "commerce-companyInfo", "commerce-customers", "commerce-disputes", "commerce-locations", "commerce-orders",
    "commerce-paymentMethods", "commerce-payments", "commerce-productCategories", "commerce-products",
    "commerce-taxComponents", "commerce-transactions",
)  # fmt: skip
DATA_TYPES: tuple[str, ...] = ACCOUNTING_DATA_TYPES + BANKING_DATA_TYPES + COMMERCE_DATA_TYPES

PULL_STATUSES: tuple[str, ...] = (
    "Initial", "Queued", "Fetching", "MapQueued", "Mapping", "Complete", "FetchError", "MapError", "InternalError",
    "ProcessingQueued", "Processing", "ProcessingError", "ValidationQueued", "Validating", "ValidationError",
    "AuthError", "Cancelled", "NotSupported", "RateLimitError", "PermissionsError", "PrerequisiteNotMet",
)  # fmt: skip
# A read in one of these is still under way: Codat refuses to queue its data type again until it ends.
IN_PROGRESS_STATUSES = frozenset(
    ("Initial", "Queued", "Fetching", "MapQueued", "Mapping", "ProcessingQueued", "Processing", "ValidationQueued",
     "Validating")
)  # fmt: skip
COMPLETE = "Complete"
# How a read can end other than Complete: what a data type's next read can be made to end with.
FAILURE_STATUSES: tuple[str, ...] = tuple(s for s in PULL_STATUSES if s not in IN_PROGRESS_STATUSES and s != COMPLETE)

# What a connection of each kind of source can read (queue).
SUPPLIED_DATA_TYPES: dict[str, tuple[str, ...]] = {
    "Accounting": ACCOUNTING_DATA_TYPES,
    "Banking": BANKING_DATA_TYPES,
    "BankFeed": BANKING_DATA_TYPES,
    "Commerce": COMMERCE_DATA_TYPES,
}
# What the first read after each authorization fetches ("fetch on first link"), which `POST .../data/all` refreshes.
ACCOUNTING_FIRST_READ: tuple[str, ...] = (
    "company", "chartOfAccounts", "balanceSheet", "profitAndLoss", "invoices", "bills", "customers", "suppliers",
    "bankAccounts",
)  # fmt: skip
BANKING_FIRST_READ: tuple[str, ...] = ("banking-accounts", "banking-accountBalances", "banking-transactions")
COMMERCE_FIRST_READ: tuple[str, ...] = (
    "commerce-companyInfo", "commerce-customers", "commerce-orders", "commerce-payments", "commerce-transactions",
)  # fmt: skip
INITIAL_READ_DATA_TYPES: dict[str, tuple[str, ...]] = {
    "Accounting": ACCOUNTING_FIRST_READ,
    "Banking": BANKING_FIRST_READ,
    "BankFeed": BANKING_FIRST_READ,
    "Commerce": COMMERCE_FIRST_READ,
}
# Expense, Other, Unknown: the company's details only.
_OTHER_DATA_TYPES: tuple[str, ...] = ("company",)

# Codat documents no answer of its own for queueing a data type already being read; this is the text of the 400 it
# documents for the same case on a product refresh (its "Read in progress" example).
READ_IN_PROGRESS = (
    "Data cannot be refreshed while a read operation is in progress. Allow the read to complete before attempting "
    "to refresh."
)


def supplied_data_types(source_type: str) -> tuple[str, ...]:
    return SUPPLIED_DATA_TYPES.get(source_type, _OTHER_DATA_TYPES)


def initial_read_data_types(source_type: str) -> tuple[str, ...]:
    return INITIAL_READ_DATA_TYPES.get(source_type, _OTHER_DATA_TYPES)


def is_errored(status: str) -> bool:
    return status.endswith("Error")


@dataclass
class Dataset:
    """One pull operation: a read of one data type from one connection."""

    id: str
    company_id: str
    connection_id: str
    data_type: str
    requested: str
    status: str = "Queued"
    completed: str | None = None

    @property
    def in_progress(self) -> bool:
        return self.status in IN_PROGRESS_STATUSES


def dataset_json(dataset: Dataset) -> dict[str, Any]:
    """The spec's ``PullOperation``."""
    out: dict[str, Any] = {
        "id": dataset.id,
        "companyId": dataset.company_id,
        "connectionId": dataset.connection_id,
        "dataType": dataset.data_type,
        "status": dataset.status,
        "requested": dataset.requested,
        "progress": 0 if dataset.in_progress else 100,
        "isCompleted": dataset.status == COMPLETE,
        "isErrored": is_errored(dataset.status),
    }
    if dataset.completed is not None:
        out["completed"] = dataset.completed
    if is_errored(dataset.status):
        out["errorMessage"] = f"The read of {dataset.data_type} ended with {dataset.status}."
    return out


@dataclass
class CompanyData:
    """One company's reads: its pull operations in the order queued, the latest successful one per data type, and
    the endings armed for the next reads of a data type (``fail_next``)."""

    datasets: dict[str, Dataset] = field(default_factory=dict)
    last_success: dict[str, Dataset] = field(default_factory=dict)
    failures: dict[str, deque[str]] = field(default_factory=dict)

    def open(self, dataset_id: str, company_id: str, connection_id: str, data_type: str, requested: str) -> Dataset:
        dataset = Dataset(dataset_id, company_id, connection_id, data_type, requested)
        self.datasets[dataset.id] = dataset
        return dataset

    def in_progress(self, data_type: str) -> bool:
        return any(d.in_progress for d in self.datasets.values() if d.data_type == data_type)

    def finish(self, dataset: Dataset, completed: str, status: str | None = None) -> Dataset:
        """End a read: with ``status`` when given (the connection went away), else with the ending armed for its
        data type, else Complete."""
        if status is None:
            armed = self.failures.get(dataset.data_type)
            status = armed.popleft() if armed else COMPLETE
            if armed is not None and not armed:
                del self.failures[dataset.data_type]
        dataset.status, dataset.completed = status, completed
        if status == COMPLETE:
            self.last_success[dataset.data_type] = dataset
        return dataset

    def fail_next(self, data_type: str, status: str, times: int = 1) -> None:
        self.failures.setdefault(data_type, deque()).extend([status] * times)

    def clear_failures(self, data_type: str | None = None) -> None:
        if data_type is None:
            self.failures.clear()
        else:
            self.failures.pop(data_type, None)

    def status_json(self) -> dict[str, Any]:
        """The spec's ``DataStatuses``: every data type ever queued, with its latest read and latest success."""
        latest: dict[str, Dataset] = {}
        for dataset in self.datasets.values():
            latest[dataset.data_type] = dataset
        out: dict[str, Any] = {}
        for data_type, dataset in latest.items():
            entry: dict[str, Any] = {
                "dataType": data_type,
                "currentStatus": dataset.status,
                "latestSyncId": dataset.id,
            }
            success = self.last_success.get(data_type)
            if success is not None and success.completed is not None:
                entry["lastSuccessfulSync"] = success.completed
                entry["latestSuccessfulSyncId"] = success.id
            out[data_type] = entry
        return out
