"""The consent store: one DynamoDB table holding companies, connections, journey progress and the ledger (the
records it keeps are the domain's: `consent.domain.records`)."""

from consent.store.change import Change
from consent.store.port import (
    ConflictError,
    ConsentStore,
    CursorError,
    IdempotencyClaim,
    IdempotencyOutcome,
    LifecycleDue,
    ParkedWebhook,
    QuotaExceeded,
    StoreRejected,
    StoreUnavailable,
)

__all__ = [
    "Change",
    "ConflictError",
    "ConsentStore",
    "CursorError",
    "IdempotencyClaim",
    "IdempotencyOutcome",
    "LifecycleDue",
    "ParkedWebhook",
    "QuotaExceeded",
    "StoreRejected",
    "StoreUnavailable",
]
