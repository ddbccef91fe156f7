"""Per-customer quotas: one customer cannot spend the bank's shared Codat quota.

Codat allows a client 1,000 x (1 + connected companies) requests a day, for all of the bank's customers together.
Each route that may call Codat first spends one of the caller's allowance (per UTC minute and per UTC day); a
customer has at most so many companies. Over either: 429 before anything is done (nothing counted, nothing sent
to Codat, nothing written). Revoking a connection and erasing a company are never limited: a customer can always
withdraw consent."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit

from consent.domain.errors import OverQuota
from consent.observability import logger, metrics
from consent.store import QuotaExceeded, StoreUnavailable

if TYPE_CHECKING:
    from consent.services import Services

_DETAIL = {
    "codat_requests_per_minute": "Too many requests that reach Codat this minute. Retry after `Retry-After` seconds.",
    "codat_requests_per_day": "Too many requests that reach Codat today. Retry after `Retry-After` seconds.",
    "companies": "You have as many companies as a customer may have. Erase one to create another.",
}


def spend_codat_allowance(services: Services, customer_id: str) -> None:
    """Count one request of this customer's that may call Codat, or refuse it (429)."""
    settings = services.settings
    try:
        services.store.spend_codat_allowance(
            customer_id,
            services.clock(),
            per_minute=settings.customer_codat_requests_per_minute,
            per_day=settings.customer_codat_requests_per_day,
        )
    except QuotaExceeded as refused:
        raise over_quota(refused) from None
    except StoreUnavailable:
        # The table cannot count now: the request goes on, uncounted. The allowance guards the bank's Codat quota,
        # and Codat's own 429 still does; refusing everyone while a counter is throttled would make an outage of
        # requests that need no write at all (the integrations come from a cache).
        metrics.add_metric(name="CustomerQuotaUnchecked", unit=MetricUnit.Count, value=1)
        logger.warning("a customer's Codat allowance could not be counted: the request goes on")


def check_company_cap(services: Services, customer_id: str) -> None:
    """Refuse (429) before Codat is asked, when the customer already has as many companies as allowed. (The
    company's write checks it again, atomically: this read only spares Codat a company we would not keep.)"""
    if services.store.customer_companies(customer_id) >= services.settings.max_companies_per_customer:
        raise over_quota(QuotaExceeded("companies"))


def over_quota(refused: QuotaExceeded) -> OverQuota:
    """The store's refusal as the customer's: counted, with when to retry."""
    metrics.add_metric(name="CustomerQuotaRefusals", unit=MetricUnit.Count, value=1)
    code = "company_quota_exceeded" if refused.kind == "companies" else "rate_limited"
    return OverQuota(code, _DETAIL.get(refused.kind, "Over your quota."), retry_after=refused.retry_after)
