"""The fault matrix's row for reconciliation, run on its schedule."""

from __future__ import annotations

from .cells import (
    C401,
    C429,
    C500,
    C503,
    CONFLICT,
    MALFORMED,
    NO_SNS_CALL,
    RACE,
    RESET,
    SNS,
    THROTTLING,
    TIMEOUT,
    Line,
    problem,
    served,
)

LINE = Line(
    "reconcile",
    "reconcile",
    {
        C429: problem("stops rate_limited"),
        C500: problem("stops codat_unavailable"),
        C503: problem("stops codat_unavailable"),
        TIMEOUT: problem("stops codat_unavailable"),
        RESET: problem("stops codat_unavailable"),
        MALFORMED: problem("skips the company"),
        C401: problem("run fails", "CodatAuthFailed"),
        THROTTLING: problem("run fails", "StoreUnavailable"),
        RACE: served("pass complete"),  # the missed webhook arrived meanwhile: healed once, by it
        CONFLICT: served("pass complete"),
        SNS: served("pass complete", NO_SNS_CALL),
    },
    label="reconcile (on its schedule)",
    done_text="healed once",
    retry_text="next run heals",
)
