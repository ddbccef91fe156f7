"""The consent store: one DynamoDB table holding companies, connections, journey progress and the ledger."""

from consent.store.port import (
    ConflictError,
    ConsentStore,
    CursorError,
    IdempotencyClaim,
    IdempotencyOutcome,
    StoreUnavailable,
)
from consent.store.records import CompanyRecord, CompanyView, ConnectionRecord, LedgerRecord

__all__ = [
    "CompanyRecord",
    "CompanyView",
    "ConflictError",
    "ConnectionRecord",
    "ConsentStore",
    "CursorError",
    "IdempotencyClaim",
    "IdempotencyOutcome",
    "LedgerRecord",
    "StoreUnavailable",
]
