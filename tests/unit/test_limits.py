"""OWASP API4 (unrestricted resource consumption): every string and list a caller can send is bounded.

Walks the OpenAPI document generated from the code: every parameter and request body schema of every operation,
through `$ref`s and combinators, must give each string a maxLength (or an enum, a const, or an anchored pattern
of bounded length) and each array a maxItems. Also the body limits and the Codat budgets' safe defaults."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from consent.api.resolver import MAX_BODY_BYTES
from consent.domain.requests import MAX_PAGE_LIMIT
from consent.services import Services
from consent.settings import Settings
from consent.webhooks.receiver import MAX_WEBHOOK_BYTES
from consent_dev.local_api import LocalApi
from consent_dev.openapi import build_openapi

pytestmark = pytest.mark.unit

DOCUMENT = build_openapi()
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        pointer = schema["$ref"].removeprefix("#/").split("/")
        target: Any = DOCUMENT
        for part in pointer:
            target = target[part.replace("~1", "/").replace("~0", "~")]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def bounded_pattern(pattern: str) -> bool:
    """An anchored pattern whose every repetition has an upper bound: it limits the string's length by itself."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        return False
    stripped = re.sub(r"\\.", "", pattern)  # escaped characters
    stripped = re.sub(r"\[[^\]]*\]", "", stripped)  # character classes
    return not re.search(r"[*+]|\{\d*,\}", stripped)


def unbounded(schema: dict[str, Any], where: str, seen: frozenset[str] = frozenset()) -> Iterator[str]:
    """Paths of the string and array schemas under `schema` that have no upper bound."""
    ref = schema.get("$ref")
    if ref in seen:
        return
    seen = seen | {ref} if ref else seen
    schema = resolve(schema)
    for combinator in ("anyOf", "oneOf", "allOf"):
        for index, option in enumerate(schema.get(combinator, [])):
            yield from unbounded(option, f"{where}.{combinator}[{index}]", seen)
    types = schema.get("type")
    types = set(types) if isinstance(types, list) else {types}
    if "string" in types and not (
        "maxLength" in schema or "enum" in schema or "const" in schema or bounded_pattern(schema.get("pattern", ""))
    ):
        yield where
    if "array" in types:
        if "maxItems" not in schema:
            yield where
        if "items" in schema:
            yield from unbounded(schema["items"], f"{where}[]", seen)
    for name, prop in schema.get("properties", {}).items():
        yield from unbounded(prop, f"{where}.{name}", seen)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        yield from unbounded(extra, f"{where}.*", seen)


def operations() -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def request_schemas(operation: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for reference in operation.get("parameters", []):
        parameter = resolve(reference)
        yield f"{parameter['in']}:{parameter['name']}", parameter.get("schema", {})
    body = resolve(operation.get("requestBody", {}))
    for media_type, content in body.get("content", {}).items():
        yield f"body({media_type})", content.get("schema", {})


OPERATIONS = dict(operations())


def test_the_document_has_every_operation_and_their_inputs() -> None:
    # A walk over nothing would pass: the document must hold the routes and their parameters.
    assert len(OPERATIONS) >= 12
    inputs = {f"{op} {name}" for op, operation in OPERATIONS.items() for name, _ in request_schemas(operation)}
    assert "POST /companies body(application/json)" in inputs
    assert "GET /companies query:cursor" in inputs
    assert "DELETE /companies/{companyId}/connections/{connectionId} path:connectionId" in inputs
    assert "POST /webhooks/codat header:webhook-signature" in inputs


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_every_string_and_list_a_caller_sends_is_bounded(operation: str) -> None:
    found = [
        f"{name}{where}" for name, schema in request_schemas(OPERATIONS[operation]) for where in unbounded(schema, "")
    ]
    assert found == [], f"{operation}: unbounded inputs"


def test_the_walk_finds_an_unbounded_string_or_list_wherever_it_hides() -> None:
    DOCUMENT["components"]["schemas"]["_Probe"] = {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string", "maxLength": 5}}},
    }
    try:
        probe = {
            "anyOf": [
                {"type": "string", "pattern": "^[a-z]+$"},
                {"$ref": "#/components/schemas/_Probe"},
                {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
            ]
        }
        assert sorted(unbounded(probe, "")) == [".anyOf[0]", ".anyOf[1].tags", ".anyOf[2].*"]
        assert list(unbounded({"type": "string", "pattern": r"^[a-z]{4}$"}, "")) == []
        assert list(unbounded({"type": "string", "pattern": r"^\d{1,}$"}, "")) == [""]
    finally:
        del DOCUMENT["components"]["schemas"]["_Probe"]


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_every_id_in_a_path_is_bounded_and_patterned(operation: str) -> None:
    for parameter in OPERATIONS[operation].get("parameters", []):
        if parameter["in"] == "path":
            schema = resolve(parameter["schema"])
            assert schema["maxLength"] <= 64, (operation, parameter["name"])
            assert bounded_pattern(schema["pattern"]), (operation, parameter["name"])


def test_pages_bodies_and_codat_calls_have_safe_ceilings() -> None:
    limits = [
        resolve(p["schema"])
        for _, operation in OPERATIONS.items()
        for p in operation.get("parameters", [])
        if p["name"] == "limit"
    ]
    assert limits
    assert all(schema["maximum"] == MAX_PAGE_LIMIT == 100 for schema in limits)
    assert MAX_BODY_BYTES == 64 * 1024
    assert MAX_WEBHOOK_BYTES <= 256 * 1024
    defaults = Settings(table_name="limits-test")
    # Each Codat attempt is bounded in time, and the retries of one call fit inside an API function's 29 s.
    assert defaults.codat_connect_timeout <= 5
    assert defaults.codat_read_timeout <= 10
    assert defaults.codat_retry_budget <= 25
    assert defaults.codat_max_attempts <= 8
    assert defaults.reconcile_codat_budget <= 1000
    for name in ("codat_connect_timeout", "codat_read_timeout", "codat_retry_budget", "codat_max_attempts"):
        assert any(getattr(m, "le", None) is not None for m in Settings.model_fields[name].metadata), name


@pytest.mark.parametrize("company_id", ["a.b", "x" * 65, "-leading-dash", "..", "id%2Fconnections"])
def test_an_id_outside_the_pattern_is_422_before_any_lookup(company_id: str) -> None:
    # No table and no Codat behind these services: a route that looked anything up would fail with a 5xx.
    api = LocalApi(Services(Settings(table_name="no-such-table")))
    response = api.get(f"/companies/{company_id}", customer="customer-alice")
    assert response.status == 422, response.text
    assert [e["field"] for e in response.body["errors"]] == ["companyId"]
