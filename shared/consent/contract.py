"""The consent events' published contract, generated from the models that build the events (`consent.events`):
a JSON Schema per event type and the AsyncAPI 3.0 document of the SNS topic.

Not imported by any function (tools, `make dev` and tests only). The schemas are plain JSON Schema (no `$ref`,
no `null`): they read the same as draft-07 inside the AsyncAPI document and as 2020-12 on their own. They are
open (no `additionalProperties: false`): a consumer must ignore fields it does not know, which is what lets the
contract grow by adding fields within a major version."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from consent.domain.records import LedgerRecord
from consent.domain.resources import Actor, ConnectionStatus, SourceType
from consent.events import (
    CONTRACT_VERSION,
    EVENT_CATALOG,
    LEDGER_EVENT_TYPES,
    SCHEMA_MAJOR,
    CloudEvent,
    ConnectionEventData,
    ConsentEventType,
    JourneyEventData,
    SyncCompletedData,
    dataschema,
    to_cloud_event,
)
from consent.settings import DEFAULT_SCHEMA_BASE_URI

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
SNS_BINDING_VERSION = "0.1.0"
# The template's topic (logical id): the channel binding names it.
TOPIC_LOGICAL_ID = "ConsentEventsTopic"


class _Absent(GenerateJsonSchema):
    """`None` is never on the wire (events are serialized without absent fields): an optional field is simply
    not required, never `null`."""

    def nullable_schema(self, schema: Any) -> Any:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: Any) -> Any:
        inner = self.generate_inner(schema["schema"])
        default = schema.get("default")
        if default is not None and not isinstance(default, list):
            inner["default"] = default
        return inner


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with every `$ref` to its `$defs` replaced by the definition itself, `$defs` and titles dropped,
    and no `additionalProperties: false` (the contract is open)."""
    definitions = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:  # the definition, with what the reference says beside it (its description)
                siblings = {key: value for key, value in node.items() if key != "$ref"}
                return walk({**copy.deepcopy(definitions[node["$ref"].rsplit("/", 1)[-1]]), **siblings})
            return {
                key: walk(value)
                for key, value in node.items()
                if key != "title" and not (key == "additionalProperties" and value is False)
            }
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    inlined: dict[str, Any] = walk(schema)
    return inlined


def data_schema(event_type: ConsentEventType) -> dict[str, Any]:
    model, _ = EVENT_CATALOG[event_type]
    generated = model.model_json_schema(by_alias=True, mode="serialization", schema_generator=_Absent)
    return _inline(generated)


def event_schema(event_type: ConsentEventType, base_uri: str = DEFAULT_SCHEMA_BASE_URI) -> dict[str, Any]:
    """The JSON Schema of one event type's CloudEvent, as published: `$id` is the events' `dataschema`."""
    envelope = _inline(CloudEvent.model_json_schema(mode="serialization", schema_generator=_Absent))
    properties = envelope["properties"]
    properties["type"] = {"const": event_type.value, "description": properties["type"]["description"]}
    properties["dataschema"] = {
        "const": dataschema(event_type, base_uri),
        "description": properties["dataschema"]["description"],
    }
    properties["time"]["pattern"] = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"
    properties["data"] = data_schema(event_type)
    _, description = EVENT_CATALOG[event_type]
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": dataschema(event_type, base_uri),
        "title": event_type.value,
        "description": description,
        **{key: value for key, value in envelope.items() if key not in ("description",)},
    }


# -- examples: real events, built by the code from a ledger entry --------------------------------------------

_EXAMPLE_AT = datetime(2026, 11, 2, 9, 30, 15, 123456, tzinfo=UTC)
_EXAMPLE_COMPANY = "8a210b68-6988-11ed-a1eb-0242ac120002"
_EXAMPLE_CONNECTION = "51baa045-4836-4317-a42e-3542e991e581"


def _example_ledger_type(event_type: ConsentEventType) -> str:
    return next(ledger for ledger, published in LEDGER_EVENT_TYPES.items() if published == event_type)


def example_event(event_type: ConsentEventType, base_uri: str = DEFAULT_SCHEMA_BASE_URI) -> CloudEvent:
    """A typical event of this type, as `to_cloud_event` builds it."""
    model, _ = EVENT_CATALOG[event_type]
    customer = "customer-7f3a"
    fields: dict[str, Any] = {"actor": Actor.CODAT, "journeys": ["onboarding"]}
    if issubclass(model, ConnectionEventData):
        fields |= {"connection_id": _EXAMPLE_CONNECTION, "platform_key": "qhnd", "source_type": SourceType.BANKING}
        status = {
            ConsentEventType.CONNECTION_CREATED: ConnectionStatus.PENDING_AUTH,
            ConsentEventType.CONNECTION_LINKED: ConnectionStatus.LINKED,
            ConsentEventType.CONNECTION_FAILED: ConnectionStatus.PENDING_AUTH,
            ConsentEventType.CONNECTION_UNLINKED: ConnectionStatus.UNLINKED,
            ConsentEventType.CONNECTION_DEAUTHORIZED: ConnectionStatus.DEAUTHORIZED,
            ConsentEventType.CONNECTION_RENEWED: ConnectionStatus.LINKED,
            ConsentEventType.CONNECTION_EXPIRING: ConnectionStatus.LINKED,
        }.get(event_type)
        if status is not None:
            fields["status"] = status
    if event_type in (ConsentEventType.CONNECTION_CREATED, ConsentEventType.CONNECTION_UNLINKED):
        fields |= {"actor": Actor.customer(customer)}
    if event_type == ConsentEventType.CONNECTION_CREATED:
        fields["consent_version"] = "2026-10"
    if event_type in (ConsentEventType.COMPANY_CREATED, ConsentEventType.COMPANY_ERASED):
        fields["actor"] = Actor.customer(customer)
    if event_type == ConsentEventType.CONNECTION_FAILED:
        fields["detail"] = "The customer cancelled at the bank"
    if event_type == ConsentEventType.CONNECTION_RENEWED:
        expires = _EXAMPLE_AT + timedelta(days=90)
        fields |= {"consent_expires_at": expires, "renew_by": expires - timedelta(days=7)}
    if event_type == ConsentEventType.CONNECTION_EXPIRING:
        # A reminder 7 days before renewBy: due at its time, sent by the consent clock's run a little after.
        renew_by = _EXAMPLE_AT.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=7)
        fields |= {
            "actor": Actor.CONSENT_CLOCK,
            "consent_expires_at": renew_by + timedelta(days=7),
            "renew_by": renew_by,
            "reminder_days": 7,
        }
    if issubclass(model, SyncCompletedData):
        fields["data_types"] = [
            {"dataType": "banking-accounts", "status": "Complete"},
            {"dataType": "banking-transactions", "status": "Complete"},
        ]
    if issubclass(model, JourneyEventData):
        fields["journey"] = "onboarding"
    entry_id = f"webhook:msg_2Zx1{event_type.value.rsplit('.', 1)[-1][:6]}:{_EXAMPLE_CONNECTION[:8]}"
    if event_type == ConsentEventType.JOURNEY_DATA_READY:
        # The last of a loan application's required data types read: ready for 30 days from the oldest read.
        fields |= {
            "journey": "loan_application",
            "journeys": ["loan_application"],
            "fresh_until": _EXAMPLE_AT - timedelta(days=2) + timedelta(days=30),
        }
        entry_id = "journey:loan_application:data_ready:1"
    if event_type == ConsentEventType.JOURNEY_DATA_STALE:
        # Time made the oldest read too old: the consent clock's run announces it.
        fields |= {
            "actor": Actor.CONSENT_CLOCK,
            "journey": "loan_application",
            "journeys": ["loan_application"],
            "stale_types": ["balanceSheet", "profitAndLoss"],
        }
        entry_id = "journey:loan_application:data_stale:1"
    if event_type == ConsentEventType.DATA_PURGED:
        # A credit check's bank connection, its one-off consent ended 30 days ago: its data deleted in Codat.
        fields |= {
            "actor": Actor.CONSENT_CLOCK,
            "journeys": ["credit_check"],
            "connection_id": _EXAMPLE_CONNECTION,
            "platform_key": "qhnd",
            "source_type": SourceType.BANKING,
            "retain_days": 30,
            "detail": "its data deleted in Codat, 30 days after consent ended",
        }
        entry_id = f"purge:{_EXAMPLE_CONNECTION}"
    record = LedgerRecord.model_validate(
        {
            "entry_id": entry_id,
            "at": _EXAMPLE_AT,
            "type": _example_ledger_type(event_type),
            "company_id": _EXAMPLE_COMPANY,
            "customer_id": customer,
            **fields,
        }
    )
    event = to_cloud_event(record, source="urn:example-bank:consent", schema_base_uri=base_uri)
    assert event is not None
    return event


def example_message(event_type: ConsentEventType, base_uri: str = DEFAULT_SCHEMA_BASE_URI) -> dict[str, Any]:
    """The example as a subscriber receives it: the body and the SNS message attributes (name → value)."""
    event = example_event(event_type, base_uri)
    return {
        "payload": json.loads(event.to_json()),
        "headers": {name: value["StringValue"] for name, value in event.message_attributes().items()},
    }


# -- the AsyncAPI document ---------------------------------------------------------------------------------


def _message_name(event_type: ConsentEventType) -> str:
    """`consent.connection.linked` → `ConnectionLinked` (AsyncAPI component keys allow no dots in references)."""
    return "".join(part.title() for part in event_type.value.removeprefix("consent.").replace("_", ".").split("."))


def _attributes_schema(event_type: ConsentEventType) -> dict[str, Any]:
    model, _ = EVENT_CATALOG[event_type]
    properties: dict[str, Any] = {
        "type": {"const": event_type.value, "description": "SNS attribute `type` (String): the event type."},
        "journey": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "SNS attribute `journey` (String.Array): the event's journeys as a JSON array; absent "
            "when it has none. Filter on it with a plain list of journey names.",
        },
    }
    required = ["type"]
    if "source_type" in model.model_fields:
        properties["sourceType"] = {
            "type": "string",
            "enum": [t.value for t in SourceType],
            "description": "SNS attribute `sourceType` (String)"
            + ("." if issubclass(model, ConnectionEventData) else ": absent when the event names no connection."),
        }
        properties["platformKey"] = {
            "type": "string",
            "description": "SNS attribute `platformKey` (String)"
            + ("." if issubclass(model, ConnectionEventData) else ": absent when the event names no connection."),
        }
    if issubclass(model, ConnectionEventData):
        required += ["sourceType", "platformKey"]
    return {"type": "object", "properties": properties, "required": required}


def asyncapi_document(consumers: list[dict[str, Any]], base_uri: str = DEFAULT_SCHEMA_BASE_URI) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the consent events topic. `consumers`: the SNS binding's consumers (the
    template's subscriptions, as `consent_dev.contracts` reads them)."""
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for event_type in ConsentEventType:
        name = _message_name(event_type)
        _, description = EVENT_CATALOG[event_type]
        schema = event_schema(event_type, base_uri)
        schemas[name] = {
            "schemaFormat": "application/schema+json;version=draft-07",
            "schema": {key: value for key, value in schema.items() if key not in ("$schema", "$id")},
        }
        example = example_message(event_type, base_uri)
        messages[name] = {
            "name": event_type.value,
            "title": event_type.value,
            "summary": description,
            "contentType": CLOUDEVENTS_CONTENT_TYPE,
            "headers": _attributes_schema(event_type),
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "correlationId": {
                "description": "The CloudEvent id: the same on every delivery of one event; drop duplicates by it.",
                "location": "$message.payload#/id",
            },
            "examples": [{"name": name, "summary": f"A {event_type.value} event", **example}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Consent events",
            "version": CONTRACT_VERSION,
            "description": (
                "The consent events a deployment publishes to its SNS topic, one CloudEvents 1.0 JSON envelope per "
                "message (structured mode). Each event's `dataschema` names its JSON Schema and major version; "
                "within a major version changes are additive only, so ignore fields you do not know. A redelivery "
                "carries the same `id`: deduplicate by it. SNS message attributes carry the routing facts for "
                "filter policies (`type`, `journey`, `sourceType`, `platformKey`), never personal data."
            ),
        },
        "defaultContentType": CLOUDEVENTS_CONTENT_TYPE,
        "channels": {
            "consentEvents": {
                "address": None,
                "title": "Consent events topic",
                "description": (
                    f"The stack's standard SNS topic ({TOPIC_LOGICAL_ID}; its ARN is the stack output "
                    "`ConsentEventsTopicArn`). Subscribe an SQS queue with raw message delivery to receive each "
                    "CloudEvent as the message body and the routing facts as message attributes."
                ),
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
                "bindings": {
                    "sns": {
                        "name": TOPIC_LOGICAL_ID,
                        "ordering": {"type": "standard"},
                        "bindingVersion": SNS_BINDING_VERSION,
                    }
                },
            }
        },
        "operations": {
            "publishConsentEvent": {
                "action": "send",
                "title": "Publish a consent event",
                "summary": "Each new consent ledger entry of a published type, once it is committed (an outbox).",
                "description": (
                    "At least once: a redelivery carries the same `id`. No order is guaranteed across "
                    "companies; within a company, `time` orders events."
                ),
                "channel": {"$ref": "#/channels/consentEvents"},
                "messages": [{"$ref": f"#/channels/consentEvents/messages/{name}"} for name in messages],
                "bindings": {
                    "sns": {
                        "consumers": consumers,
                        "bindingVersion": SNS_BINDING_VERSION,
                    }
                },
            }
        },
        "components": {"messages": messages, "schemas": schemas},
    }


def schema_file_name(event_type: ConsentEventType) -> str:
    """The file an event type's schema is published as: the tail of its `dataschema`."""
    return f"{event_type.value}.v{SCHEMA_MAJOR}.json"
