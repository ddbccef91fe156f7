"""Warm overhead per route: the handler's own time with its I/O ports replaced by in-memory fakes, and the same
route on real I/O (moto and the Codat simulator over HTTP) beside a hand-written minimal handler making the
same calls (the floor). Every request of a route makes the same calls (the call budget), so the samples of
one route are comparable; product and floor alternate, so drift on the machine hits both alike."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from consent.services import Services
from consent_dev import budget
from consent_dev.codat_webhooks import DEV_CUSTOMER_REF_KEY, DEV_WEBHOOK_SECRET
from consent_dev.local_api import LocalApi

from common import SIMULATOR_API_KEY, Stack, Table, fake_world, ratio, summary, timed
from floors import FloorHandlers

# Every API route (in its usual state) and the webhooks' three paths: applied, a read, and a redelivery.
WARM_CASES = (
    "POST /companies",
    "POST /companies (same Idempotency-Key again)",
    "POST /companies/{companyId}/journeys",
    "GET /companies",
    "GET /companies/{companyId}",
    "GET /companies/{companyId}/connections",
    "GET /companies/{companyId}/events",
    "GET /integrations",
    "POST /companies/{companyId}/connections",
    "POST /companies/{companyId}/connections (reused)",
    "GET /companies/{companyId}/access-token",
    "DELETE /companies/{companyId}/connections/{connectionId}",
    "DELETE /companies/{companyId}/connections/{connectionId} (not Linked)",
    "DELETE /companies/{companyId}",
    "webhook connection.connected",
    "webhook read.completed.initial",
    "webhook redelivered",
)


def _product(api: LocalApi, services: Services, request: budget.Request, expected: int) -> float | None:
    """Milliseconds the product's handler took, or None if it did not answer as the case expects."""
    route, event = request.to_event(api)
    return _time(lambda: LocalApi.invoke(route, event, services), expected)


def _floor(floors: FloorHandlers, api: LocalApi, request: budget.Request, expected: int) -> float | None:
    _, event = request.to_event(api)
    return _time(lambda: floors(event), expected)


def _time(handler: Callable[[], dict[str, Any]], expected: int) -> float | None:
    # On a loaded machine a call can outlast botocore's read timeout; its retry then meets its own first
    # attempt's write. Such a sample is counted as an error, not timed, for the product and the floor alike.
    try:
        elapsed, result = timed(handler)
    except (BotoCoreError, ClientError, httpx.HTTPError):
        return None
    return elapsed if result["statusCode"] == expected else None


def _samples(timings: list[float | None]) -> tuple[list[float], int]:
    kept = [t for t in timings if t is not None]
    return kept, len(timings) - len(kept)


def run(stack: Stack, *, fake_iterations: int, real_iterations: int) -> tuple[Table, dict[str, Any]]:
    cases = {case.name: case for case in budget.CASES}
    fakes, fake_services = fake_world(stack.settings)
    floors = FloorHandlers(
        stack.settings.table_name,
        stack.codat_server.url,
        SIMULATOR_API_KEY,
        DEV_WEBHOOK_SECRET,
        DEV_CUSTOMER_REF_KEY,
    )
    counter = stack.counter()
    counter.watch(floors.db)

    table = Table(
        f"Warm overhead per route (ms; fakes n={fake_iterations}, real I/O n={real_iterations}; "
        "ratio = product on real I/O / hand-written floor)",
        ["request", "fakes med", "fakes p99", "real med", "real p99", "floor med", "floor p99", "ratio", "p99 ratio"],
    )
    results: dict[str, Any] = {}
    errors = 0
    for name in WARM_CASES:
        case = cases[name]
        stack.fresh_table()  # each route on its own table, so moto's write latency stays put
        real, real_services = stack.world()
        floors.table = stack.settings.table_name
        # The handler alone: ports in memory.
        next_fake = case.prepare(fakes)
        _product(fakes.api, fake_services, next_fake(), case.status)  # warm-up
        fake, fake_errors = _samples(
            [_product(fakes.api, fake_services, next_fake(), case.status) for _ in range(fake_iterations)]
        )

        # Real I/O: the product and its floor, each on its own state, alternating who goes first.
        next_product, next_floor = case.prepare(real), case.prepare(real)
        _product(real.api, real_services, next_product(), case.status)
        _floor(floors, real.api, next_floor(), case.status)
        checked = next_floor()
        with counter.measure() as floor_calls:  # the floor must make the product's calls, no fewer
            _floor(floors, real.api, checked, case.status)
        product_times: list[float | None] = []
        floor_times: list[float | None] = []
        for iteration in range(real_iterations):
            product_request, floor_request = next_product(), next_floor()
            if iteration % 2:
                floor_times.append(_floor(floors, real.api, floor_request, case.status))
                product_times.append(_product(real.api, real_services, product_request, case.status))
            else:
                product_times.append(_product(real.api, real_services, product_request, case.status))
                floor_times.append(_floor(floors, real.api, floor_request, case.status))
        product, product_errors = _samples(product_times)
        floor, floor_errors = _samples(floor_times)
        errors += fake_errors + product_errors + floor_errors
        stats: dict[str, Any] = {"fakes": summary(fake), "real": summary(product), "floor": summary(floor)}
        stats["errors"] = {"fakes": fake_errors, "real": product_errors, "floor": floor_errors}
        stats["ratio"] = ratio(stats["real"]["median_ms"], stats["floor"]["median_ms"])
        stats["p99_ratio"] = ratio(stats["real"]["p99_ms"], stats["floor"]["p99_ms"])
        stats["floor_calls_as_budgeted"] = floor_calls.matches(case.budget)
        results[name] = stats
        table.add(
            name + ("" if stats["floor_calls_as_budgeted"] else " (floor's calls differ!)"),
            stats["fakes"]["median_ms"],
            stats["fakes"]["p99_ms"],
            stats["real"]["median_ms"],
            stats["real"]["p99_ms"],
            stats["floor"]["median_ms"],
            stats["floor"]["p99_ms"],
            stats["ratio"],
            stats["p99_ratio"],
        )
    ratios = [r["ratio"] for r in results.values()]
    table.notes.append(f"median of the routes' ratios: {statistics.median(ratios):.2f} (goal: ≤ 1.2)")
    if errors:
        table.notes.append(f"{errors} samples failed (timeouts on this loaded machine) and were left out")
    table.notes.append(
        "fakes: the handler with in-memory store, Codat and publisher (consent_dev.fake_store, bench/fakes.py)"
    )
    table.notes.append("floor: bench/floors.py, the same AWS and Codat calls with boto3/httpx and json only")
    table.notes.append("each floor is checked to make exactly the route's budgeted calls")
    return table, results
