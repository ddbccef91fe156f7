"""The fault matrix's row for the consent lifecycle (reminders), run on its schedule."""

from __future__ import annotations

from .cells import CONFLICT, NO_CODAT_CALL, NO_SNS_CALL, RACE, SNS, THROTTLING, Line, problem, served, without_codat

LINE = Line(
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
assert all(LINE.cells[f].untouched == NO_CODAT_CALL for f in LINE.cells if f.name.startswith("CODAT"))
