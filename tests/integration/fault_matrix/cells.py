"""What a cell of the fault matrix is: the columns (`Failure`), what a cell expects (`Outcome`, `Stored`, the
proofs that a failure cannot reach a row), a row with its cells (`Line`), and the shorthands the areas' modules
write their cells with. Plain data: no fixtures, nothing armed, nothing asserted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum


class Failure(Enum):
    """The columns: one failure of something the rows depend on."""

    CODAT_429 = "Codat 429 + Retry-After"
    CODAT_500 = "Codat 500"
    CODAT_503 = "Codat 503"
    CODAT_TIMEOUT = "Codat timeout"
    CODAT_RESET = "Codat connection reset"
    CODAT_MALFORMED = "Codat malformed JSON"
    CODAT_401 = "Codat 401"
    DYNAMODB_THROTTLING = "DynamoDB throttling"
    DYNAMODB_RACE = "DynamoDB conditional-check race"
    DYNAMODB_CONFLICT = "DynamoDB transaction conflict"
    SNS_FAILURE = "SNS publish failure"


C429, C500, C503, TIMEOUT, RESET, MALFORMED, C401, THROTTLING, RACE, CONFLICT, SNS = Failure
CODAT_FAILURES = (C429, C500, C503, TIMEOUT, RESET, MALFORMED, C401)
DYNAMODB_FAILURES = (THROTTLING, RACE, CONFLICT)


class Stored(Enum):
    NOTHING = "nothing"  # the table exactly as before the request (and no Idempotency-Key left claimed)
    ONCE = "once"  # the row's change, once, with its consent events in the outbox once
    READ = "read"  # a read: nothing to store, and nothing stored


# Where a failure cannot reach a row, the cell proves it: the failure is armed for every call, and none is made.
NO_CODAT_CALL = "no Codat call"
NO_DYNAMODB_CALL = "no DynamoDB call"
NO_DYNAMODB_WRITE = "no DynamoDB write"
NO_SNS_CALL = "no SNS call"


@dataclass(frozen=True)
class Outcome:
    """One cell: the answer, what is stored, and (for a failure that cannot reach the row) the proof of it."""

    status: int | str  # the HTTP status, or what the function did (relay, reconciliation)
    code: str | None = None  # the problem's `code` (or the error a function run fails with)
    stored: Stored = Stored.ONCE
    done_in_codat: bool = False  # nothing stored, but Codat did its part: the retry must find it, not repeat it
    untouched: str | None = None
    note: str | None = None  # said in the table only


@dataclass(frozen=True)
class Line:
    """One row of the matrix: a route of template.yaml or a function, its cell under each failure, and how
    docs/reliability.md names it and words its cells."""

    name: str  # the matrix key: the template's route key, or the function
    slug: str  # in test ids
    cells: Mapping[Failure, Outcome]
    label: str = ""  # the row's name in docs/reliability.md (default: `name` as code)
    nothing_text: str = "nothing stored"
    done_text: str = "stored once"
    retry_text: str = "retry safe"

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", f"`{self.name}`")


# -- shorthands ----------------------------------------------------------------------------------------------------


def problem(status: int | str, code: str | None = None, *, done_in_codat: bool = False) -> Outcome:
    return Outcome(status, code, Stored.NOTHING, done_in_codat)


def served(status: int | str, untouched: str | None = None) -> Outcome:
    return Outcome(status, stored=Stored.ONCE, untouched=untouched)


def read(status: int, untouched: str | None = None) -> Outcome:
    return Outcome(status, stored=Stored.READ, untouched=untouched)


def codat_problems(*, done_in_codat: Sequence[Failure] = ()) -> dict[Failure, Outcome]:
    """What a route answers when the Codat call it needs fails beyond the client's retries."""
    answers = {
        C429: (503, "codat_unavailable"),
        C500: (503, "codat_unavailable"),
        C503: (503, "codat_unavailable"),
        TIMEOUT: (504, "codat_timeout"),
        RESET: (503, "codat_unavailable"),
        MALFORMED: (502, "codat_bad_response"),
        C401: (502, "codat_auth_failed"),
    }
    return {f: problem(status, code, done_in_codat=f in done_in_codat) for f, (status, code) in answers.items()}


def without_codat(outcome: Outcome) -> dict[Failure, Outcome]:
    return {f: Outcome(outcome.status, stored=outcome.stored, untouched=NO_CODAT_CALL) for f in CODAT_FAILURES}


def without_dynamodb(outcome: Outcome, untouched: str, failures: Sequence[Failure]) -> dict[Failure, Outcome]:
    return {f: Outcome(outcome.status, stored=outcome.stored, untouched=untouched) for f in failures}


THROTTLED = problem(503, "store_unavailable")
