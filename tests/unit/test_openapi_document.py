"""The OpenAPI document as a bank generates a client from it: human operation ids, a description per operation,
no pydantic titles on properties, and each problem answer with the closed list of its `code`s."""

from __future__ import annotations

import re

import pytest

from consent.api.openapi import ERROR_CODES, OPERATION_CODES
from consent_dev.openapi import build_openapi
from consent_dev.template import REPO_ROOT

pytestmark = pytest.mark.unit

DOCUMENT = build_openapi()
OPERATIONS = [op for ops in DOCUMENT["paths"].values() for op in ops.values()]


def raised_codes() -> set[tuple[int, str]]:
    """Every (status, code) a problem is raised with in the package and the functions."""
    found: set[tuple[int, str]] = set()
    for folder in ("shared/consent", "functions"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            found |= {(int(s), c) for s, c in re.findall(r'Problem\(\s*(\d{3}),\s*"([a-z_]+)"', text)}
    return found


def test_operation_ids_are_what_a_generator_can_name_methods_after() -> None:
    ids = [op["operationId"] for op in OPERATIONS]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[a-z][A-Za-z]+", op_id) for op_id in ids), ids


def test_every_operation_says_what_it_does() -> None:
    assert all(len(op.get("description", "")) > 40 for op in OPERATIONS), [
        op["operationId"] for op in OPERATIONS if len(op.get("description", "")) <= 40
    ]


def test_no_property_carries_a_python_title() -> None:
    for name, schema in DOCUMENT["components"]["schemas"].items():
        assert not [p for p, s in schema.get("properties", {}).items() if "title" in s], name


def test_every_problem_code_the_code_raises_is_in_the_closed_list_of_its_status() -> None:
    listed = {(status, code) for status, codes in ERROR_CODES.items() for code in codes}
    assert raised_codes() - listed == set()
    for per_status in OPERATION_CODES.values():
        for status, codes in per_status.items():
            assert set(codes) <= set(ERROR_CODES[status]) | {"invalid_signature"}


def test_each_problem_answer_lists_its_codes_and_shows_one() -> None:
    for op in OPERATIONS:
        for status, response in op["responses"].items():
            content = response.get("content", {}).get("application/problem+json")
            if content is None:
                continue
            [_, narrowed] = content["schema"]["allOf"]
            assert content["example"]["status"] == int(status)
            assert content["example"]["code"] in narrowed["properties"]["code"]["enum"]


def test_every_body_and_answer_has_an_example_its_schema_accepts() -> None:
    from jsonschema import Draft202012Validator  # noqa: PLC0415

    schemas = DOCUMENT["components"]["schemas"]
    for op in OPERATIONS:
        bodies = [op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")]
        bodies += [r.get("content", {}).get("application/json", {}).get("schema") for r in op["responses"].values()]
        for schema in filter(None, bodies):
            name = schema.get("$ref", "").rsplit("/", 1)[-1]
            if not name:
                continue  # the webhook's inline body (Codat's events; examples are Codat's own)
            [example] = schemas[name]["examples"]
            resolver_document = {**DOCUMENT, **schemas[name]}
            Draft202012Validator(resolver_document).validate(example)
