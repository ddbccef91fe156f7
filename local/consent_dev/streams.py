"""Lambda's DynamoDB event source mapping, locally: follows a moto table's stream and invokes a function of
template.yaml with the events, filtering, batching, retries and failure destination Lambda would apply."""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from consent.services import Services
from consent_dev.aws import Deployed, fake_session
from consent_dev.lambda_runtime import LambdaContext, load_handler
from consent_dev.template import Function, functions, load_template, resolve

log = logging.getLogger(__name__)

_GET_RECORDS_LIMIT = 1000  # the DynamoDB Streams maximum


# -- event filtering (the subset of EventBridge patterns that Lambda filters use) -------------------------


class PatternError(ValueError):
    """A filter pattern this matcher does not implement: refused rather than silently misread."""


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether `event` matches an EventBridge `pattern` as Lambda's FilterCriteria apply it: every key of the
    pattern must match; a leaf is a list of alternatives (exact values, or `prefix`, `anything-but`, `exists`);
    against an array in the event, a leaf matches if any element does."""
    for key, rule in pattern.items():
        present = key in event
        value = event.get(key)
        if isinstance(rule, Mapping):
            if not isinstance(value, Mapping) or not matches(rule, value):
                return False
        elif isinstance(rule, list):
            values = value if isinstance(value, list) else [value]
            if not any(_matches_rule(alternative, present, values) for alternative in rule):
                return False
        else:
            raise PatternError(f"{key}: pattern leaves are lists of values")
    return True


def _matches_rule(rule: Any, present: bool, values: list[Any]) -> bool:
    if not isinstance(rule, Mapping):
        return present and any(_same(rule, value) for value in values)
    if len(rule) != 1:
        raise PatternError(f"one operator per rule: {sorted(rule)}")
    ((operator, operand),) = rule.items()
    if operator == "exists":
        return present == bool(operand)
    if not present:
        return False
    if operator == "prefix" and isinstance(operand, str):
        return any(isinstance(value, str) and value.startswith(operand) for value in values)
    if operator == "anything-but":
        excluded = operand if isinstance(operand, list) else [operand]
        if any(isinstance(item, (Mapping, list)) for item in excluded):
            raise PatternError("anything-but takes values here, not nested operators")
        return any(not any(_same(item, value) for item in excluded) for value in values)
    raise PatternError(f"operator not implemented: {operator}")


def _same(expected: Any, actual: Any) -> bool:
    # Numbers compare by value (5 matches 5.0); otherwise type and value must agree ("5" is not 5).
    if _is_number(expected) and _is_number(actual):
        return float(expected) == float(actual)
    return type(expected) is type(actual) and bool(expected == actual)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- the event source mapping as template.yaml declares it ------------------------------------------------


@dataclass(frozen=True)
class StreamEventSource:
    """A function's `DynamoDB` event in template.yaml: the event source mapping Lambda would create."""

    stream: Any  # template value, e.g. {"Fn::GetAtt": ["ConsentTable", "StreamArn"]}
    starting_position: str
    batch_size: int = 100
    batching_window: float = 0
    patterns: tuple[Mapping[str, Any], ...] = ()
    report_batch_item_failures: bool = False
    bisect_on_error: bool = False
    maximum_retry_attempts: int = -1  # -1: until the record leaves the stream
    on_failure: Any = None  # template value of the OnFailure destination

    @classmethod
    def of(cls, function_id: str, template: dict[str, Any] | None = None) -> StreamEventSource:
        template = template or load_template()
        events = template["Resources"][function_id]["Properties"].get("Events", {})
        found = [event["Properties"] for event in events.values() if event["Type"] == "DynamoDB"]
        if len(found) != 1:
            raise ValueError(f"{function_id} has {len(found)} DynamoDB events; the pump follows exactly one")
        properties = found[0]
        filters = (properties.get("FilterCriteria") or {}).get("Filters") or []
        return cls(
            stream=properties["Stream"],
            starting_position=properties["StartingPosition"],
            batch_size=int(properties.get("BatchSize", 100)),
            batching_window=float(properties.get("MaximumBatchingWindowInSeconds", 0)),
            patterns=tuple(json.loads(f["Pattern"]) for f in filters),
            report_batch_item_failures="ReportBatchItemFailures" in properties.get("FunctionResponseTypes", []),
            bisect_on_error=bool(properties.get("BisectBatchOnFunctionError", False)),
            maximum_retry_attempts=int(properties.get("MaximumRetryAttempts", -1)),
            on_failure=((properties.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"),
        )

    def accepts(self, record: Mapping[str, Any]) -> bool:
        """Lambda's filtering: with FilterCriteria, a record goes to the function if any pattern matches."""
        return not self.patterns or any(matches(pattern, record) for pattern in self.patterns)


# -- the pump -----------------------------------------------------------------------------------------------


@dataclass
class PumpSummary:
    """What one `drain()` did."""

    read: int = 0  # stream records read
    filtered_out: int = 0  # dropped by FilterCriteria, as Lambda drops them
    invocations: int = 0
    failed_invocations: int = 0  # the function raised, or reported failed records
    discarded: int = 0  # records given up on after MaximumRetryAttempts
    failure_records: list[dict[str, Any]] = field(default_factory=list)  # sent to the OnFailure destination
    pending: int = 0  # records still waiting (only when `max_invocations` stopped the drain)


@dataclass
class _Outcome:
    succeeded: bool
    checkpoint: int = 0  # records of the batch that are done
    function_error: bool = False


@dataclass
class _Shard:
    shard_id: str
    iterator: str | None
    pending: list[dict[str, Any]] = field(default_factory=list)  # read, filtered, not yet checkpointed
    plan: list[int] = field(default_factory=list)  # sizes of the next batches, after a bisection
    failed_attempts: int = 0  # of the batch that starts at the checkpoint


class StreamPump:
    """Follows `table_name`'s stream on the moto server at AWS_ENDPOINT_URL and invokes `function`'s real
    handler the way Lambda's event source mapping for it in template.yaml would:

    - Lambda-shaped events (eventSourceARN, the stream's region, epoch-second creation times, base64 binary);
    - FilterCriteria, BatchSize (a batch never spans shards);
    - ReportBatchItemFailures: the batch is done up to the lowest reported sequence number, retried from there;
      a malformed report fails the whole batch;
    - BisectBatchOnFunctionError: a batch whose invocation raised is split in two, which uses no retry; with a
      partial report, only the records from the checkpoint are retried;
    - MaximumRetryAttempts: then a Lambda-like record of the batch goes to the OnFailure SQS queue.

    Not modelled: MaximumRecordAgeInSeconds, ParallelizationFactor, tumbling windows. Retries happen at
    once (Lambda backs off) and the batching window is not waited for: `drain()` runs
    everything pending to completion, synchronously, for tests; `start()` polls in a thread for `make dev`."""

    def __init__(
        self,
        table_name: str,
        function: Function | str,
        services_factory: Callable[[], Services],
        *,
        deployed: Deployed | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        self.function = function if isinstance(function, Function) else _function(function)
        self.source = StreamEventSource.of(self.function.logical_id)
        self._handler = load_handler(self.function.code_uri, self.function.handler)
        self._services_factory = services_factory
        self._deployed = deployed
        self._timeout = _timeout(self.function.logical_id)
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        if not endpoint:
            raise RuntimeError("StreamPump follows a moto server: set AWS_ENDPOINT_URL or pass endpoint_url")
        # Fake credentials always: this must never reach a real AWS account.
        session = fake_session()
        self._streams = session.client("dynamodbstreams", endpoint_url=endpoint)
        self._sqs = session.client("sqs", endpoint_url=endpoint)
        dynamodb = session.client("dynamodb", endpoint_url=endpoint)
        stream_arn = dynamodb.describe_table(TableName=table_name)["Table"].get("LatestStreamArn")
        if not stream_arn:
            raise ValueError(f"table {table_name} has no stream")
        self.stream_arn: str = stream_arn
        self._region = stream_arn.split(":")[3]
        self._shards: dict[str, _Shard] = {}
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._open_shards()  # LATEST means "from when the mapping was created"

    # -- public ---------------------------------------------------------------------------------------

    def drain(self, *, max_invocations: int = 1000) -> PumpSummary:
        """Read everything the stream has and deliver it, retries and failure destination included."""
        summary = PumpSummary()
        with self._lock:
            while True:
                self._read(summary)
                busy = [shard for shard in self._shards.values() if shard.pending]
                if not busy or summary.invocations >= max_invocations:
                    summary.pending = sum(len(shard.pending) for shard in busy)
                    return summary
                for shard in busy:
                    self._deliver_next_batch(shard, summary)

    def start(self, interval: float = 0.2) -> StreamPump:
        """Deliver in a background thread, every `interval` seconds, until `stop()`."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._run, args=(interval,), name=f"stream-pump-{self.function.logical_id}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> StreamPump:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- reading --------------------------------------------------------------------------------------

    def _run(self, interval: float) -> None:
        while not self._stopping.is_set():
            try:
                self.drain()
            except Exception:  # a dev server keeps pumping through a hiccup of the embedded AWS
                log.exception("stream pump: delivery failed; retrying")
            self._stopping.wait(interval)

    def _open_shards(self) -> None:
        description = self._streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        for shard in description.get("Shards", []):
            if shard["ShardId"] not in self._shards:
                iterator = self._streams.get_shard_iterator(
                    StreamArn=self.stream_arn,
                    ShardId=shard["ShardId"],
                    ShardIteratorType=self.source.starting_position,
                )["ShardIterator"]
                self._shards[shard["ShardId"]] = _Shard(shard["ShardId"], iterator)

    def _read(self, summary: PumpSummary) -> None:
        self._open_shards()
        for shard in self._shards.values():
            while shard.iterator is not None:
                page = self._streams.get_records(ShardIterator=shard.iterator, Limit=_GET_RECORDS_LIMIT)
                shard.iterator = page.get("NextShardIterator")  # absent once a shard is closed and read
                records = page.get("Records", [])
                for record in records:
                    event_record = lambda_record(record, self.stream_arn)
                    summary.read += 1
                    if self.source.accepts(event_record):
                        shard.pending.append(event_record)
                    else:
                        summary.filtered_out += 1
                if not records:
                    break

    # -- delivering -----------------------------------------------------------------------------------

    def _deliver_next_batch(self, shard: _Shard, summary: PumpSummary) -> None:
        size = shard.plan.pop(0) if shard.plan else self.source.batch_size
        batch = shard.pending[:size]
        outcome = self._invoke(batch, summary)
        if outcome.succeeded:
            del shard.pending[: len(batch)]
            shard.failed_attempts = 0
            return
        summary.failed_invocations += 1
        if outcome.function_error and self.source.bisect_on_error and len(batch) > 1:
            half = len(batch) // 2
            shard.plan[:0] = [half, len(batch) - half]  # splitting uses no retry
            return
        del shard.pending[: outcome.checkpoint]
        remaining = batch[outcome.checkpoint :]
        # Progress starts a new count: only a batch that keeps failing at the same record exhausts its retries.
        shard.failed_attempts = 1 if outcome.checkpoint else shard.failed_attempts + 1
        retries = self.source.maximum_retry_attempts
        if 0 <= retries < shard.failed_attempts:
            self._discard(shard, remaining, outcome, summary)
            del shard.pending[: len(remaining)]
            shard.failed_attempts = 0
        elif outcome.checkpoint == 0 or self.source.bisect_on_error:
            shard.plan[:0] = [len(remaining)]  # the same records again; else a fresh batch from the checkpoint

    def _invoke(self, batch: list[dict[str, Any]], summary: PumpSummary) -> _Outcome:
        summary.invocations += 1
        context = LambdaContext(self.function.logical_id, timeout_seconds=self._timeout)
        try:
            result = self._handler({"Records": batch}, context, services=self._services_factory())
        except Exception:  # Lambda turns any exception into a function error
            log.exception("stream pump: %s raised on a batch of %d records", self.function.logical_id, len(batch))
            return _Outcome(succeeded=False, function_error=True)
        if not self.source.report_batch_item_failures:
            return _Outcome(succeeded=True, checkpoint=len(batch))
        return _partial_batch_outcome(result, batch)

    def _discard(self, shard: _Shard, records: list[dict[str, Any]], outcome: _Outcome, summary: PumpSummary) -> None:
        failure = failure_record(
            records,
            shard_id=shard.shard_id,
            stream_arn=self.stream_arn,
            function_arn=LambdaContext(self.function.logical_id).invoked_function_arn,
            invoke_count=shard.failed_attempts,
            function_error=outcome.function_error,
        )
        summary.discarded += len(records)
        summary.failure_records.append(failure)
        queue_url = self._failure_queue_url()
        if queue_url is None:
            log.warning("stream pump: discarded %d records; no OnFailure queue to describe them on", len(records))
            return
        self._sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(failure))

    def _failure_queue_url(self) -> str | None:
        if self.source.on_failure is None or self._deployed is None:
            return None
        arn = str(resolve(self.source.on_failure, self._deployed.refs()))
        if not arn.startswith("arn:aws:sqs:"):
            raise NotImplementedError(f"OnFailure destinations other than SQS: {arn}")
        url: str = self._sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"]
        return url


def _partial_batch_outcome(result: Any, batch: list[dict[str, Any]]) -> _Outcome:
    """Lambda's reading of a partial batch response: no failures is success; the lowest reported sequence
    number is the checkpoint; an identifier that is empty, misnamed or not in the batch fails it all."""
    if result is None or (isinstance(result, Mapping) and not result.get("batchItemFailures")):
        return _Outcome(succeeded=True, checkpoint=len(batch))
    items = result.get("batchItemFailures") if isinstance(result, Mapping) else None
    if not isinstance(items, list):
        return _Outcome(succeeded=False)
    positions = {record["dynamodb"]["SequenceNumber"]: index for index, record in enumerate(batch)}
    checkpoint = len(batch)
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not isinstance(identifier, str) or identifier not in positions:
            return _Outcome(succeeded=False)
        checkpoint = min(checkpoint, positions[identifier])
    return _Outcome(succeeded=False, checkpoint=checkpoint)


# -- record shapes --------------------------------------------------------------------------------------


def lambda_record(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """A DynamoDB Streams API record (as boto3 returns it from moto) as Lambda puts it in an event: with
    eventSourceARN, the stream's region (moto says us-east-1), creation time in epoch seconds, and binary
    attributes in base64 (JSON), not bytes."""
    dynamodb: dict[str, Any] = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    for image in ("Keys", "NewImage", "OldImage"):
        if image in dynamodb:
            dynamodb[image] = {name: _json_attribute(value) for name, value in dynamodb[image].items()}
    event_record: dict[str, Any] = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": stream_arn.split(":")[3],
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in record:  # TTL deletions
        event_record["userIdentity"] = dict(record["userIdentity"])
    return event_record


def _json_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    ((kind, content),) = value.items()
    if kind == "B":
        return {kind: base64.b64encode(content).decode()}
    if kind == "BS":
        return {kind: [base64.b64encode(item).decode() for item in content]}
    if kind == "M":
        return {kind: {name: _json_attribute(item) for name, item in content.items()}}
    if kind == "L":
        return {kind: [_json_attribute(item) for item in content]}
    return {kind: content}


def failure_record(
    records: list[dict[str, Any]],
    *,
    shard_id: str,
    stream_arn: str,
    function_arn: str,
    invoke_count: int,
    function_error: bool,
) -> dict[str, Any]:
    """What Lambda sends to a stream mapping's OnFailure destination: where the discarded batch is, not
    its records (they stay readable on the stream for its 24-hour retention)."""

    def arrival(record: dict[str, Any]) -> str:
        moment = datetime.fromtimestamp(record["dynamodb"]["ApproximateCreationDateTime"], UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if function_error:
        response["functionError"] = "Unhandled"
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": arrival(records[0]),
            "approximateArrivalOfLastRecord": arrival(records[-1]),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }


def _function(logical_id: str) -> Function:
    for function in functions():
        if function.logical_id == logical_id:
            return function
    raise KeyError(f"no function {logical_id} in template.yaml")


def _timeout(logical_id: str) -> float:
    template = load_template()
    default = template.get("Globals", {}).get("Function", {}).get("Timeout", 3)
    return float(template["Resources"][logical_id]["Properties"].get("Timeout", default))
