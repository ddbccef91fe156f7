"""Embedded AWS for tests and `make dev`: a moto server, with the resources template.yaml declares."""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3

from consent_dev import dynamodb_rules
from consent_dev.template import (
    PSEUDO_PARAMETERS,
    deployed_with,
    load_template,
    parameter_defaults,
    resolve,
    resources_of_type,
)

REGION = PSEUDO_PARAMETERS["AWS::Region"]
# Documented fakes: moto accepts any credentials. Never real ones.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


def fake_session() -> boto3.session.Session:
    """A boto3 session with the fake credentials, whatever the environment holds: it never reaches a real account."""
    return boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=REGION,
    )


_ATOMIC_OPERATIONS = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "get_item",
    "query",
    "scan",
    "batch_write_item",
    "batch_get_item",
    "transact_get_items",
)
_dynamodb_lock = threading.RLock()


def make_dynamodb_atomic() -> None:
    """DynamoDB applies each item write, condition and transaction atomically; moto's threaded server does
    not, so two racing conditional writes could both succeed there. One lock around moto's item operations
    makes the fake as strict as the real service, so concurrency tests prove what they claim."""
    from moto.dynamodb.models import DynamoDBBackend  # noqa: PLC0415 - dev dependency

    for name in _ATOMIC_OPERATIONS:
        original = getattr(DynamoDBBackend, name, None)
        if original is None or getattr(original, "_consent_atomic", False):
            continue

        def atomic(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with _dynamodb_lock:
                return _original(self, *args, **kwargs)

        atomic._consent_atomic = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, functools.wraps(original)(atomic))
    _keep_streams_through_cancelled_transactions(DynamoDBBackend)


def _keep_streams_through_cancelled_transactions(backend: Any) -> None:
    """A cancelled TransactWriteItems in moto leaves stream records of the writes it rolled back, and rolls back
    by swapping in a deep copy of the table, whose stream is a new object that open shard iterators (the outbox
    relay's) never read. DynamoDB records nothing for a cancelled transaction and keeps one stream: so do we."""
    current = backend.transact_write_items
    if getattr(current, "_consent_keeps_streams", False):
        return

    def transact_write_items(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _dynamodb_lock:
            streams = {
                name: (table.stream_shard, len(table.stream_shard.items))
                for name, table in self.tables.items()
                if table.stream_shard is not None
            }
            try:
                return current(self, *args, **kwargs)
            except Exception:
                for name, (shard, length) in streams.items():
                    del shard.items[length:]
                    restored = self.tables.get(name)
                    if restored is not None and restored.stream_shard is not shard:
                        restored.stream_shard, shard.table = shard, restored
                raise

    transact_write_items._consent_keeps_streams = True  # type: ignore[attr-defined]
    backend.transact_write_items = functools.wraps(current)(transact_write_items)


class MotoServer:
    """moto's server in a thread on a free loopback port; boto3 speaks real HTTP to it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 - dev dependency

        make_dynamodb_atomic()
        dynamodb_rules.install()  # what AWS refuses and moto lets through
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self.host = host
        self.port = port

    def start(self) -> MotoServer:
        self._server.start()
        _, self.port = self._server.get_host_and_port()
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        """What boto3 needs to talk to this server (set in os.environ by the caller)."""
        return {
            **FAKE_CREDENTIALS,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
        }


@dataclass
class Deployed:
    """Physical names of what was created, by logical id."""

    tables: dict[str, str] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)  # ARNs
    keys: dict[str, str] = field(default_factory=dict)  # KMS key ARNs
    queue_urls: dict[str, str] = field(default_factory=dict)
    subscriptions: dict[str, str] = field(default_factory=dict)  # ARNs
    stream_arns: dict[str, str] = field(default_factory=dict)  # by table

    def refs(self) -> dict[str, str]:
        """What `Ref` and `Fn::GetAtt` give for each created resource, for `consent_dev.template.resolve`."""
        refs: dict[str, str] = {**self.tables, **self.topics, **self.secrets, **self.queue_urls}
        for logical_id, arn in self.keys.items():
            refs[logical_id] = arn.rsplit("/", 1)[-1]
            refs[f"{logical_id}.Arn"] = arn
        for logical_id, name in self.tables.items():
            refs[f"{logical_id}.Arn"] = f"arn:aws:dynamodb:{REGION}:123456789012:table/{name}"
        refs.update({f"{logical_id}.StreamArn": arn for logical_id, arn in self.stream_arns.items()})
        refs.update({f"{logical_id}.TopicArn": arn for logical_id, arn in self.topics.items()})
        for logical_id, arn in self.queues.items():
            refs[f"{logical_id}.Arn"] = arn
            refs[f"{logical_id}.QueueName"] = arn.rsplit(":", 1)[-1]
            refs[f"{logical_id}.QueueUrl"] = self.queue_urls[logical_id]
        # An HTTP API is not embedded (the local API Gateway serves its routes): a stand-in for its id (its Ref),
        # e.g. in the webhook URL reconciliation is given.
        for logical_id in resources_of_type("AWS::Serverless::HttpApi"):
            refs[logical_id] = logical_id.lower()[:10]
        return refs


def _table_request(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if "GlobalSecondaryIndexes" in properties:
        request["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
    if "StreamSpecification" in properties:
        request["StreamSpecification"] = {"StreamEnabled": True, **properties["StreamSpecification"]}
    return request


def deploy(endpoint: str, *, suffix: str | None = None, secret_values: dict[str, str] | None = None) -> Deployed:
    """Create the template's tables (with their streams), topics, secrets, queues and topic subscriptions
    on the moto server at `endpoint`.

    Each gets a unique name (suffix) so tests can share one server without sharing state."""
    suffix = suffix or uuid.uuid4().hex[:8]
    session = fake_session()
    template = load_template()
    deployed = deploy_tables(endpoint, suffix=suffix)
    kms = session.client("kms", endpoint_url=endpoint)
    for logical_id in resources_of_type("AWS::KMS::Key", template):
        deployed.keys[logical_id] = kms.create_key(Description=f"{logical_id}-{suffix}")["KeyMetadata"]["Arn"]
    sns = session.client("sns", endpoint_url=endpoint)
    for logical_id in resources_of_type("AWS::SNS::Topic", template):
        deployed.topics[logical_id] = sns.create_topic(Name=f"{logical_id}-{suffix}")["TopicArn"]
    secrets = session.client("secretsmanager", endpoint_url=endpoint)
    for logical_id in resources_of_type("AWS::SecretsManager::Secret", template):
        value = (secret_values or {}).get(logical_id, f"dev-placeholder-{logical_id}")
        arn = secrets.create_secret(Name=f"{logical_id}-{suffix}", SecretString=value)["ARN"]
        deployed.secrets[logical_id] = arn
    _create_queues(session.client("sqs", endpoint_url=endpoint), template, suffix, deployed)
    defaults = parameter_defaults(template)
    for logical_id, resource in resources_of_type("AWS::SNS::Subscription", template).items():
        if not deployed_with(resource, defaults, template):
            continue  # e.g. the alarm topic's e-mail, with no address given
        properties = resolve(resource["Properties"], {**defaults, **deployed.refs()})
        attributes = {name: _attribute(properties[name]) for name in _SUBSCRIPTION_ATTRIBUTES if name in properties}
        deployed.subscriptions[logical_id] = sns.subscribe(
            TopicArn=properties["TopicArn"],
            Protocol=properties["Protocol"],
            Endpoint=properties["Endpoint"],
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
    return deployed


def deploy_tables(endpoint: str, *, suffix: str | None = None) -> Deployed:
    """Only the template's tables (with their streams), under a unique suffix: a test that needs a table of its
    own but can share the rest of a deployment (one `deploy` costs ten times as much)."""
    suffix = suffix or uuid.uuid4().hex[:8]
    dynamodb = _dynamodb_client(endpoint)
    deployed = Deployed()
    for logical_id, resource in resources_of_type("AWS::DynamoDB::Table", load_template()).items():
        name = f"{logical_id}-{suffix}"
        properties = resource["Properties"]
        dynamodb.create_table(**_table_request(name, properties))
        ttl = properties.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        deployed.tables[logical_id] = name
        stream_arn = dynamodb.describe_table(TableName=name)["Table"].get("LatestStreamArn")
        if stream_arn:
            deployed.stream_arns[logical_id] = stream_arn
    return deployed


def drop_tables(endpoint: str, deployed: Deployed) -> None:
    """Delete the deployment's tables. moto's TransactWriteItems deep-copies every table the server holds (for its
    rollback), once per item of the transaction: tables left behind by finished tests would make every later
    transaction slower, which DynamoDB's are not."""
    dynamodb = _dynamodb_client(endpoint)
    for name in deployed.tables.values():
        with contextlib.suppress(dynamodb.exceptions.ResourceNotFoundException):
            dynamodb.delete_table(TableName=name)


def empty_tables(endpoint: str, deployed: Deployed) -> None:
    """Delete every item of the deployment's tables (the tables, their indexes and streams stay)."""
    dynamodb = _dynamodb_client(endpoint)
    for name in deployed.tables.values():
        keys = [k["AttributeName"] for k in dynamodb.describe_table(TableName=name)["Table"]["KeySchema"]]
        for page in dynamodb.get_paginator("scan").paginate(
            TableName=name,
            ProjectionExpression=", ".join(f"#k{i}" for i in range(len(keys))),
            ExpressionAttributeNames={f"#k{i}": key for i, key in enumerate(keys)},
        ):
            items = page.get("Items", [])
            for start in range(0, len(items), 25):  # BatchWriteItem's limit
                requests = [{"DeleteRequest": {"Key": item}} for item in items[start : start + 25]]
                dynamodb.batch_write_item(RequestItems={name: requests})


@functools.lru_cache(maxsize=4)
def _dynamodb_client(endpoint: str) -> Any:
    # Made once per server: a new session loads botocore's DynamoDB model again (most of a table's cost).
    session = fake_session()
    return session.client("dynamodb", endpoint_url=endpoint)


# Template properties that are also SQS queue / SNS subscription attributes of the same name.
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "SqsManagedSseEnabled",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "RedrivePolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
)
_SUBSCRIPTION_ATTRIBUTES = (
    "FilterPolicy",
    "FilterPolicyScope",
    "RawMessageDelivery",
    "RedrivePolicy",
    "DeliveryPolicy",
)


def _create_queues(sqs: Any, template: dict[str, Any], suffix: str, deployed: Deployed) -> None:
    # Dead-letter queues first: a queue's RedrivePolicy names another queue's ARN.
    queues = resources_of_type("AWS::SQS::Queue", template)
    for logical_id, resource in sorted(queues.items(), key=lambda item: "RedrivePolicy" in _properties(item[1])):
        properties = resolve(_properties(resource), deployed.refs())
        attributes = {name: _attribute(properties[name]) for name in _QUEUE_ATTRIBUTES if name in properties}
        name = f"{logical_id}-{suffix}" + (".fifo" if properties.get("FifoQueue") else "")
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        deployed.queue_urls[logical_id] = url
        created = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
        deployed.queues[logical_id] = created["QueueArn"]


def _properties(resource: dict[str, Any]) -> dict[str, Any]:
    properties = resource.get("Properties") or {}
    assert isinstance(properties, dict)
    return properties


def _attribute(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, str) else json.dumps(value)
