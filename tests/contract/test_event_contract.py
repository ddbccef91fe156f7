"""Our own published contract: the consent events' AsyncAPI document and JSON Schemas, generated from the code.

The files in `contracts/` and `docs/events.md` must be what the code generates (drift), today's schemas must
accept nothing the last released ones refused (additive only), the document must pass the AsyncAPI Initiative's
own parser, and every event type the code can publish must be in it with a schema and an example that holds."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from consent.contract import event_schema, example_message, schema_file_name
from consent.events import LEDGER_EVENT_TYPES, ConsentEventType
from consent_dev.contracts import (
    ASYNCAPI_FILE,
    RELEASED_DIR,
    breaking_changes,
    breaking_changes_since_release,
    document,
    drifted,
    released_versions,
    validate_message,
)
from consent_dev.template import REPO_ROOT

pytestmark = pytest.mark.contract

PARSER = REPO_ROOT / "tools" / "asyncapi"


def test_the_contract_files_are_what_the_code_generates() -> None:
    stale = [str(path.relative_to(REPO_ROOT)) for path in drifted()]
    assert not stale, f"run `make contracts`: {stale}"


def test_todays_schemas_break_nothing_of_the_last_release() -> None:
    assert released_versions(), "no released contract in contracts/released/"
    assert breaking_changes_since_release() == []


def test_the_asyncapi_document_passes_the_asyncapi_parser(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not (PARSER / "node_modules" / "@asyncapi" / "parser").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("the AsyncAPI parser is not installed (make node-deps)")
        pytest.skip("the AsyncAPI parser is not installed: run `make node-deps` (needs node and npm)")
    broken = copy.deepcopy(document())
    del broken["operations"]["publishConsentEvent"]["action"]
    (tmp_path / "broken.json").write_text(json.dumps(broken), encoding="utf-8")

    result = subprocess.run(
        [node, str(PARSER / "validate.mjs"), str(ASYNCAPI_FILE), str(tmp_path / "broken.json")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    reports = {Path(r["file"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    ours = reports[ASYNCAPI_FILE.name]
    assert ours["parsed"], ours
    assert ours["version"] == "3.0.0"
    assert ours["errors"] == [], ours["errors"]
    assert ours["warnings"] == [], ours["warnings"]
    # The parser is no rubber stamp: the same document without an operation's action is refused
    assert reports["broken.json"]["errors"], reports["broken.json"]


def test_every_event_type_the_code_can_publish_has_its_message_schema_and_example() -> None:
    asyncapi = json.loads(ASYNCAPI_FILE.read_text(encoding="utf-8"))
    messages = {message["name"]: message for message in asyncapi["components"]["messages"].values()}
    assert set(messages) == {t.value for t in LEDGER_EVENT_TYPES.values()} == {t.value for t in ConsentEventType}
    for event_type in ConsentEventType:
        message = messages[event_type.value]
        [example] = message["examples"]
        schema_name = message["payload"]["$ref"].rsplit("/", 1)[-1]
        in_document = asyncapi["components"]["schemas"][schema_name]["schema"]
        Draft202012Validator(in_document).validate(example["payload"])
        Draft202012Validator(message["headers"]).validate(example["headers"])
        assert validate_message(json.dumps(example["payload"]), example["headers"]) == []


@pytest.mark.parametrize("event_type", list(ConsentEventType), ids=lambda t: t.value)
def test_each_schema_file_is_the_events_dataschema(event_type: ConsentEventType) -> None:
    schema = json.loads((REPO_ROOT / "contracts" / "events" / schema_file_name(event_type)).read_text())
    example = example_message(event_type)["payload"]
    assert schema["$id"] == example["dataschema"]
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(
    ("problem", "mutate"),
    [
        (
            "a field's type changes",
            lambda s: s["properties"]["data"]["properties"]["platformKey"].update(type="integer"),
        ),
        ("a new status value", lambda s: s["properties"]["data"]["properties"]["status"]["enum"].append("Expired")),
        ("a required field becomes optional", lambda s: s["properties"]["data"]["required"].remove("connectionId")),
        ("a field is removed", lambda s: s["properties"]["data"]["properties"].pop("sourceType")),
        ("the type constant changes", lambda s: s["properties"]["type"].update(const="consent.connection.up")),
        ("a bound is loosened", lambda s: s["properties"]["data"]["properties"]["detail"].update(maxLength=5000)),
        ("a pattern changes", lambda s: s["properties"]["data"]["properties"]["actor"].update(pattern="^.*$")),
    ],
)
def test_the_compatibility_check_refuses_each_kind_of_breaking_change(problem: str, mutate: Any) -> None:
    released = event_schema(ConsentEventType.CONNECTION_LINKED)
    current = copy.deepcopy(released)
    mutate(current)
    assert breaking_changes(released, current), problem


def test_the_compatibility_check_lets_additive_changes_through() -> None:
    released = event_schema(ConsentEventType.CONNECTION_LINKED)
    current = copy.deepcopy(released)
    data = current["properties"]["data"]
    data["properties"]["renewBy"] = {"type": "string", "format": "date-time", "description": "new, optional"}
    data["properties"]["platformKey"]["description"] = "reworded"
    data["properties"]["status"]["enum"].remove("PendingAuth")  # narrower: every new event is still valid
    data["properties"]["detail"]["maxLength"] = 500
    data["required"].append("status")
    assert breaking_changes(released, current) == []


def test_a_released_event_type_that_is_no_longer_published_is_breaking(tmp_path: Path, monkeypatch: Any) -> None:
    [version] = released_versions()[-1:]
    copied = tmp_path / "released" / version
    shutil.copytree(RELEASED_DIR / version, copied)
    (copied / "consent.payment.made.v1.json").write_text(json.dumps({"type": "object"}), encoding="utf-8")
    monkeypatch.setattr("consent_dev.contracts.RELEASED_DIR", tmp_path / "released")
    assert breaking_changes_since_release() == ["consent.payment.made.v1: released, no longer published"]


@pytest.mark.parametrize(
    ("problem", "mutate"),
    [
        ("no connection id", lambda e, a: e["data"].pop("connectionId")),
        ("an unknown status", lambda e, a: e["data"].update(status="Expired")),
        ("a dataschema of another type", lambda e, a: e.update(dataschema=e["dataschema"].replace("linked", "failed"))),
        ("a time not in UTC", lambda e, a: e.update(time="2026-11-02T09:30:15+01:00")),
        ("attributes that disagree", lambda e, a: a.update(platformKey="gbol")),
    ],
)
def test_a_message_out_of_contract_is_caught(problem: str, mutate: Any) -> None:
    example = example_message(ConsentEventType.CONNECTION_LINKED)
    event, attributes = example["payload"], example["headers"]
    mutate(event, attributes)
    assert validate_message(json.dumps(event), attributes), problem
