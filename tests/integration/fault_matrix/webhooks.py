"""The fault matrix's row for Codat's webhooks: the webhook endpoint and its handler."""

from __future__ import annotations

from .cells import CONFLICT, NO_SNS_CALL, RACE, SNS, THROTTLED, THROTTLING, Line, served, without_codat

LINE = Line(
    "POST /webhooks/codat",
    "webhook",
    {
        **without_codat(served(204)),
        THROTTLING: THROTTLED,
        RACE: served(204),  # a concurrent delivery of the same webhook won: acknowledged, applied once
        CONFLICT: served(204),
        SNS: served(204, NO_SNS_CALL),
    },
    label="`POST /webhooks/codat` (webhook handler)",
    done_text="applied once",
)
