"""A reconciliation run: every stored connection compared with Codat's, healing what missed webhooks left.

A run walks the companies (a pass over the table that resumes where the last run stopped) within a Codat
request budget and the function's remaining time. What Codat reports is recorded as status events observed
at the time of the check, through the same order-safe step as the webhooks, so a webhook arriving later
cannot be undone and a second run that sees the same thing changes nothing. Each run also checks, first, that
Codat still has a healthy webhook consumer for our receiver (`WebhookConsumerUnhealthy`)."""

from __future__ import annotations

import contextlib

from consent.codat.client import CodatClient, RequestBudget
from consent.codat.errors import (
    CodatBadResponse,
    CodatBudgetExhausted,
    CodatError,
    CodatRateLimited,
    CodatRejected,
    CodatTimeout,
    CodatUnavailable,
)
from consent.observability import logger, metrics
from consent.services import Services
from consent.store import ConflictError, StoreRejected
from consent.usecases.reconcile.company import reconcile_company
from consent.usecases.reconcile.report import ReconcileReport, Stop
from consent.usecases.webhook_consumers import check as check_webhook_consumer

# Items read per Scan page (companies and everything else in the table; DynamoDB filters after reading).
_SCAN_PAGE_ITEMS = 500


# Time kept back from the function's remaining time: one more company's Codat calls and its write.
_TIME_RESERVE_SECONDS = 15.0


def reconcile(services: Services) -> ReconcileReport:
    """One run: continue the pass over the companies until it completes, the Codat request budget is spent,
    Codat pushes back, or the function's time runs low. Where it stopped is kept for the next run."""
    budget = RequestBudget(services.settings.reconcile_codat_budget)
    codat = services.codat.with_budget(budget)
    report = ReconcileReport()
    try:
        report.webhook_consumer = _check_webhook_consumer(services, codat, budget)
        report.stopped = _sweep(services, codat, budget, report)
    finally:
        report.codat_requests = budget.used
        logger.info("reconciliation run", extra={"reconcile": report.to_dict()})
        metrics.add_metric(name="ReconcileCompaniesChecked", unit="Count", value=report.companies_checked)
        metrics.add_metric(name="ReconcileCompaniesHealed", unit="Count", value=report.companies_healed)
        metrics.add_metric(name="ReconcileCodatRequests", unit="Count", value=report.codat_requests)
    return report


def _check_webhook_consumer(services: Services, codat: CodatClient, budget: RequestBudget) -> str | None:
    """One `GET /webhooks` of the run's budget. Whatever Codat answers, the run goes on: a refusal is recorded
    (and, if it is Codat's state rather than this request, the pass meets it next and stops as it always does)."""
    url = services.settings.webhook_url
    if url is None:
        return None
    if _must_stop(services, budget) is not None:
        return "unknown"  # the pass stops at once too, for the same reason
    try:
        found = check_webhook_consumer(codat, url)
    except CodatError as error:
        logger.warning("webhook consumer not checked", extra={"webhook_url": url, "error": type(error).__name__})
        return "unknown"
    if found.is_healthy:
        logger.info("webhook consumer healthy", extra={"webhook_consumer": found.to_dict()})
    else:
        logger.warning("webhook consumer unhealthy", extra={"webhook_consumer": found.to_dict()})
    metrics.add_metric(name="WebhookConsumerUnhealthy", unit="Count", value=0 if found.is_healthy else 1)
    return found.status.value


def _sweep(services: Services, codat: CodatClient, budget: RequestBudget, report: ReconcileReport) -> Stop:
    store = services.store
    position = store.reconcile_cursor()
    try:
        while True:
            stop = _must_stop(services, budget)
            if stop is not None:
                store.save_reconcile_cursor(position)
                return stop
            page = store.sweep_companies(position, limit=_SCAN_PAGE_ITEMS)
            for company_id in page.items:
                stop = _must_stop(services, budget) or _check(services, codat, company_id, report)
                if stop is not None:
                    store.save_reconcile_cursor(position)  # this company is checked again next run
                    return stop
                position = store.sweep_cursor_after(company_id)
            if page.next_cursor is None:
                store.save_reconcile_cursor(None)
                return Stop.PASS_COMPLETE
            position = page.next_cursor
    except Exception:
        # Keep the progress made (best effort: the store itself may be what failed), then fail loudly.
        with contextlib.suppress(Exception):
            store.save_reconcile_cursor(position)
        raise


def _must_stop(services: Services, budget: RequestBudget) -> Stop | None:
    if budget.remaining == 0:
        return Stop.BUDGET_SPENT
    left = services.time_left() if services.time_left is not None else None
    if left is not None and left < _TIME_RESERVE_SECONDS:
        return Stop.TIME_LOW
    return None


def _check(services: Services, codat: CodatClient, company_id: str, report: ReconcileReport) -> Stop | None:
    try:
        check = reconcile_company(services, codat, company_id)
    except CodatBudgetExhausted:
        return Stop.BUDGET_SPENT
    except CodatRateLimited:
        logger.warning("reconciliation rate limited by Codat", extra={"company_id": company_id})
        return Stop.RATE_LIMITED
    except (CodatUnavailable, CodatTimeout) as error:
        logger.warning("reconciliation stopped: Codat unavailable", extra={"error": type(error).__name__})
        return Stop.CODAT_UNAVAILABLE
    except (CodatRejected, CodatBadResponse, ConflictError, StoreRejected) as error:
        # About this company only (or it kept changing under us, or the table refuses its change): the next pass
        # tries again, and the companies after it are not held up.
        logger.warning("company not reconciled", extra={"company_id": company_id, "error": type(error).__name__})
        report.companies_skipped += 1
        report.skipped_ids.append(company_id)
        return None
    if check is not None:
        report.add(check)
        return check.stop
    return None
