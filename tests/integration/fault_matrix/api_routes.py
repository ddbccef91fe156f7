"""The fault matrix's rows for the API's routes (all but the webhook endpoint), in the order of the table."""

from __future__ import annotations

from .cells import (
    CONFLICT,
    DYNAMODB_FAILURES,
    MALFORMED,
    NO_DYNAMODB_CALL,
    NO_DYNAMODB_WRITE,
    NO_SNS_CALL,
    RACE,
    SNS,
    THROTTLED,
    THROTTLING,
    TIMEOUT,
    Line,
    Outcome,
    Stored,
    codat_problems,
    problem,
    read,
    served,
    without_codat,
    without_dynamodb,
)

_A_READ = {
    **without_codat(read(200)),
    THROTTLING: THROTTLED,
    **without_dynamodb(read(200), NO_DYNAMODB_WRITE, [RACE, CONFLICT]),
    SNS: read(200, NO_SNS_CALL),
}
# The customer's request count could not be written: the request goes on, uncounted (the quota guards Codat's
# allowance; Codat's own 429 still does).
_UNCOUNTED = Outcome(200, stored=Stored.READ, note="served uncounted")
_THROTTLED_AFTER_CODAT = problem(503, "store_unavailable", done_in_codat=True)

LINES: tuple[Line, ...] = (
    Line(
        "POST /companies",
        "create_company",
        {
            **codat_problems(done_in_codat=[TIMEOUT, MALFORMED]),
            THROTTLING: _THROTTLED_AFTER_CODAT,
            RACE: served(201),  # another request with the same Idempotency-Key won: its answer, replayed
            CONFLICT: served(201),
            SNS: served(201, NO_SNS_CALL),
        },
    ),
    Line(
        "POST /companies/{companyId}/journeys",
        "start_journey",
        {
            **without_codat(served(200)),
            THROTTLING: THROTTLED,
            RACE: served(200),
            CONFLICT: served(200),
            SNS: served(200, NO_SNS_CALL),
        },
    ),
    Line("GET /companies", "list_companies", _A_READ),
    Line("GET /companies/{companyId}", "get_company", _A_READ),
    Line("GET /companies/{companyId}/connections", "list_connections", _A_READ),
    Line("GET /companies/{companyId}/events", "list_events", _A_READ),
    Line(
        "GET /journeys",
        "journeys",
        {
            **without_codat(read(200)),
            **without_dynamodb(read(200), NO_DYNAMODB_CALL, DYNAMODB_FAILURES),
            SNS: read(200, NO_SNS_CALL),
        },
        label="`GET /journeys` (from configuration)",
        nothing_text="",
    ),
    Line(
        "GET /integrations",
        "integrations",
        {
            **codat_problems(),
            THROTTLING: _UNCOUNTED,
            RACE: read(200),  # another request of the customer's counted first: both counted
            CONFLICT: _UNCOUNTED,
            SNS: read(200, NO_SNS_CALL),
        },
        label="`GET /integrations` (nothing cached)",
        nothing_text="",
    ),
    Line(
        "POST /companies/{companyId}/connections",
        "create_connection",
        {
            **codat_problems(done_in_codat=[TIMEOUT, MALFORMED]),
            THROTTLING: _THROTTLED_AFTER_CODAT,
            RACE: served(200),  # the same request from another tab won: its connection, reused
            CONFLICT: served(201),
            SNS: served(201, NO_SNS_CALL),
        },
    ),
    Line(
        "GET /companies/{companyId}/access-token",
        "access_token",
        {
            **codat_problems(),
            THROTTLING: THROTTLED,
            RACE: read(200),  # another request of the customer's counted first: both counted
            CONFLICT: _UNCOUNTED,
            SNS: read(200, NO_SNS_CALL),
        },
    ),
    Line(
        "POST /companies/{companyId}/sdk-sessions",
        "sdk_session",
        {
            **codat_problems(),
            THROTTLING: THROTTLED,
            RACE: served(201),  # the customer's other tab opened a session meanwhile: both kept
            CONFLICT: served(201),
            SNS: served(201, NO_SNS_CALL),
        },
    ),
    Line(
        "DELETE /companies/{companyId}/connections/{connectionId}",
        "revoke",
        {
            **codat_problems(done_in_codat=[TIMEOUT, MALFORMED]),
            THROTTLING: _THROTTLED_AFTER_CODAT,
            RACE: served(200),
            CONFLICT: served(200),
            SNS: served(200, NO_SNS_CALL),
        },
    ),
    Line(
        "DELETE /companies/{companyId}",
        "erase",
        {
            **codat_problems(done_in_codat=[TIMEOUT]),
            MALFORMED: served(204),  # a DELETE's answer has no body to read: Codat's success is taken as it is
            THROTTLING: _THROTTLED_AFTER_CODAT,
            RACE: served(204),
            CONFLICT: served(204),
            SNS: served(204, NO_SNS_CALL),
        },
        done_text="erased once",
    ),
)
