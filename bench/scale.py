"""Scale: one company with 1, 100 and 1,000 connections and ledger entries (reads must page, not grow without
bound), and a burst of Codat webhooks through the webhook handler beside the floor of verifying their
signatures alone."""

from __future__ import annotations

import functools
import gc
import statistics
import time
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from consent.domain.ledger import entry
from consent.domain.records import ConnectionRecord
from consent.domain.resources import Actor, ConnectionStatus, LedgerEntryType, SourceType, utc_now
from consent.domain.timeline import StatusEvent
from consent.domain.transitions import EventKind
from consent.services import Services
from consent.store import Change
from consent.webhooks.signature import parse_secrets, verify
from consent_dev import budget
from consent_dev.codat_webhooks import DEV_WEBHOOK_SECRET, read_event
from consent_dev.local_api import LocalApi
from consent_dev.template import Route, routes

from common import Stack, Table, fake_world, quiet, timed

SIZES = (1, 100, 1000)
_PER_TRANSACTION = 45  # connections (and as many ledger entries) per commit: under DynamoDB's 100 items


def seed(services: Services, company_id: str, size: int) -> None:
    """`size` Linked connections and `size` ledger entries, written through the store's `commit`."""
    view = services.store.get_company_by_id(company_id)
    assert view is not None
    company, now = view.company, utc_now()
    for start in range(0, size, _PER_TRANSACTION):
        connections, ledger = [], []
        for number in range(start, min(size, start + _PER_TRANSACTION)):
            at = now + timedelta(microseconds=number)
            record = ConnectionRecord(
                connection_id=str(uuid.uuid4()),
                company_id=company_id,
                customer_id=company.customer_id,
                company_created_at=company.created_at,
                platform_key="qhnd",
                platform_name="Codat Banking Sandbox",
                source_type=SourceType.BANKING,
                status=ConnectionStatus.PENDING_AUTH,
                created_at=at,
            )
            for kind in (EventKind.CREATED, EventKind.LINKED, EventKind.INITIAL_READ):
                record = record.with_event(StatusEvent(at=at, id=str(uuid.uuid4()), kind=kind, actor=Actor.CODAT))
            connections.append(record)
            ledger.append(
                entry(
                    company,
                    LedgerEntryType.CONNECTION_LINKED,
                    actor=Actor.CODAT,
                    at=at,
                    connection_id=record.connection_id,
                    platform_key=record.platform_key,
                    source_type=record.source_type,
                    status=record.status,
                )
            )
        services.store.commit(Change(added=connections, ledger=ledger))


def _walk(world: budget.World, services: Services, counter: budget.CallCounter, path: str) -> dict[str, Any]:
    """Follow `path`'s pages to the end: calls and time per page."""
    pages, cursor, items = [], None, 0
    while True:
        request = budget.Request("GET", path, world.customer, query={"cursor": cursor} if cursor else None)
        with counter.measure() as counted:
            response = request.send(world.api)
        assert response.status == 200, response.text
        route, event = request.to_event(world.api)
        # Once per page: the pages are the samples (their median is reported).
        times = [timed(functools.partial(LocalApi.invoke, route, event, services))[0]]
        items += len(response.body["items"])
        pages.append({"calls": sum(counted.aws.values()), "ms": statistics.median(times), "bytes": len(response.text)})
        cursor = response.body.get("nextCursor")
        if not cursor:
            break
    return {
        "pages": len(pages),
        "items": items,
        "calls_per_page": max(p["calls"] for p in pages),
        "ms_per_page": round(statistics.median(p["ms"] for p in pages), 2),
        "largest_page_bytes": max(p["bytes"] for p in pages),
        "total_ms": round(sum(p["ms"] for p in pages), 1),
    }


def _timed_samples(
    counter: budget.CallCounter, events: Callable[[], tuple[Route, dict[str, Any]]], services: Services, repeats: int
) -> tuple[list[float], budget.Counted, dict[str, Any]]:
    """Time up to `repeats` invocations of fresh events; the first is also counted. At N = 1,000 one request
    can take seconds: after 2 s of samples, more would only lengthen the bench."""
    route, event = events()
    with counter.measure() as counted:
        first, result = timed(lambda: LocalApi.invoke(route, event, services))
    times = [first]
    while len(times) < repeats and sum(times) < 2000:
        route, event = events()
        times.append(timed(functools.partial(LocalApi.invoke, route, event, services))[0])
    return times, counted, result


def _one(
    world: budget.World, services: Services, counter: budget.CallCounter, request: budget.Request, repeats: int
) -> dict[str, Any]:
    times, counted, result = _timed_samples(counter, lambda: request.to_event(world.api), services, repeats)
    assert result["statusCode"] == 200, result
    return {
        "calls": sum(counted.aws.values()),
        "aws": dict(counted.aws),
        "codat": sum(counted.codat.values()),
        "ms": round(statistics.median(times), 2),
        "bytes": len(result.get("body") or ""),
    }


def _measure_company(
    world: budget.World, services: Services, counter: budget.CallCounter, size: int, repeats: int
) -> dict[str, Any]:
    company_id = world.company("onboarding")
    seed(services, company_id, size)
    read_company = budget.Request("GET", f"/companies/{company_id}", world.customer)
    connection_id = _any_connection(world, company_id)
    read = read_event(company_id=company_id, connection_ids=[connection_id], initial=False)
    return {
        "company": _one(world, services, counter, read_company, repeats),
        "connections": _walk(world, services, counter, f"/companies/{company_id}/connections"),
        "events": _walk(world, services, counter, f"/companies/{company_id}/events"),
        "webhook": _webhook(world, services, counter, read, repeats),
    }


def company_size(stack: Stack, *, repeats: int) -> tuple[Table, dict[str, Any]]:
    table = Table(
        f"Scale: one company with N connections and N ledger entries (ms: median of {repeats}, of the pages for "
        "lists; real I/O, and the handler's own time on in-memory fakes)",
        ["N", "request", "pages", "AWS calls/page", "ms/page", "own ms/page", "largest page KB", "all pages ms"],
    )
    results: dict[str, Any] = {}
    for size in SIZES:
        stack.fresh_table()
        world, services = stack.world()
        fakes, fake_services = fake_world(stack.settings)
        counter = stack.counter()
        with counter.watching_new_clients(), quiet():
            real = _measure_company(world, services, counter, size, repeats)
            own = _measure_company(fakes, fake_services, counter, size, repeats)
        results[str(size)] = {"real": real, "fakes": own}
        company, webhook = real["company"], real["webhook"]
        table.add(
            size,
            "GET /companies/{companyId}",
            1,
            company["calls"],
            company["ms"],
            own["company"]["ms"],
            company["bytes"] / 1024,
            "-",
        )
        for name in ("connections", "events"):
            walked = real[name]
            table.add(
                size,
                f"GET /companies/{{companyId}}/{name}",
                walked["pages"],
                walked["calls_per_page"],
                walked["ms_per_page"],
                own[name]["ms_per_page"],
                walked["largest_page_bytes"] / 1024,
                walked["total_ms"],
            )
        table.add(size, "webhook read.completed", 1, webhook["calls"], webhook["ms"], own["webhook"]["ms"], "-", "-")
    table.notes.append("connections page at 100, events at 50 (the routes' default limits); every page is 2 calls")
    table.notes.append(
        "GET /companies/{companyId} embeds at most 100 connections (one Query at any N); the webhook path reads "
        "them all (a journey is replayed from every connection's events, in one pass): it grows with N, one Query "
        "per 1 MB"
    )
    table.notes.append(
        "real I/O per page grows with N on moto only: its Query scans the partition, DynamoDB's does not"
    )
    return table, results


def _any_connection(world: budget.World, company_id: str) -> str:
    response = world.api.get(f"/companies/{company_id}/connections", customer=world.customer, query={"limit": "1"})
    return str(response.body["items"][0]["connectionId"])


def _webhook(
    world: budget.World, services: Services, counter: budget.CallCounter, body: dict[str, Any], repeats: int
) -> dict[str, Any]:
    def delivery() -> tuple[Route, dict[str, Any]]:  # each a new one (a new webhook id), so each is applied
        return world.webhook({**body, "id": str(uuid.uuid4())}).to_event(world.api)

    times, counted, result = _timed_samples(counter, delivery, services, repeats)
    assert result["statusCode"] == 204, result
    return {"calls": sum(counted.aws.values()), "aws": dict(counted.aws), "ms": round(statistics.median(times), 2)}


# -- a burst of webhooks -----------------------------------------------------------------------------------

_LIFECYCLE = (
    "connection.created",
    "connection.connected",
    "read.completed.initial",
    *(["read.completed"] * 6),
    "connection.disconnected",
)


def _deliveries(stack: Stack, companies: int) -> tuple[budget.World, Services, list[dict[str, Any]]]:
    """A fresh in-memory world with `companies` companies, and their webhooks, interleaved across companies."""
    world, services = fake_world(stack.settings)
    with quiet():
        linked = []
        for _ in range(companies):
            company_id = world.company()
            linked.append((company_id, world.connection(company_id)))
    events = []
    for event_type in _LIFECYCLE:
        for company_id, connection_id in linked:
            if event_type.startswith("read."):
                body = read_event(
                    company_id=company_id, connection_ids=[connection_id], initial=event_type.endswith("initial")
                )
            else:
                status = {"connection.created": "PendingAuth", "connection.disconnected": "Unlinked"}.get(
                    event_type, "Linked"
                )
                body = world.connection_webhook(event_type, company_id, connection_id, status)
            events.append(world.webhook(body).to_event(world.api)[1])
    return world, services, events


def burst(stack: Stack, *, companies: int = 200) -> tuple[Table, dict[str, Any]]:
    route = next(r for r in routes() if r.path == budget.WEBHOOK_PATH)
    keys = parse_secrets(DEV_WEBHOOK_SECRET)

    def handle_all(services: Services, events: list[dict[str, Any]]) -> None:
        with quiet():
            for event in events:
                assert LocalApi.invoke(route, event, services)["statusCode"] == 204

    def verify_all(events: list[dict[str, Any]]) -> None:
        for event in events:
            verify(event["headers"], event["body"].encode(), keys)

    def run(work: Callable[[], None]) -> float:
        gc.collect()
        started = time.perf_counter()
        work()
        return time.perf_counter() - started

    def traced(work: Callable[[], None]) -> tuple[int, int]:
        gc.collect()
        tracemalloc.start()  # a second pass: tracemalloc slows what it watches
        work()
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return current, peak

    # The same deliveries for the floor (verifying is pure); fresh ones for each pass of the handler.
    _, services, events = _deliveries(stack, companies)
    handler_seconds = run(lambda: handle_all(services, events))
    floor_seconds = run(lambda: verify_all(events))
    floor_memory = traced(lambda: verify_all(events))
    _, services, fresh = _deliveries(stack, companies)
    handler_memory = traced(lambda: handle_all(services, fresh))
    measured: dict[str, Any] = {}
    for name, seconds, (current, peak) in (
        ("handler", handler_seconds, handler_memory),
        ("floor", floor_seconds, floor_memory),
    ):
        measured[name] = {
            "events": len(events),
            "seconds": round(seconds, 3),
            "events_per_second": round(len(events) / seconds),
            "peak_mb": round(peak / 2**20, 2),
            "retained_mb": round(current / 2**20, 2),
        }
    table = Table(
        f"Burst: {measured['handler']['events']:,} webhooks across {companies} companies, in-process on in-memory "
        "fakes (store, publisher)",
        ["", "events/s", "seconds", "peak MB", "retained MB", "µs/event"],
    )
    for name, label in (("handler", "webhook handler"), ("floor", "floor: verify signatures only")):
        m = measured[name]
        table.add(
            label, m["events_per_second"], m["seconds"], m["peak_mb"], m["retained_mb"], 1e6 / m["events_per_second"]
        )
    measured["handler_share_of_floor"] = round(
        measured["floor"]["events_per_second"] / measured["handler"]["events_per_second"], 1
    )
    table.notes.append(
        "peak/retained: tracemalloc, during the burst; retained is what the fake store now holds (ledger, events)"
    )
    table.notes.append(f"lifecycle per company: {', '.join(_LIFECYCLE)} (interleaved across companies)")
    return table, measured
