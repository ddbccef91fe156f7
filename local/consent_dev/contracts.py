"""The consent events' contract as files, and the checks that hold the code to it.

- `make contracts` writes `contracts/asyncapi.json`, one JSON Schema per event type in `contracts/events/`, and the
  readable page `docs/events.md`, all generated from the code (`consent.contract`); a test fails when they drift.
- `make contracts-release` copies the schemas to `contracts/released/<version>/`: what a later change is held to.
  Within a major version changes are additive only: every event valid under a newer schema must be valid under the
  released one (`breaking_changes`).
- `validate_message` checks one published message (body and SNS attributes) against its schema: the test suite
  runs it on every event it publishes, and `make dev`'s events log on every event it sees.

    python -m consent_dev.contracts write|check|release"""

from __future__ import annotations

import argparse
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from consent.contract import (
    TOPIC_LOGICAL_ID,
    asyncapi_document,
    data_schema,
    event_schema,
    example_message,
    schema_file_name,
)
from consent.events import CONTRACT_VERSION, EVENT_CATALOG, SCHEMA_MAJOR, ConsentEventType
from consent.settings import DEFAULT_SCHEMA_BASE_URI
from consent_dev.template import REPO_ROOT, load_template, resources_of_type

CONTRACTS = REPO_ROOT / "contracts"
ASYNCAPI_FILE = CONTRACTS / "asyncapi.json"
EVENTS_DIR = CONTRACTS / "events"
RELEASED_DIR = CONTRACTS / "released"
EVENTS_PAGE = REPO_ROOT / "docs" / "events.md"


# -- the document ------------------------------------------------------------------------------------------


def template_consumers(template: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The template's subscriptions to the consent topic, as the AsyncAPI SNS binding's consumers."""
    consumers = []
    for resource in resources_of_type("AWS::SNS::Subscription", template or load_template()).values():
        properties = resource["Properties"]
        if properties.get("TopicArn") != {"Ref": TOPIC_LOGICAL_ID}:
            continue  # another topic's (the alarms')
        endpoint = properties["Endpoint"]
        name = endpoint["Fn::GetAtt"][0] if isinstance(endpoint, dict) and "Fn::GetAtt" in endpoint else str(endpoint)
        consumer: dict[str, Any] = {
            "protocol": properties["Protocol"],
            "endpoint": {"name": name},
            "rawMessageDelivery": bool(properties.get("RawMessageDelivery", False)),
        }
        if "FilterPolicy" in properties:
            consumer["filterPolicyScope"] = properties.get("FilterPolicyScope", "MessageAttributes")
            consumer["filterPolicy"] = properties["FilterPolicy"]
        consumers.append(consumer)
    return consumers


def document(base_uri: str = DEFAULT_SCHEMA_BASE_URI) -> dict[str, Any]:
    return asyncapi_document(template_consumers(), base_uri)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def generated_files() -> dict[Path, str]:
    """Every contract file, as the code generates it today (with the default schema base URI)."""
    files = {ASYNCAPI_FILE: _json(document())}
    for event_type in ConsentEventType:
        files[EVENTS_DIR / schema_file_name(event_type)] = _json(event_schema(event_type))
    files[EVENTS_PAGE] = events_page()
    return files


def drifted() -> list[Path]:
    """The contract files that differ from what the code generates (or are missing, or no longer generated)."""
    files = generated_files()
    stale = [path for path, text in files.items() if not path.exists() or path.read_text(encoding="utf-8") != text]
    extra = [path for path in EVENTS_DIR.glob("*.json") if path not in files] if EVENTS_DIR.exists() else []
    return sorted(stale + extra)


def write() -> list[Path]:
    files = generated_files()
    EVENTS_DIR.mkdir(parents=True, exist_ok=True)
    for path in EVENTS_DIR.glob("*.json"):
        if path not in files:
            path.unlink()
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    return sorted(files)


def release() -> Path:
    """Keep today's schemas as the released ones of CONTRACT_VERSION (what later changes are held to)."""
    target = RELEASED_DIR / CONTRACT_VERSION
    if target.exists():
        raise SystemExit(f"{target} exists: bump CONTRACT_VERSION in consent/events.py first")
    target.mkdir(parents=True)
    for event_type in ConsentEventType:
        (target / schema_file_name(event_type)).write_text(_json(event_schema(event_type)), encoding="utf-8")
    return target


# -- the readable page -------------------------------------------------------------------------------------


def _type_of(schema: dict[str, Any]) -> str:
    if "const" in schema:
        return f"`{schema['const']}`"
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    if schema.get("type") == "array":
        return f"array of {_type_of(schema.get('items', {}))}"
    if schema.get("type") == "object":
        inner = ", ".join(f"`{name}`" for name in schema.get("properties", {}))
        return f"object ({inner})" if inner else "object"
    return str(schema.get("type", "any"))


def events_page() -> str:
    """`docs/events.md`: the contract for people, from the same models."""
    lines = [
        "# Consent events",
        "",
        "<!-- Generated by `make contracts` from the code (consent/events.py); a test fails when it drifts. -->",
        "",
        "Each consent ledger entry of a published type becomes one SNS message on the stack's topic: a CloudEvents",
        "1.0 JSON envelope (structured mode) whose `data` is described below. Machine-readable: the AsyncAPI 3.0",
        "document `contracts/asyncapi.json` (served by `make dev` at `/asyncapi.json`) and one JSON Schema per event",
        "type in `contracts/events/` (`make dev`: `/schemas/events/<file>`). Each event's `dataschema` is its",
        f"schema's `$id` (prefix `EVENT_SCHEMA_BASE_URI`, default `{DEFAULT_SCHEMA_BASE_URI}`).",
        "",
        "**Rules for subscribers.** Delivery is at least once: a redelivery carries the same `id`, so drop",
        "duplicates by it. Within a major version the contract only grows (new optional fields, new event types):",
        "ignore what you do not know. A breaking change gets a new major version, and a new `dataschema`. Message",
        "attributes carry the routing facts for filter policies (`type`, `journey` as a String.Array, `sourceType`",
        "and `platformKey` on connection events), never personal data. An example subscriber, typed and",
        "validating: `examples/consumer/`.",
        "",
        f"Contract version **{CONTRACT_VERSION}**.",
        "",
        "| type | when | data |",
        "| --- | --- | --- |",
    ]
    for event_type in ConsentEventType:
        model, description = EVENT_CATALOG[event_type]
        lines.append(
            f"| [`{event_type.value}`](#{event_type.value.replace('.', '')}) | {description} | {model.__name__} |"
        )
    envelope = event_schema(ConsentEventType.COMPANY_CREATED)
    lines += ["", "## The envelope", "", "| attribute | type | |", "| --- | --- | --- |"]
    for name, prop in envelope["properties"].items():
        if name != "data":
            kind = "the event type" if name == "type" else "per event type" if name == "dataschema" else _type_of(prop)
            lines.append(f"| `{name}` | {kind} | {prop.get('description', '')} |")
    for event_type in ConsentEventType:
        _, description = EVENT_CATALOG[event_type]
        schema = data_schema(event_type)
        required = set(schema.get("required", []))
        lines += [
            "",
            f"## {event_type.value}",
            "",
            description,
            "",
            "| field | type | required | |",
            "| --- | --- | --- | --- |",
        ]
        for name, prop in schema["properties"].items():
            mark = "yes" if name in required else ""
            lines.append(f"| `{name}` | {_type_of(prop)} | {mark} | {prop.get('description', '')} |")
        example = example_message(event_type)
        lines += [
            "",
            "Example (message attributes, then body):",
            "",
            "```json",
            json.dumps(example["headers"], ensure_ascii=False),
            json.dumps(example["payload"], indent=2, ensure_ascii=False),
            "```",
        ]
    return "\n".join(lines) + "\n"


# -- validating what is published --------------------------------------------------------------------------


@cache
def _validators(base_uri: str) -> dict[str, Draft202012Validator]:
    return {
        event_type.value: Draft202012Validator(
            event_schema(event_type, base_uri), format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        for event_type in ConsentEventType
    }


def validate_message(body: str, attributes: dict[str, str]) -> list[str]:
    """What is wrong with one published message (its body and its SNS attributes, name → value) by the
    contract; empty when nothing is. The schema base URI is the one the event's `dataschema` names (each
    deployment sets its own); the rest of `dataschema` must be the event type's."""
    try:
        event = json.loads(body)
    except ValueError as error:
        return [f"the body is not JSON: {error}"]
    event_type = event.get("type") if isinstance(event, dict) else None
    tail = f"{event_type}.v{SCHEMA_MAJOR}.json"
    named = str(event.get("dataschema", "")) if isinstance(event, dict) else ""
    if not named.endswith(tail) or named == tail:
        return [f"dataschema {named!r} does not name {tail}"]
    validator = _validators(named.removesuffix(tail)).get(str(event_type))
    if validator is None:
        return [f"no event type {event_type!r} in the contract"]
    problems = [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(body)'}: {error.message}"
        for error in validator.iter_errors(event)
    ]
    if attributes.get("type") != event_type:
        problems.append(f"the `type` attribute is {attributes.get('type')!r}, the body's type {event_type!r}")
    data = event.get("data") or {}
    if "journey" in attributes and json.loads(attributes["journey"]) != data.get("journeys"):
        problems.append("the `journey` attribute is not the body's `journeys`")
    for name in ("sourceType", "platformKey"):
        if name in data and attributes.get(name) != data[name]:
            problems.append(f"the `{name}` attribute is not the body's")
    return problems


# -- holding a change to the released contract -------------------------------------------------------------

_IGNORED = {"description", "title", "examples", "default", "$schema", "$id", "contentMediaType"}
_UPPER = ("maxLength", "maxItems", "maximum", "exclusiveMaximum")
_LOWER = ("minLength", "minItems", "minimum", "exclusiveMinimum")


def breaking_changes(released: dict[str, Any], current: dict[str, Any], path: str = "") -> list[str]:
    """Where `current` accepts an event that `released` refused: what would break a subscriber that validates
    with the released schema (or relies on what it promised). Empty when the change is additive only."""
    where = path or "(event)"
    problems: list[str] = []
    if "const" in released and current.get("const") != released["const"]:
        problems.append(f"{where}: was always {released['const']!r}, now {current.get('const', 'anything')!r}")
    if "enum" in released:
        allowed = set(released["enum"])
        values = {current["const"]} if "const" in current else set(current.get("enum", [])) or None
        if values is None or not values <= allowed:
            added = sorted(str(v) for v in (values or set()) - allowed) or ["any value"]
            problems.append(
                f"{where}: new values {', '.join(added)} (released: {', '.join(map(str, released['enum']))})"
            )
    if "type" in released:
        released_types = set(released["type"] if isinstance(released["type"], list) else [released["type"]])
        current_types = current.get("type")
        if current_types is None and "const" not in current and "enum" not in current:
            problems.append(f"{where}: was {released['type']}, now any type")
        elif current_types is not None:
            kinds = set(current_types if isinstance(current_types, list) else [current_types])
            if not kinds <= released_types:
                problems.append(f"{where}: was {released['type']}, now {current_types}")
    for key in ("pattern", "format"):
        if key in released and current.get(key) != released[key]:
            problems.append(f"{where}: {key} was {released[key]!r}, now {current.get(key)!r}")
    for key in _UPPER:
        if key in released and (key not in current or current[key] > released[key]):
            problems.append(f"{where}: {key} was {released[key]}, now {current.get(key, 'none')}")
    for key in _LOWER:
        if key in released and (key not in current or current[key] < released[key]):
            problems.append(f"{where}: {key} was {released[key]}, now {current.get(key, 'none')}")
    for field in sorted(set(released.get("required", [])) - set(current.get("required", []))):
        problems.append(f"{path}/{field}: was required, now optional or gone")
    current_properties = current.get("properties", {})
    for name, schema in released.get("properties", {}).items():
        if name in current_properties:
            problems += breaking_changes(schema, current_properties[name], f"{path}/{name}")
        elif set(schema) - _IGNORED:
            problems.append(f"{path}/{name}: removed (it was constrained; any value would now pass)")
    if "items" in released:
        problems += breaking_changes(released["items"], current.get("items", {}), f"{path}[]")
    for key in set(released) & {"anyOf", "oneOf", "allOf", "not", "if", "then", "else"}:
        if current.get(key) != released[key]:
            problems.append(f"{where}: `{key}` changed (compared as a whole)")
    return problems


def released_versions() -> list[str]:
    if not RELEASED_DIR.exists():
        return []
    versions = [p.name for p in RELEASED_DIR.iterdir() if p.is_dir()]
    return sorted(versions, key=lambda v: tuple(int(part) for part in v.split(".")))


def breaking_changes_since_release() -> list[str]:
    """What today's schemas break of the last release of the same major version (none if there is none)."""
    major = CONTRACT_VERSION.split(".", 1)[0]
    same_major = [v for v in released_versions() if v.split(".", 1)[0] == major]
    if not same_major:
        return []
    released_dir = RELEASED_DIR / same_major[-1]
    problems = []
    for path in sorted(released_dir.glob("*.json")):
        event_type = next((t for t in ConsentEventType if schema_file_name(t) == path.name), None)
        if event_type is None:
            problems.append(f"{path.stem}: released, no longer published")
            continue
        released = json.loads(path.read_text(encoding="utf-8"))
        problems += [f"{event_type.value} {p}" for p in breaking_changes(released, event_schema(event_type))]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("action", choices=["write", "check", "release"])
    action = parser.parse_args(argv).action
    if action == "write":
        for path in write():
            print(f"wrote {path.relative_to(REPO_ROOT)}")
        return 0
    if action == "release":
        print(f"released {release().relative_to(REPO_ROOT)}")
        return 0
    stale = drifted()
    broken = breaking_changes_since_release()
    for path in stale:
        print(f"drifted: {path.relative_to(REPO_ROOT)} (run `make contracts`)", file=sys.stderr)
    for problem in broken:
        print(f"breaking: {problem}", file=sys.stderr)
    return 1 if stale or broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
