"""The fault matrix's rows for the consent lifecycle, run on its schedule: its reminders (a bank connection's, which
call no one but the table), its keep-alive refreshes (an idle accounting connection's, queued in Codat within the
day's budget) and its end of one-off consent (a credit check's connections, unlinked in Codat once its data is read)."""

from __future__ import annotations

from .cells import (
    C401,
    C429,
    C500,
    C503,
    CONFLICT,
    MALFORMED,
    NO_CODAT_CALL,
    NO_SNS_CALL,
    RACE,
    RESET,
    SNS,
    THROTTLING,
    TIMEOUT,
    Line,
    problem,
    served,
    without_codat,
)

REMINDERS = Line(
    "lifecycle",
    "lifecycle",
    {
        **without_codat(served("sent")),  # reminders call no one but the table
        THROTTLING: problem("run fails", "StoreUnavailable"),
        RACE: served("sent"),  # another run sent it meanwhile: once, by it
        CONFLICT: served("sent"),  # read again and sent
        SNS: served("sent", NO_SNS_CALL),
    },
    label="lifecycle (on its schedule)",
    done_text="sent once",
    retry_text="next run sends",
)
assert all(REMINDERS.cells[f].untouched == NO_CODAT_CALL for f in REMINDERS.cells if f.name.startswith("CODAT"))

# Codat failing beyond the client's retries: the run stops asking Codat and ends well, the refresh deferred
# (KeepAliveDeferred) and still due; the request, keyed by connection and due time, is replayed by Codat on the next
# run where Codat did it already (within its 90 minutes; later, the read it queued is under way or has synced).
KEEP_ALIVE = Line(
    "lifecycle keep-alive",
    "lifecycle_keep_alive",
    {
        C429: problem("deferred"),
        C500: problem("deferred"),
        C503: problem("deferred"),
        TIMEOUT: problem("deferred", done_in_codat=True),
        RESET: problem("deferred"),
        MALFORMED: problem("deferred", done_in_codat=True),
        C401: problem("run fails", "CodatAuthFailed"),  # our API key refused: LifecycleErrorsAlarm
        THROTTLING: problem("run fails", "StoreUnavailable", done_in_codat=True),  # the write after Codat queued
        RACE: served("refreshed"),  # another run refreshed it meanwhile: once, by it
        CONFLICT: served("refreshed"),  # read again and written; what it asked of Codat is not asked again
        SNS: served("refreshed", NO_SNS_CALL),
    },
    label="lifecycle keep-alive (on its schedule)",
    nothing_text="still due",
    done_text="refreshed once",
    retry_text="next run refreshes",
)

# Codat failing beyond the client's retries: the run stops asking Codat and ends well, the unlink deferred and the
# company still due; the request, keyed by the connection's latest event (unchanged while it stays Linked here), is
# replayed by Codat on the next run where Codat did it already (within its 90 minutes).
ONE_OFF = Line(
    "lifecycle one-off consent",
    "lifecycle_one_off",
    {
        C429: problem("deferred"),
        C500: problem("deferred"),
        C503: problem("deferred"),
        TIMEOUT: problem("deferred", done_in_codat=True),
        RESET: problem("deferred"),
        MALFORMED: problem("deferred", done_in_codat=True),
        C401: problem("run fails", "CodatAuthFailed"),  # our API key refused: LifecycleErrorsAlarm
        THROTTLING: problem("run fails", "StoreUnavailable", done_in_codat=True),  # the write after Codat unlinked
        RACE: served("unlinked"),  # another run unlinked them meanwhile: once, by it
        CONFLICT: served("unlinked"),  # read again and written; what it asked of Codat is not asked again
        SNS: served("unlinked", NO_SNS_CALL),
    },
    label="lifecycle one-off consent (on its schedule)",
    nothing_text="still due",
    done_text="unlinked once",
    retry_text="next run unlinks",
)

LINES: tuple[Line, ...] = (REMINDERS, KEEP_ALIVE, ONE_OFF)
