"""Validate requests and responses against Codat's published OpenAPI spec (Codat-Platform.json).

The spec is Codat's, read from ``$CODAT_SPEC_DIR`` or ``<repo>/../shared/codat/``; it is never copied into the repo.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

if TYPE_CHECKING:
    import httpx

SPEC_DIR_ENV = "CODAT_SPEC_DIR"
SPEC_FILENAME = "Codat-Platform.json"

# The whole spec is registered under this URI, so "#/..." refs anywhere in it resolve against the whole document.
ROOT_URI = "https://codat.invalid/Codat-Platform.json"

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# Keys whose values are instances (not schemas) and so must not be rewritten, unless they name a schema in a map.
_INSTANCE_KEYS = frozenset({"example", "examples", "default", "const", "enum"})
_SCHEMA_MAP_KEYS = frozenset({"properties", "patternProperties", "definitions", "$defs", "schemas", "dependentSchemas"})

# Deviations that Codat documents in prose, where the schema is stricter than the API: "If forbidden characters (see
# `name` pattern) are present in the request, a company will be created with the forbidden characters removed."
_DOCUMENTED_LENIENCIES: dict[tuple[str, str], set[tuple[str, tuple[str | int, ...]]]] = {
    ("post", "/companies"): {("pattern", ("name",))},
    ("put", "/companies/{companyId}"): {("pattern", ("name",))},
    ("patch", "/companies/{companyId}"): {("pattern", ("name",))},
}

_MAX_MESSAGE = 300


def repo_root() -> Path:
    """The project root: the parent of ``local/``."""
    return Path(__file__).resolve().parents[2]


def spec_path() -> Path:
    """Where Codat-Platform.json is expected (it may be absent)."""
    configured = os.environ.get(SPEC_DIR_ENV)
    folder = Path(configured) if configured else repo_root().parent / "shared" / "codat"
    return folder / SPEC_FILENAME


@functools.cache
def _read_json(path: str) -> dict[str, Any] | None:
    file = Path(path)
    if not file.is_file():
        return None
    with file.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


@functools.cache
def _build_spec(path: str) -> CodatSpec | None:
    document = _read_json(path)
    return None if document is None else CodatSpec(document)


def load_codat_spec() -> CodatSpec | None:
    """A ready CodatSpec, or None when the file is absent. Cached: building it pre-processes the whole document."""
    return _build_spec(str(spec_path()))


def require_spec() -> CodatSpec:
    """For tests: the CodatSpec, else skip the test - or fail it when ``CI=true``, where the spec must be present."""
    import pytest  # noqa: PLC0415 - only tests call this; keep pytest out of non-test imports

    spec = load_codat_spec()
    if spec is None:
        message = f"Codat's spec not found at {spec_path()}; set {SPEC_DIR_ENV} to the folder holding {SPEC_FILENAME}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return spec


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return len(value) == 36 and str(uuid.UUID(value)) == value.lower()


def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme) and (bool(parts.netloc) or parts.scheme in ("urn", "mailto"))


def _format_checker() -> FormatChecker:
    # Only deterministic, dependency-free checks: jsonschema's defaults vary with which optional packages are installed.
    checker = FormatChecker(formats=())
    checker.checks("uuid", raises=ValueError)(_is_uuid)
    checker.checks("uri")(_is_uri)
    return checker


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _decode_token(raw: str) -> str:
    return unquote(raw).replace("~1", "/").replace("~0", "~")


def pointer(*tokens: str) -> str:
    """A JSON-pointer fragment ("#/a/b") for the given unescaped tokens."""
    return "#" + "".join("/" + _escape(token) for token in tokens)


def _openapi_to_json_schema(document: dict[str, Any]) -> dict[str, Any]:
    """Rewrite OpenAPI's ``nullable`` into JSON Schema, keeping every "#/..." ref pointing at the same schema.

    ``{..., nullable: true}`` becomes ``{anyOf: [{...}, {type: null}]}``. That moves the original keywords one level
    down, so refs that pass *through* a rewritten node (e.g. ``.../description/...``) get ``/anyOf/0`` inserted.
    """
    wrapped: set[tuple[str, ...]] = set()

    def convert(node: Any, where: tuple[str, ...], in_schema_map: bool) -> Any:
        if isinstance(node, list):
            return [convert(item, (*where, str(i)), False) for i, item in enumerate(node)]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _INSTANCE_KEYS and not in_schema_map:
                out[key] = value
            else:
                out[key] = convert(value, (*where, key), key in _SCHEMA_MAP_KEYS and not in_schema_map)
        if in_schema_map or "nullable" not in out or not isinstance(out["nullable"], bool):
            return out
        nullable = out.pop("nullable")
        if not nullable:
            return out
        wrapped.add(where)
        return {"anyOf": [out, {"type": "null"}]}

    converted: dict[str, Any] = convert(document, (), False)

    def fix_ref(ref: str) -> str:
        if not ref.startswith("#/"):
            return ref
        raw_tokens = ref[2:].split("/")
        out: list[str] = []
        prefix: tuple[str, ...] = ()
        for i, raw in enumerate(raw_tokens):
            prefix = (*prefix, _decode_token(raw))
            out.append(raw)
            if prefix in wrapped and i < len(raw_tokens) - 1:
                out.extend(("anyOf", "0"))
        return "#/" + "/".join(out)

    def rewrite_refs(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                rewrite_refs(item)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    node[key] = fix_ref(value)
                else:
                    rewrite_refs(value)

    rewrite_refs(converted)
    return converted


def _message(error: ValidationError) -> str:
    text = str(error.message)
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 3] + "..."
    return text


def _json_path(path: Iterator[str | int] | Any) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


class CodatSpec:
    """Codat's OpenAPI document with JSON-Schema validators over any of its schemas, by JSON pointer."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.raw: Mapping[str, Any] = document
        self.document = _openapi_to_json_schema(copy.deepcopy(dict(document)))
        resource: Resource[Any] = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(ROOT_URI, resource)
        self._format_checker = _format_checker()
        self._validators: dict[str, Draft202012Validator] = {}
        self._operations = self._compile_paths()

    # --- operations -------------------------------------------------------------------------------------------

    def _compile_paths(self) -> list[tuple[str, re.Pattern[str]]]:
        compiled: list[tuple[int, str, re.Pattern[str]]] = []
        for template in self.raw.get("paths", {}):
            segments = template.strip("/").split("/")
            regex = "".join(
                "/" + (f"(?P<{seg[1:-1]}>[^/]+)" if seg.startswith("{") and seg.endswith("}") else re.escape(seg))
                for seg in segments
            )
            literal = sum(not seg.startswith("{") for seg in segments)
            compiled.append((literal, template, re.compile(regex + "/?")))
        # Prefer templates with more literal segments, so /webhooks/integrationKeys/zapier beats /webhooks/{webhookId}.
        compiled.sort(key=lambda item: -item[0])
        return [(template, regex) for _, template, regex in compiled]

    def _match(self, method: str, path: str) -> tuple[str, dict[str, Any], dict[str, str]] | None:
        path = urlsplit(path).path or "/"
        for template, regex in self._operations:
            found = regex.fullmatch(path)
            if found is None:
                continue
            item = self.raw["paths"][template]
            operation = item.get(method.lower())
            if operation is None:
                continue
            return template, operation, {k: unquote(v) for k, v in found.groupdict().items()}
        return None

    def match_operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """(path template, operation object) for a concrete path such as ``/companies/<id>``, or None."""
        found = self._match(method, path)
        return None if found is None else (found[0], found[1])

    def resolve(self, node: Mapping[str, Any]) -> tuple[Mapping[str, Any], str | None]:
        """Follow a non-schema ``$ref`` (parameter, response, example) in the raw spec: (target, its pointer)."""
        seen: str | None = None
        while "$ref" in node:
            seen = node["$ref"]
            node = self.lookup(seen)
        return node, seen

    def lookup(self, ref: str) -> Any:
        """The raw spec node at a "#/..." pointer."""
        node: Any = self.raw
        for raw in ref.removeprefix("#/").split("/"):
            node = node[int(raw)] if isinstance(node, list) else node[_decode_token(raw)]
        return node

    def parameters(self, template: str, method: str) -> list[tuple[Mapping[str, Any], str]]:
        """Path-item and operation parameters (operation wins on the same name/in), each with its pointer."""
        item = self.raw["paths"][template]
        merged: dict[tuple[str, str], tuple[Mapping[str, Any], str]] = {}
        for level, base in ((item, ("paths", template)), (item[method], ("paths", template, method))):
            for i, entry in enumerate(level.get("parameters", [])):
                param, ref = self.resolve(entry)
                where = ref or pointer(*base, "parameters", str(i))
                merged[(param["name"], param["in"])] = (param, where)
        return list(merged.values())

    # --- validation -------------------------------------------------------------------------------------------

    def validator(self, ref: str) -> Draft202012Validator:
        """A validator for the schema at a "#/..." pointer in the spec."""
        found = self._validators.get(ref)
        if found is None:
            found = Draft202012Validator(
                {"$ref": ROOT_URI + ref}, registry=self._registry, format_checker=self._format_checker
            )
            self._validators[ref] = found
        return found

    def errors(self, instance: Any, ref: str) -> list[ValidationError]:
        return sorted(self.validator(ref).iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])

    def validate(self, instance: Any, ref: str) -> list[str]:
        """Violations of the schema at a "#/..." pointer, as readable strings (empty when valid)."""
        return [f"{_json_path(e.absolute_path)}: {_message(e)}" for e in self.errors(instance, ref)]

    def validate_schema(self, name: str, instance: Any) -> list[str]:
        """Violations of ``#/components/schemas/<name>``."""
        return self.validate(instance, pointer("components", "schemas", name))

    def validate_request(
        self, method: str, path: str, query: Mapping[str, str] | None = None, json_body: Any = None
    ) -> list[str]:
        """Violations of the operation's path/query parameters and JSON request body (None means no body)."""
        found = self._match(method, path)
        if found is None:
            return [f"{method.upper()} {path}: no such operation in Codat's spec"]
        template, operation, path_values = found
        method = method.lower()
        label = f"{method.upper()} {template}"
        query = dict(query or {})
        out: list[str] = []
        declared_query: set[str] = set()
        for param, where in self.parameters(template, method):
            name, location = param["name"], param["in"]
            if location == "path":
                values: Mapping[str, str] = path_values
            elif location == "query":
                declared_query.add(name)
                values = query
            else:
                continue
            if name not in values:
                if param.get("required") or location == "path":
                    out.append(f"{label}: missing required {location} parameter {name!r}")
                continue
            if "schema" in param:
                value = _coerce(values[name], param["schema"])
                out.extend(
                    f"{label}: {location} parameter {name!r}: {_message(e)}"
                    for e in self.errors(value, where + "/schema")
                )
        out.extend(
            f"{label}: query parameter {name!r} is not defined by the spec"
            for name in query
            if name not in declared_query
        )
        out.extend(self._body_violations(label, method, template, operation, json_body))
        return out

    def _body_violations(
        self, label: str, method: str, template: str, operation: Mapping[str, Any], json_body: Any
    ) -> list[str]:
        if "requestBody" not in operation:
            return [] if json_body is None else [f"{label}: the operation takes no request body"]
        body, ref = self.resolve(operation["requestBody"])
        if json_body is None:
            return [f"{label}: a request body is required"] if body.get("required") else []
        if "application/json" not in body.get("content", {}):
            return [f"{label}: the operation takes no JSON request body"]
        where = (ref or pointer("paths", template, method, "requestBody")) + pointer("content", "application/json")[1:]
        lenient = _DOCUMENTED_LENIENCIES.get((method, template), set())
        return [
            f"{label}: request body {_json_path(e.absolute_path)}: {_message(e)}"
            for e in self.errors(json_body, where + "/schema")
            if (e.validator, tuple(e.absolute_path)) not in lenient
        ]

    def response_definition(self, method: str, path: str, status: int) -> tuple[Mapping[str, Any], str] | None:
        """The response object documented for that status (following $ref), with its pointer; None if undocumented."""
        found = self._match(method, path)
        if found is None:
            return None
        template, operation, _ = found
        responses = operation.get("responses", {})
        for key in (str(status), f"{status // 100}XX", "default"):
            if key in responses:
                definition, ref = self.resolve(responses[key])
                return definition, ref or pointer("paths", template, method.lower(), "responses", key)
        return None

    def validate_response(
        self, method: str, path: str, status: int, json_body: Any, *, strict_status: bool = False
    ) -> list[str]:
        """Violations of the documented response for that status (json_body None means an empty body).

        Errors with a status the operation does not list (Codat documents few per operation) are checked against
        Codat's common ``ErrorMessage`` schema; ``strict_status=True`` also reports the status as undocumented.
        """
        found = self._match(method, path)
        if found is None:
            return [f"{method.upper()} {path}: no such operation in Codat's spec"]
        label = f"{method.upper()} {found[0]} -> {status}"
        documented = self.response_definition(method, path, status)
        if documented is None:
            if status < 400:
                return [f"{label}: status {status} is not documented for this operation"]
            out = [f"{label}: status {status} is not documented for this operation"] if strict_status else []
            if json_body is None:
                return [*out, f"{label}: expected a Codat error body"]
            ref = pointer("components", "schemas", "ErrorMessage")
            return out + [f"{label}: body {v}" for v in self.validate(json_body, ref)]
        definition, where = documented
        content = definition.get("content", {})
        if "application/json" not in content:
            return [] if json_body is None else [f"{label}: no body is documented, got one"]
        if json_body is None:
            return [f"{label}: expected a JSON body"]
        ref = where + pointer("content", "application/json", "schema")[1:]
        return [f"{label}: body {v}" for v in self.validate(json_body, ref)]

    # --- examples ---------------------------------------------------------------------------------------------

    def _media_examples(self, media: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "example" in media:
            out["example"] = media["example"]
        for name, example in media.get("examples", {}).items():
            resolved, _ = self.resolve(example)
            if "value" in resolved:
                out[name] = resolved["value"]
        return out

    def response_examples(self, method: str, path: str, status: int = 200) -> dict[str, Any]:
        """The named JSON examples of an operation's response (``path`` may be a template or a concrete path)."""
        documented = self.response_definition(method, path, status)
        if documented is None:
            return {}
        media = documented[0].get("content", {}).get("application/json", {})
        return self._media_examples(media)

    def example_bodies(self, schema_name: str) -> dict[str, Any]:
        """Every example the spec gives for ``#/components/schemas/<name>``, keyed by where it comes from.

        Includes the schema's own ``example``/``examples`` and the examples of every request or response whose
        JSON schema is exactly that component.
        """
        target = pointer("components", "schemas", schema_name)
        schema = self.raw["components"]["schemas"][schema_name]
        out: dict[str, Any] = {}
        if "example" in schema:
            out[f"{schema_name} example"] = schema["example"]
        for i, example in enumerate(schema.get("examples", [])):
            out[f"{schema_name} examples[{i}]"] = example
        for template, item in self.raw.get("paths", {}).items():
            for method in HTTP_METHODS:
                operation = item.get(method)
                if operation is None:
                    continue
                label = f"{method.upper()} {template}"
                if "requestBody" in operation:
                    media = self.resolve(operation["requestBody"])[0].get("content", {}).get("application/json", {})
                    if media.get("schema", {}).get("$ref") == target:
                        out.update({f"{label} request {k!r}": v for k, v in self._media_examples(media).items()})
                for status, response in operation.get("responses", {}).items():
                    media = self.resolve(response)[0].get("content", {}).get("application/json", {})
                    if media.get("schema", {}).get("$ref") == target:
                        out.update({f"{label} {status} {k!r}": v for k, v in self._media_examples(media).items()})
        return out


def _coerce(value: str, schema: Mapping[str, Any]) -> Any:
    """Query/path values arrive as strings; convert them to the schema's scalar type so the schema can judge them."""
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
    except ValueError:
        return value
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


class ResponseChecker:
    """An httpx ``response`` event hook that checks every answer against the spec, collecting violations.

    ``httpx.Client(..., event_hooks={"response": [checker]})``; then assert ``checker.violations == []``.
    """

    def __init__(self, spec: CodatSpec) -> None:
        self.spec = spec
        self.violations: list[str] = []
        self.exchanges: list[tuple[str, str, int]] = []  # (method, path template, status) of spec operations

    def __call__(self, response: httpx.Response) -> None:
        request = response.request
        response.read()
        found = self.spec.match_operation(request.method, request.url.path)
        if found is None:
            return
        self.exchanges.append((request.method, found[0], response.status_code))
        try:
            body = json.loads(response.content) if response.content else None
        except ValueError:
            self.violations.append(f"{request.method} {found[0]} -> {response.status_code}: body is not JSON")
            return
        self.violations += self.spec.validate_response(request.method, request.url.path, response.status_code, body)
