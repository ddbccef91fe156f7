"""The consent store: one DynamoDB table holding companies, connections, journey progress and the ledger."""

from consent.store.port import (
    Change,
    ConflictError,
    ConsentStore,
    CursorError,
    IdempotencyClaim,
    IdempotencyOutcome,
    ParkedWebhook,
    QuotaExceeded,
    StoreRejected,
    StoreUnavailable,
)
from consent.store.records import CompanyRecord, CompanyView, ConnectionRecord, LedgerKey, LedgerRecord

__all__ = [
    "Change",
    "CompanyRecord",
    "CompanyView",
    "ConflictError",
    "ConnectionRecord",
    "ConsentStore",
    "CursorError",
    "IdempotencyClaim",
    "IdempotencyOutcome",
    "LedgerKey",
    "LedgerRecord",
    "ParkedWebhook",
    "QuotaExceeded",
    "StoreRejected",
    "StoreUnavailable",
]
