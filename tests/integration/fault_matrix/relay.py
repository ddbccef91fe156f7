"""The fault matrix's row for the outbox relay: the table's stream published to SNS."""

from __future__ import annotations

from .cells import DYNAMODB_FAILURES, NO_DYNAMODB_CALL, SNS, Line, problem, served, without_codat, without_dynamodb

LINE = Line(
    "outbox relay",
    "outbox_relay",
    {
        **without_codat(served("published")),
        **without_dynamodb(served("published"), NO_DYNAMODB_CALL, DYNAMODB_FAILURES),
        SNS: problem("kept on the stream"),
    },
    label="outbox relay (table stream → SNS)",
    nothing_text="",
    done_text="",  # "published" says it (and the subscriber gets each event once)
    retry_text="published once on Lambda's retry",
)
