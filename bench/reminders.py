"""Reminders at scale: the lifecycle run (`LifecycleFunction`, `consent.usecases.lifecycle.run_lifecycle`) on a
table of 100,000 Linked bank connections whose consent lapses spread evenly over the 83 days of a 90-day consent,
at a moment when one hour's reminders are due (the schedule's default, `rate(1 hour)`), beside what a Scan of the
whole table would read instead of the lifecycle's index (GSI2).

The connections are the product's own records (`ConnectionRecord.clocked`, the journeys file's consent clock) and
items (`DynamoDBConsentStore._connection_item`, `_company_item`), as the earlier hourly runs would have left them:
each reminder due before the seeding moment already sent. They are written straight into moto's backend (the
per-item put moto's BatchWriteItem makes, without the HTTP round trips and with the table's stream detached):
seeding is not what is measured, and 100,000 items through BatchWriteItem over HTTP take minutes on moto.

moto has no index and no partitions: each Query sorts every item of the table, and each TransactWriteItems
deep-copies the table for its rollback, seconds each at 100,000 items where DynamoDB reads or writes only the items
concerned. While the run is measured, a Query hands moto only its partition (on an index, only the items within its
key condition, from a walk of the table) and a transaction's rollback copy is of the items it touches
(`_moto_per_item`): results, conditions and rollbacks are moto's own."""

from __future__ import annotations

import contextlib
import copy
import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

from consent.domain.consent_clock import reminder_due
from consent.domain.records import CompanyRecord, ConnectionRecord
from consent.domain.resources import Actor, ConnectionStatus, SourceType
from consent.domain.timeline import StatusEvent
from consent.domain.transitions import EventKind
from consent.services import Services
from consent.store.dynamodb import GSI2, DynamoDBConsentStore
from consent.store.dynamodb.table import LIFECYCLE_SHARDS
from consent_dev.aws import REGION
from consent_dev.lambda_runtime import LambdaContext, load_handler
from consent_dev.template import functions, load_template

from common import Stack, Table, quiet

PER_COMPANY = 10  # connections per company
CONSENT_DAYS = 83  # a bank connection's 90 days of consent, to renew a week early (`renew_by`)
RUN_EVERY = timedelta(hours=1)  # LifecycleSchedule's default
# The moment the table is as the hourly runs left it; the measured run comes one schedule period later.
SEEDED_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_SEED = 20260302  # the same ids, shards and due reminders on every run
_MOTO_ACCOUNT = "123456789012"  # moto's default account
# DynamoDB's read units: 4 KB per unit strongly consistent, half a unit eventually consistent; an index entry
# costs its attributes plus 100 bytes; a Scan or Query page is rounded up to 4 KB (and costs at least one).
_READ_UNIT_BYTES = 4096
_INDEX_ENTRY_OVERHEAD = 100
# Transactional writes: two write units per 1 KB of each item.
_WRITE_UNIT_BYTES = 1024
_MB = 1024 * 1024

LIFECYCLE = next(f for f in functions() if f.logical_id == "LifecycleFunction")
QUERY_INDEX = f"Query {GSI2}"  # how the counts name a Query of the lifecycle's index (a company's: "Query table")


# -- seeding -----------------------------------------------------------------------------------------------------


def _records(services: Services, connections: int) -> Iterator[CompanyRecord | ConnectionRecord]:
    """`connections` Linked bank connections, `PER_COMPANY` to a company, each with a three-event history (created,
    linked, initial read), linked evenly over the `CONSENT_DAYS` before `SEEDED_AT` (so `renew_by` falls evenly
    over the `CONSENT_DAYS` after it), with the reminders due before `SEEDED_AT` sent, as the hourly runs did."""
    policy = services.catalog.consent_clock
    rng = random.Random(_SEED)  # noqa: S311 - the same ids on every run, not secrets
    span = timedelta(days=CONSENT_DAYS)
    order = list(range(connections))
    rng.shuffle(order)  # a company's connections were linked at unrelated times

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    for first in range(0, connections, PER_COMPANY):
        created = SEEDED_AT - span - timedelta(days=30)
        company = CompanyRecord(
            company_id=new_id(),
            customer_id=f"bench-customer-{first // PER_COMPANY % 100}",
            name=f"Company {first // PER_COMPANY}",
            created_at=created,
            updated_at=created,
        )
        yield company
        for number in order[first : first + PER_COMPANY]:
            linked = SEEDED_AT - span + span * (number + 0.5) / connections
            history = [
                StatusEvent(at=linked, id=new_id(), kind=kind, actor=Actor.CODAT)
                for kind in (EventKind.CREATED, EventKind.LINKED, EventKind.INITIAL_READ)
            ]
            record = ConnectionRecord(
                connection_id=new_id(),
                company_id=company.company_id,
                customer_id=company.customer_id,
                company_created_at=company.created_at,
                platform_key="qhnd",
                platform_name="Codat Banking Sandbox",
                source_type=SourceType.BANKING,
                status=ConnectionStatus.LINKED,
                created_at=linked,
                linked_at=linked,
                initial_read_done=True,
                history=history,
            ).clocked(policy)
            assert record.renew_by is not None, "the policy knows a bank connection's clock"
            sent = reminder_due(policy, record.renew_by, None, SEEDED_AT)
            yield record.with_reminder(policy, sent) if sent is not None else record


def seed(stack: Stack, connections: int) -> dict[str, Any]:
    """Build the items with the store's own item builders and put them into moto's table."""
    services = stack.services()
    store = services.store
    assert isinstance(store, DynamoDBConsentStore)
    started = time.perf_counter()
    items = [
        store._company_item(record) if isinstance(record, CompanyRecord) else store._connection_item(record)
        for record in _records(services, connections)
    ]
    built = time.perf_counter() - started
    backend, name = _backend(), stack.settings.table_name
    table = backend.get_table(name)
    stream, table.stream_shard = table.stream_shard, None  # seeded history: nothing new for the outbox relay
    try:
        for item in items:
            backend.put_item(name, item)  # what moto's BatchWriteItem does with each PutRequest
    finally:
        table.stream_shard = stream
    return {
        "companies": connections // PER_COMPANY,
        "connections": connections,
        "items": len(items),
        "item_bytes": [item_bytes(item) for item in items],
        "in_index": sum(1 for item in items if "GSI2PK" in item),
        "build_seconds": round(built, 1),
        "write_seconds": round(time.perf_counter() - started - built, 1),
    }


def _backend() -> Any:
    from moto.dynamodb.models import dynamodb_backends  # noqa: PLC0415 - dev dependency

    return dynamodb_backends[_MOTO_ACCOUNT][REGION]


# -- moto, per item ----------------------------------------------------------------------------------------------


class _TouchedItemsOnly:
    """Stands in for the `copy` module moto's DynamoDB models use (as `common._TablesCopiedOncePerTransaction`
    does): a transaction's copy of a table for its rollback shares every partition it does not touch and deep-copies
    only the items it touches; every other copy is `copy.deepcopy`'s."""

    def __init__(self) -> None:
        from moto.dynamodb.models.dynamo_type import DynamoType  # noqa: PLC0415 - dev dependency
        from moto.dynamodb.models.table import Table as MotoTable  # noqa: PLC0415

        self._dynamo_type = DynamoType
        self._table = MotoTable
        self._local = threading.local()

    def begin(self, backend: Any, transact_items: list[dict[str, Any]]) -> None:
        touched: dict[str, list[tuple[Any, Any]]] = {}
        for step in transact_items:
            _, action = next(iter(step.items()))
            name = action.get("TableName")
            table = backend.tables.get(name)
            if table is None:
                continue
            key = action.get("Key") or action.get("Item") or {}
            if table.range_key_attr is None or not {table.hash_key_attr, table.range_key_attr} <= key.keys():
                continue  # moto refuses it, or it is not a table this copies per item
            hash_key, range_key = (self._dynamo_type(key[k]) for k in (table.hash_key_attr, table.range_key_attr))
            touched.setdefault(name, []).append((hash_key, range_key))
        self._local.touched, self._local.copies = touched, {}

    def end(self) -> None:
        self._local.touched, self._local.copies = {}, None

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        copies: dict[int, Any] | None = getattr(self._local, "copies", None)
        if copies is None or not isinstance(value, self._table) or value.range_key_attr is None:
            return copy.deepcopy(value, memo)
        if id(value) not in copies:
            snapshot = copy.copy(value)
            snapshot.items = copy.copy(value.items)  # the partitions, shared unless touched
            copied: set[Any] = set()
            for hash_key, range_key in self._local.touched.get(value.name, []):
                if hash_key not in value.items:
                    continue
                if hash_key not in copied:
                    snapshot.items[hash_key] = dict(value.items[hash_key])
                    copied.add(hash_key)
                partition = snapshot.items[hash_key]
                if range_key in partition:
                    partition[range_key] = copy.deepcopy(partition[range_key])
            copies[id(value)] = snapshot
        return copies[id(value)]


def _key_condition(
    equal: list[tuple[str, Any]] | None, ranged: list[tuple[str, str, list[Any]]] | None
) -> Callable[[Any], bool]:
    """Whether a moto item is within a Query's key condition (moto's typed values: equalities on the partition key
    attributes, the last range condition on the sort key's). One difference with moto's own walk: a page filled by
    the last item within the condition ends without a LastEvaluatedKey here (moto, like DynamoDB, gives one, and an
    empty page follows). The lifecycle's pages of 500 keys are far from full."""
    equalities = [(name, value.type, value.value) for name, value in equal or []]

    def within(item: Any) -> bool:
        for name, kind, value in equalities:
            attr = item.attrs.get(name)
            if attr is None or attr.type != kind or attr.value != value:
                return False
        if ranged:
            name, comparison, values = ranged[-1]
            attr = item.attrs.get(name)
            return attr is not None and bool(attr.compare(comparison, values))
        return True

    return within


@contextlib.contextmanager
def _moto_per_item() -> Iterator[None]:
    """moto costing per item concerned, as DynamoDB does, not per item of the table (see the module's doc)."""
    from moto.dynamodb import models  # noqa: PLC0415 - dev dependency
    from moto.dynamodb.models import DynamoDBBackend  # noqa: PLC0415
    from moto.dynamodb.models.table import Table as MotoTable  # noqa: PLC0415

    original_query = MotoTable.query
    original_transact = DynamoDBBackend.transact_write_items
    globals_of_models = vars(models)
    rollback_copy = globals_of_models["copy"]
    touched = _TouchedItemsOnly()

    def query(table: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        if table.range_key_attr is None:
            return original_query(table, hash_key, *args, **kwargs)
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name or hash_key is None:
            # No index in moto: every item is looked at. Those outside the key condition are passed over here, with
            # moto's own comparisons, so that moto sorts, sizes and pages only those within it (as DynamoDB reads).
            within = _key_condition(kwargs.get("hash_key_conditions"), kwargs.get("range_key_conditions"))
            items = [item for partition in table.items.values() for item in partition.values() if within(item)]
        else:
            items = list(table.items[hash_key].values()) if hash_key in table.items else []
        table.all_items = lambda: items  # for this call (under the server's lock): moto's own query does the rest
        try:
            return original_query(table, hash_key, *args, **kwargs)
        finally:
            del table.all_items

    def transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
        touched.begin(backend, transact_items)
        try:
            original_transact(backend, transact_items)
        finally:
            touched.end()

    # Methods of moto's, wrapped: mypy refuses any assignment to a method.
    MotoTable.query = query  # type: ignore[method-assign, assignment]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign, assignment]
    globals_of_models["copy"] = touched
    try:
        yield
    finally:
        globals_of_models["copy"] = rollback_copy
        DynamoDBBackend.transact_write_items = original_transact  # type: ignore[method-assign]
        MotoTable.query = original_query  # type: ignore[method-assign]


# -- counting ----------------------------------------------------------------------------------------------------


def item_bytes(item: Mapping[str, Any]) -> int:
    """An item's size as DynamoDB counts it (names and values), for the attribute types the table holds."""
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def _value_bytes(value: Mapping[str, Any]) -> int:
    kind, content = next(iter(value.items()))
    if kind == "S":
        return len(str(content).encode())
    if kind == "N":
        return len(str(content).lstrip("-").replace(".", "")) // 2 + 2
    if kind == "B":
        return len(content)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_bytes(v) for k, v in content.items())
    if kind == "L":
        return 3 + sum(1 + _value_bytes(v) for v in content)
    return 1  # BOOL, NULL


def read_units(page_bytes: int, *, consistent: bool) -> float:
    return max(1, math.ceil(page_bytes / _READ_UNIT_BYTES)) * (1.0 if consistent else 0.5)


@dataclass
class Reads:
    """DynamoDB calls of the clients created meanwhile, by operation and, for a Query, what it read: the reminders'
    index or the table (a company's partition); the items they returned and the read and write units they would
    cost on DynamoDB (estimated from the items' sizes)."""

    calls: Counter[str] = field(default_factory=Counter)
    items: Counter[str] = field(default_factory=Counter)
    read_units: dict[str, float] = field(default_factory=dict)
    ms: dict[str, float] = field(default_factory=dict)
    write_units: int = 0

    def _before(self, params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        name = model.name
        if name == "Query":
            name = f"Query {params['IndexName']}" if params.get("IndexName") else "Query table"
        context["bench_call"] = name
        context["bench_consistent"] = bool(params.get("ConsistentRead"))
        context["bench_started"] = time.perf_counter()
        for step in params.get("TransactItems", []):
            for action in step.values():
                if "Item" in action:
                    self.write_units += 2 * math.ceil(item_bytes(action["Item"]) / _WRITE_UNIT_BYTES)
                else:
                    self.write_units += 2

    def _after(self, parsed: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
        name = context.get("bench_call")
        if name is None:
            return
        self.calls[name] += 1
        self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - context["bench_started"]) * 1000
        if "Items" in parsed:
            overhead = _INDEX_ENTRY_OVERHEAD if name == QUERY_INDEX else 0
            page = sum(item_bytes(item) + overhead for item in parsed["Items"])
            self.items[name] += len(parsed["Items"])
            units = read_units(page, consistent=context["bench_consistent"])
            self.read_units[name] = self.read_units.get(name, 0.0) + units

    def watch(self, client: Any) -> Any:
        if client.meta.service_model.service_name == "dynamodb":
            # One unique id per handler: botocore keeps the first handler registered under an id, whatever the event.
            client.meta.events.register("before-parameter-build.dynamodb", self._before, unique_id=f"{id(self)}-b")
            client.meta.events.register("after-call.dynamodb", self._after, unique_id=f"{id(self)}-a")
        return client

    @contextlib.contextmanager
    def watching_new_clients(self) -> Iterator[Reads]:
        original = botocore.session.Session.create_client

        def create_client(session: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
            return self.watch(original(session, *args, **kwargs))

        botocore.session.Session.create_client = create_client  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            botocore.session.Session.create_client = original  # type: ignore[method-assign]


# -- the run -----------------------------------------------------------------------------------------------------


def _run(stack: Stack, at: datetime) -> dict[str, Any]:
    """One invocation of the lifecycle function's handler at `at`, on services of its own (new clients, counted)."""
    timeout = float(load_template()["Resources"]["LifecycleFunction"]["Properties"]["Timeout"])
    handler = load_handler(LIFECYCLE.code_uri, LIFECYCLE.handler)
    counter = stack.counter()
    with Reads().watching_new_clients() as reads, counter.watching_new_clients(), counter.measure() as counted:
        services = Services(stack.settings, clock=lambda: at)
        context = LambdaContext(LIFECYCLE.logical_id, timeout_seconds=timeout)
        started = time.perf_counter()
        with quiet(), _moto_per_item():
            report = handler({}, context, services=services)
        ms = (time.perf_counter() - started) * 1000
    return {
        "at": at.isoformat(),
        "report": report,
        "calls": dict(reads.calls),
        "aws_by_operation": dict(counted.aws),
        "codat_calls": sum(counted.codat.values()),
        "items": dict(reads.items),
        "read_units": {name: round(units, 1) for name, units in reads.read_units.items()},
        "write_units": reads.write_units,
        "ms_by_call": {name: round(ms, 1) for name, ms in reads.ms.items()},
        "ms": round(ms, 1),
    }


def scan_pages(sizes: list[int]) -> dict[str, Any]:
    """What a Scan of items of these sizes reads: a page per MB read, each page's read units (eventually
    consistent) rounded up to 4 KB."""
    pages, page, units = 0, 0, 0.0
    for size in sizes:
        if page and page + size > _MB:
            pages, units, page = pages + 1, units + read_units(page, consistent=False), 0
        page += size
    if page:
        pages, units = pages + 1, units + read_units(page, consistent=False)
    return {"pages": pages, "items": len(sizes), "mb": round(sum(sizes) / _MB, 1), "read_units": units}


def _scan(stack: Stack, sizes: list[int]) -> dict[str, Any]:
    """What reading the whole table would cost, from its items' sizes, beside the first page of a real Scan."""
    reads = Reads()
    # moto takes seconds over a 1 MB page of this table: more than the product's client waits (5 s), under load.
    config = Config(read_timeout=120, retries={"mode": "standard", "total_max_attempts": 1})
    client = reads.watch(boto3.client("dynamodb", config=config))
    started = time.perf_counter()
    response = client.scan(TableName=stack.settings.table_name)
    first_page = {
        "calls": dict(reads.calls),
        "items": len(response["Items"]),
        "kb": round(sum(item_bytes(item) for item in response["Items"]) / 1024),
        "read_units": reads.read_units.get("Scan", 0.0),
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }
    return {**scan_pages(sizes), "first_page": first_page}


def run(stack: Stack, *, connections: int) -> tuple[Table, dict[str, Any]]:
    stack.fresh_table()
    seeded = seed(stack, connections)
    due_at = SEEDED_AT + RUN_EVERY
    first = _run(stack, due_at)
    again = _run(stack, due_at)
    scan = _scan(stack, seeded.pop("item_bytes"))
    stack.fresh_table()  # the next sections' transactions would copy these 100,000 items for their rollbacks
    lead_times = len(stack.services().catalog.consent_clock.reminder_days)
    expected = connections * lead_times * (RUN_EVERY / timedelta(days=CONSENT_DAYS))
    results = {
        "seeded": seeded,
        "seeded_at": SEEDED_AT.isoformat(),
        "expected_due": round(expected, 1),
        "first": first,
        "again": again,
        "scan": scan,
    }
    index = QUERY_INDEX
    table = Table(
        f"Reminders: the lifecycle run on {connections:,} Linked bank connections ({seeded['companies']:,} companies "
        f"x {PER_COMPANY}), an hour's reminders due (≈ {expected:.0f}); the handler on moto over HTTP",
        [
            "",
            "due",
            "sent",
            index,
            "Query company",
            "TransactWriteItems",
            "other calls",
            "index items",
            "table items",
            "≈ RCU",
            "≈ WCU",
            "ms",
            f"{GSI2} ms",
        ],
    )
    for label, measured in (("run, an hour after the last", first), ("again, same moment", again)):
        calls, items = Counter(measured["calls"]), measured["items"]
        table.add(
            label,
            measured["report"]["due"],
            measured["report"]["sent"],
            calls.pop(index, 0),
            calls.pop("Query table", 0),
            calls.pop("TransactWriteItems", 0),
            ", ".join(f"{n} {op}" for op, n in sorted(calls.items())) or "none",
            items.get(index, 0),
            items.get("Query table", 0),
            round(sum(measured["read_units"].values()), 1),
            measured["write_units"],
            measured["ms"],
            measured["ms_by_call"].get(index, 0.0),
        )
    table.add(
        f"instead of {GSI2}: Scan the table",
        "-",
        "-",
        0,
        0,
        0,
        f"{scan['pages']} Scan",
        0,
        scan["items"],
        scan["read_units"],
        0,
        "-",
        "-",
    )
    page = scan["first_page"]
    table.notes += [
        f"table: {seeded['items']:,} items ({seeded['companies']:,} companies, {connections:,} connections), "
        f"{seeded['in_index']:,} in {GSI2} (sparse: not a connection whose period's reminders have all gone); "
        f"seeded in {seeded['build_seconds']} s (records, items) + {seeded['write_seconds']} s (moto's backend "
        "directly: BatchWriteItem's put per item, without HTTP, stream detached), not measured",
        f"per reminder: 1 Query of the company (strongly consistent) + 1 TransactWriteItems (ledger entry and "
        f"connection); {GSI2} (KEYS_ONLY): 1 Query per shard, {LIFECYCLE_SHARDS}; Codat calls: {first['codat_calls']}",
        "RCU/WCU: DynamoDB's, estimated from the items' sizes (a read unit per 4 KB of a call, half eventually "
        "consistent; 2 write units per KB of each item of a transaction)",
        f"the Scan: computed from the items' sizes ({scan['mb']} MB, a page per MB), a floor: no ledger entries "
        f"here; its first page made on moto: {page['items']:,} items, {page['kb']:,} KB, {page['read_units']} RCU, "
        f"{page['ms']:,.0f} ms",
        f"ms on moto: a {GSI2} Query walks all {seeded['items']:,} items (moto has no index), DynamoDB reads the due "
        "entries; what moto does per item of the table for a Query's partition and a transaction's rollback copy is "
        "kept to the items concerned here (bench/reminders.py, _moto_per_item)",
    ]
    return table, results


def goal(results: dict[str, Any]) -> tuple[str, str, bool]:
    """The run's calls: a Query per shard of the index (never a Scan), then a Query and a transaction per connection
    due; at the same moment again, the index's Queries alone."""
    first, again = results["first"], results["again"]
    due = first["report"]["due"]
    expected = {QUERY_INDEX: LIFECYCLE_SHARDS, **({"Query table": due, "TransactWriteItems": due} if due else {})}
    return (
        f"reminders: {GSI2} only ({LIFECYCLE_SHARDS} Queries), then 1 Query + 1 transaction per reminder, all sent",
        f"{first['report']['sent']}/{due} sent: {_calls(first['calls'])}; again: {_calls(again['calls'])}",
        first["calls"] == expected
        and first["report"]["sent"] == due
        and again["calls"] == {QUERY_INDEX: LIFECYCLE_SHARDS},
    )


def _calls(calls: dict[str, int]) -> str:
    return ", ".join(f"{n} {call}" for call, n in sorted(calls.items())) or "none"
