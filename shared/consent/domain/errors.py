"""What the consent rules refuse, as errors the use cases raise: each with the stable `code` callers branch on.

The API maps each kind to its HTTP status in one place (`consent.api.problems.problem_for`); nothing here knows
HTTP. The kinds follow one rule: `Invalid` for a request that can never succeed as written, `Conflict` for a
well-formed request the current state refuses (another state would lift it), `NotFound` for what the caller
cannot see (missing and someone else's are the same answer), `OverQuota` for a customer over her allowance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class Refused(Exception):
    """A request the consent rules refuse."""

    def __init__(
        self, code: str, detail: str, *, fields: Sequence[FieldError] = (), retry_after: int | None = None
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.fields = tuple(fields)
        # Seconds after which the same request may succeed, when the refusal lifts by itself.
        self.retry_after = retry_after


class NotFound(Refused):
    def __init__(self, what: str = "resource") -> None:
        # One answer for "missing" and "someone else's": the caller learns nothing about other customers.
        super().__init__("not_found", f"No such {what}.")


class Invalid(Refused):
    def __init__(self, fields: Sequence[FieldError], detail: str = "The request is not valid.") -> None:
        super().__init__("validation_failed", detail, fields=fields)


class Conflict(Refused):
    pass


class OverQuota(Refused):
    pass
