"""The Codat client: httpx with timeouts, a bounded retry budget, and typed errors."""

from __future__ import annotations

import copy
import math
import random
import re
import time
import unicodedata
import uuid
from collections.abc import Callable, Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar, overload
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from consent.codat.errors import (
    CodatAuthFailed,
    CodatBadResponse,
    CodatBudgetExhausted,
    CodatError,
    CodatNotFound,
    CodatRateLimited,
    CodatRejected,
    CodatSyncInProgress,
    CodatTimeout,
    CodatUnavailable,
)
from consent.codat.models import (
    CodatCompany,
    CodatConnection,
    CodatErrorBody,
    CodatIntegration,
    CompanyAccessToken,
    DataStatus,
    DataStatuses,
    Page,
    PullOperation,
    WebhookConsumer,
    WebhookConsumers,
)
from consent.observability import logger

M = TypeVar("M", bound=BaseModel)

_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_SAFE_METHODS = frozenset({"GET", "PUT", "PATCH", "DELETE"})
# Codat's company name pattern (CompanyRequestBody.name); Codat strips other characters, so do we, first.
_NAME_FORBIDDEN = re.compile(r"[^A-Za-z0-9\s\-',&@.?!]")
# Time kept back from the Lambda's remaining time for our own work after the Codat call.
_DEADLINE_RESERVE_SECONDS = 2.0
# Codat's Retry-After is honoured and passed on up to an hour: beyond that it is no advice a caller can act on
# (asking again then gets a fresh one). Infinite or unreadable values are no advice at all.
MAX_RETRY_AFTER_SECONDS = 3600.0
_PAGE_SIZE = 500
_MAX_PAGES = 50
# Codat's refusal to queue a data type already being read is a 400 with no code of its own: its text says so.
_READ_IN_PROGRESS = re.compile(r"\bin progress\b", re.IGNORECASE)


def codat_company_name(name: str) -> str:
    """The name as Codat accepts it: accents folded to ASCII, other forbidden characters dropped."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    cleaned = " ".join(_NAME_FORBIDDEN.sub("", folded).split())
    return cleaned or "Company"


class RequestBudget:
    """How many HTTP requests a batch job (reconciliation) may still send to Codat, retries and pages included:
    its share of Codat's daily quota, which the API's own calls must not be starved of."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def take(self) -> bool:
        """Spend one request, or say there is none left."""
        if self.used >= self.limit:
            return False
        self.used += 1
        return True


class CodatClient:
    """Calls Codat's Platform API. One instance per process: it holds the connection pool.

    Retries 429, 5xx and transport failures with exponential back-off and full jitter, honouring
    `Retry-After`, for requests that are safe to repeat (GET/PUT/PATCH/DELETE, and POST with an
    `Idempotency-Key`), within `retry_budget` seconds and never past the function's remaining time.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: Callable[[], str],  # returns the Basic credential: base64 of the API key
        connect_timeout: float = 3.0,
        read_timeout: float = 8.0,
        retry_budget: float = 20.0,
        max_attempts: int = 4,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        time_left: Callable[[], float | None] | None = None,
    ) -> None:
        self._api_key = api_key
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._retry_budget = retry_budget
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._clock = clock
        self._http = httpx.Client(
            base_url=base_url,
            transport=transport,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            headers={"Accept": "application/json", "User-Agent": "codat-consent-backend/0.1"},
        )
        # Seconds the current invocation has left (from the Lambda context), or None when unknown.
        self._time_left = time_left
        self._request_budget: RequestBudget | None = None

    def with_budget(self, budget: RequestBudget) -> CodatClient:
        """This client (same connection pool) sending no more requests than `budget` allows."""
        budgeted = copy.copy(self)
        budgeted._request_budget = budget
        return budgeted

    # -- companies ---------------------------------------------------------------------------

    def create_company(
        self, *, name: str, description: str | None, tags: Mapping[str, str], idempotency_key: str
    ) -> CodatCompany:
        body: dict[str, Any] = {"name": codat_company_name(name), "tags": dict(tags)}
        if description:
            body["description"] = description
        return self._call("POST", "/companies", CodatCompany, json=body, idempotency_key=idempotency_key)

    def find_companies_by_tags(self, tags: Mapping[str, str]) -> list[CodatCompany]:
        query = " && ".join(f"{key}={value}" for key, value in tags.items())
        return self._all_pages("/companies", CodatCompany, {"tags": query})

    def get_company(self, company_id: str) -> CodatCompany:
        return self._call("GET", f"/companies/{company_id}", CodatCompany)

    def update_company_tags(self, company_id: str, tags: Mapping[str, str]) -> CodatCompany:
        """Replace the company's tags (PATCH: its name and description stay)."""
        return self._call("PATCH", f"/companies/{company_id}", CodatCompany, json={"tags": dict(tags)})

    def delete_company(self, company_id: str) -> None:
        self._call("DELETE", f"/companies/{company_id}", None)

    def get_access_token(self, company_id: str) -> CompanyAccessToken:
        return self._call("GET", f"/companies/{company_id}/accessToken", CompanyAccessToken)

    # -- connections -------------------------------------------------------------------------

    def create_connection(self, company_id: str, *, platform_key: str, idempotency_key: str) -> CodatConnection:
        return self._call(
            "POST",
            f"/companies/{company_id}/connections",
            CodatConnection,
            json={"platformKey": platform_key},
            idempotency_key=idempotency_key,
        )

    def get_connection(self, company_id: str, connection_id: str) -> CodatConnection:
        return self._call("GET", f"/companies/{company_id}/connections/{connection_id}", CodatConnection)

    def list_connections(self, company_id: str) -> list[CodatConnection]:
        return self._all_pages(f"/companies/{company_id}/connections", CodatConnection, {})

    def delete_connection(self, company_id: str, connection_id: str) -> None:
        """Revoke and remove the connection in Codat (not reversible: the customer would link a new one)."""
        self._call("DELETE", f"/companies/{company_id}/connections/{connection_id}", None)

    def unlink_connection(
        self, company_id: str, connection_id: str, *, idempotency_key: str | None = None
    ) -> CodatConnection:
        """Codat replays its first answer to a retry with the same key (for 90 minutes), also after the
        connection is Unlinked, so a retry whose first answer was lost learns that it unlinked it."""
        return self._call(
            "PATCH",
            f"/companies/{company_id}/connections/{connection_id}",
            CodatConnection,
            json={"status": "Unlinked"},
            idempotency_key=idempotency_key,
        )

    # -- data (reads) ------------------------------------------------------------------------

    def queue_data(
        self,
        company_id: str,
        data_type: str,
        *,
        connection_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> PullOperation:
        """Queue a read of one data type (Codat's key, e.g. `banking-accounts`), from `connection_id` only when
        given, else from every connection that supplies it; Codat's answer is the read's pull operation.

        CodatSyncInProgress (a CodatRejected) when Codat is reading that data type already: nothing new is queued.
        CodatNotFound for an unknown company or connection; CodatRejected for other refusals (no Linked connection
        supplies the type, a name that is not Codat's). The POST carries an Idempotency-Key, the caller's (so that a
        later call replays it too) or a fresh one: a retry after a lost or failed answer replays Codat's first answer
        instead of queueing a second read."""
        try:
            return self._call(
                "POST",
                f"/companies/{company_id}/data/queue/{quote(data_type, safe='')}",
                PullOperation,
                params={"connectionId": connection_id} if connection_id is not None else None,
                idempotency_key=idempotency_key or str(uuid.uuid4()),
            )
        except CodatRejected as refused:
            if refused.status == 400 and _READ_IN_PROGRESS.search(refused.error or ""):
                raise CodatSyncInProgress(
                    f"Codat is reading {data_type} already",
                    status=refused.status,
                    correlation_id=refused.correlation_id,
                    error=refused.error,
                ) from refused
            raise

    def data_status(self, company_id: str) -> dict[str, DataStatus]:
        """Each data type Codat has read or is reading for the company, keyed by data type (`GET .../dataStatus`)."""
        statuses = self._call("GET", f"/companies/{company_id}/dataStatus", DataStatuses)
        return {data_type: status for data_type, status in statuses.root.items() if status is not None}

    # -- integrations ------------------------------------------------------------------------

    def list_integrations(self, source_type: str | None = None) -> list[CodatIntegration]:
        clauses = ["enabled=true"] + ([f"sourceType={source_type}"] if source_type else [])
        return self._all_pages("/integrations", CodatIntegration, {"query": "&&".join(clauses)})

    # -- webhook consumers -------------------------------------------------------------------

    def list_webhook_consumers(self) -> list[WebhookConsumer]:
        """Every webhook consumer of our Codat client, in one answer (Codat keeps at most 50)."""
        return list(self._call("GET", "/webhooks", WebhookConsumers).results)

    def create_webhook_consumer(self, *, url: str, event_types: Sequence[str], idempotency_key: str) -> WebhookConsumer:
        """A new consumer, enabled, for `event_types` of every company (no company-tag filter). Codat gives it
        a signing secret of its own, which only its Portal shows."""
        return self._call(
            "POST",
            "/webhooks",
            WebhookConsumer,
            json={"url": url, "eventTypes": list(event_types)},
            idempotency_key=idempotency_key,
        )

    def delete_webhook_consumer(self, consumer_id: str) -> None:
        self._call("DELETE", f"/webhooks/{consumer_id}", None)

    # -- plumbing ----------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def _all_pages(self, path: str, model: type[M], params: dict[str, str]) -> list[M]:
        items: list[M] = []
        for page_number in range(1, _MAX_PAGES + 1):
            page_model: type[Page[Any]] = Page[model]  # type: ignore[valid-type]
            page = self._call(
                "GET", path, page_model, params={**params, "page": str(page_number), "pageSize": str(_PAGE_SIZE)}
            )
            items.extend(page.results)
            if not page.results or page_number * page.page_size >= page.total_results:
                break
        return items

    @overload
    def _call(
        self,
        method: str,
        path: str,
        model: type[M],
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> M: ...

    @overload
    def _call(
        self,
        method: str,
        path: str,
        model: None,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> None: ...

    def _call(
        self,
        method: str,
        path: str,
        model: type[M] | None,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> M | None:
        headers = {"Authorization": f"Basic {self._api_key()}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        repeatable = method in _SAFE_METHODS or idempotency_key is not None
        budget = self._budget()
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            if self._request_budget is not None and not self._request_budget.take():
                raise CodatBudgetExhausted(f"the request budget is spent before {method} {path}")
            left = budget - (self._clock() - started)
            timeout = httpx.Timeout(
                max(0.05, min(self._read_timeout, left)), connect=max(0.05, min(self._connect_timeout, left))
            )
            retry_after: float | None = None
            try:
                response = self._http.request(method, path, params=params, json=json, headers=headers, timeout=timeout)
            except httpx.TimeoutException as error:
                sent = not isinstance(error, httpx.ConnectTimeout | httpx.PoolTimeout)
                failure: CodatError = CodatTimeout(
                    f"Codat did not answer {method} {path} in time", maybe_applied=sent and method != "GET"
                )
                retryable = repeatable or not sent
            except httpx.TransportError as error:
                sent = not isinstance(error, httpx.ConnectError)
                failure = CodatUnavailable(
                    f"connection to Codat failed on {method} {path}: {type(error).__name__}",
                    maybe_applied=sent and method != "GET",
                )
                retryable = repeatable or not sent
            else:
                self._log(method, path, response, attempt)
                if response.is_success:
                    try:
                        return self._parse(response, model)
                    except CodatBadResponse as bad:
                        # A success we cannot read is still a success: Codat did it.
                        bad.maybe_applied = method != "GET"
                        failure, retryable = bad, repeatable
                elif response.status_code in _RETRYABLE_STATUSES:
                    failure, retry_after = self._retryable_failure(method, path, response)
                    # A 429 is a refusal: nothing was done, so even a bare POST may be sent again.
                    retryable = repeatable or response.status_code == 429
                else:
                    raise self._final_failure(method, path, response)
            if not retryable or attempt >= self._max_attempts or self._out_of_requests():
                raise failure
            delay = self._backoff(attempt, retry_after)
            if self._clock() - started + delay + 0.1 > budget:
                raise failure
            self._sleep(delay)

    def _out_of_requests(self) -> bool:
        return self._request_budget is not None and self._request_budget.remaining == 0

    def _budget(self) -> float:
        left = self._time_left() if self._time_left is not None else None
        if left is None:
            return self._retry_budget
        return max(0.5, min(self._retry_budget, left - _DEADLINE_RESERVE_SECONDS))

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(4.0, 0.25 * 2 ** (attempt - 1))
        jittered = random.uniform(0, ceiling)  # noqa: S311 - jitter, not security
        return max(jittered, retry_after or 0.0)

    @staticmethod
    def _parse(response: httpx.Response, model: type[M] | None) -> M | None:
        if model is None:
            return None
        try:
            return model.model_validate_json(response.content)
        except ValidationError as error:
            raise CodatBadResponse(
                f"Codat's {response.request.method} {response.request.url.path} answer is not what its API promises",
                status=response.status_code,
            ) from error

    @staticmethod
    def _error_body(response: httpx.Response) -> CodatErrorBody:
        try:
            return CodatErrorBody.model_validate_json(response.content)
        except ValidationError:
            return CodatErrorBody()

    def _retryable_failure(self, method: str, path: str, response: httpx.Response) -> tuple[CodatError, float | None]:
        body = self._error_body(response)
        status = response.status_code
        if status == 429:
            retry_after = _parse_retry_after(response.headers.get("Retry-After"))
            return (
                CodatRateLimited(
                    f"Codat is rate limiting {method} {path}",
                    status=status,
                    correlation_id=body.correlation_id,
                    retry_after=retry_after,
                ),
                retry_after,
            )
        return (
            CodatUnavailable(
                f"Codat answered {status} to {method} {path}",
                status=status,
                correlation_id=body.correlation_id,
                maybe_applied=method != "GET",
            ),
            None,
        )

    def _final_failure(self, method: str, path: str, response: httpx.Response) -> CodatError:
        body = self._error_body(response)
        status = response.status_code
        where = f"{method} {path}"
        if status == 404:
            return CodatNotFound(
                f"Codat has no such resource: {where}", status=status, correlation_id=body.correlation_id
            )
        if status in (401, 403):
            return CodatAuthFailed(
                f"Codat refused our API key ({status}) on {where}", status=status, correlation_id=body.correlation_id
            )
        return CodatRejected(
            f"Codat rejected {where} ({status})", status=status, correlation_id=body.correlation_id, error=body.error
        )

    @staticmethod
    def _log(method: str, path: str, response: httpx.Response, attempt: int) -> None:
        logger.debug(
            "codat call",
            extra={
                "codat_method": method,
                "codat_path": path,
                "codat_status": response.status_code,
                "codat_attempt": attempt,
                "codat_ms": round(response.elapsed.total_seconds() * 1000, 1) if _has_elapsed(response) else None,
                "codat_correlation_id": response.headers.get("x-correlation-id"),
            },
        )


def _has_elapsed(response: httpx.Response) -> bool:
    try:
        response.elapsed  # noqa: B018 - raises until the response is closed
    except RuntimeError:
        return False
    return True


def _parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date), within [0, MAX_RETRY_AFTER_SECONDS]; None when
    absent, unreadable or not finite (`inf`, `1e999`, `nan`)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)
