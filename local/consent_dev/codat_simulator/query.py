"""A subset of Codat's query language: ``a=b && c!=d || e~f`` (``&&`` binds tighter; no grouping)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Operator = Literal["=", "!=", "~"]

_CLAUSE = re.compile(r"\s*(?P<field>[A-Za-z0-9_.\-]+)\s*(?P<op>!=|=|~)\s*(?P<value>.*?)\s*")


class QueryError(ValueError):
    """The query string cannot be parsed or names an unknown property."""


@dataclass(frozen=True)
class Clause:
    field: str
    op: Operator
    value: str


Query = list[list[Clause]]  # OR of ANDs


def parse(text: str) -> Query:
    if not text.strip():
        raise QueryError("Error parsing query - Malformed query.")
    out: Query = []
    for alternative in text.split("||"):
        clauses: list[Clause] = []
        for part in alternative.split("&&"):
            found = _CLAUSE.fullmatch(part)
            if found is None:
                raise QueryError("Error parsing query - Malformed query.")
            value = found["value"]
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            clauses.append(Clause(found["field"], found["op"], value))  # type: ignore[arg-type]
        out.append(clauses)
    return out


def _compare(actual: str | None, clause: Clause, *, case_sensitive: bool) -> bool:
    expected = clause.value
    if actual is not None and not case_sensitive:
        actual, expected = actual.lower(), expected.lower()
    if clause.op == "=":
        return actual == expected
    if clause.op == "!=":
        return actual != expected
    return actual is not None and expected in actual


def matches_tags(query: Query, tags: Mapping[str, str]) -> bool:
    """The ``tags`` filter of ``GET /companies``: keys and values compared exactly."""
    return any(all(_compare(tags.get(c.field), c, case_sensitive=True) for c in clauses) for clauses in query)


def _scalar(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_fields(query: Query, known: Iterable[str], resource: str) -> None:
    """Codat rejects queries on properties the resource does not have."""
    lowered = {name.lower() for name in known}
    for clauses in query:
        for clause in clauses:
            if clause.field.lower() not in lowered:
                raise QueryError(f"Error parsing query - Could not resolve property {clause.field} on {resource}")


def matches_record(query: Query, record: Mapping[str, object]) -> bool:
    """The ``query`` filter on a resource's top-level fields; property names and strings compare case-insensitively."""
    fields = {name.lower(): _scalar(value) for name, value in record.items() if not isinstance(value, dict | list)}
    return any(
        all(_compare(fields.get(c.field.lower()), c, case_sensitive=False) for c in clauses) for clauses in query
    )
