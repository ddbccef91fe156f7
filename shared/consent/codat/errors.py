"""Typed failures of a Codat call, so use cases can decide what each means for the customer."""

from __future__ import annotations


class CodatError(Exception):
    """A Codat call failed. `maybe_applied` is true when Codat may have done it anyway (response lost)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        correlation_id: str | None = None,
        maybe_applied: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.correlation_id = correlation_id
        self.maybe_applied = maybe_applied


class CodatNotFound(CodatError):
    """404: the company, connection or integration does not exist in Codat."""


class CodatRejected(CodatError):
    """A 4xx other than 401/403/404/429: Codat refused the request as sent (Codat's error body attached)."""

    def __init__(self, message: str, *, error: str | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.error = error


class CodatSyncInProgress(CodatRejected):
    """Codat refused to queue a read of a data type it is reading already (a 400 saying a read is in progress):
    nothing new was queued, and the read under way will do; ask again once it has ended."""


class CodatAuthFailed(CodatError):
    """401/403: our Codat API key is wrong, revoked or lacks permission: an operator must act."""


class CodatRateLimited(CodatError):
    """429 beyond the retry budget. `retry_after` is Codat's advice in seconds, when it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class CodatUnavailable(CodatError):
    """5xx or a broken connection beyond the retry budget."""


class CodatTimeout(CodatError):
    """Codat did not answer in time, within the retry budget."""


class CodatBadResponse(CodatError):
    """Codat answered 2xx with a body that is not what its API promises."""


class CodatBudgetExhausted(CodatError):
    """A batch job's request budget is spent: nothing was sent (the job stops and resumes on its next run)."""
