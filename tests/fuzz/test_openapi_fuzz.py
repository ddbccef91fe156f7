"""Schemathesis against `make dev`'s own stack and the OpenAPI document it serves: every operation fuzzed with
schema-valid and schema-invalid requests (the coverage and fuzzing phases), then stateful sequences
(create → read → revoke → erase → read again), with every check on. The customer "alice" sends the requests;
"mallory" replays alice's reads and must get what a stranger gets (object-level authorization).

Deterministic: derandomized Hypothesis with a fixed seed and a fixed number of examples, so CI sends the same
requests every time. A failure names the check and prints the response and a `curl` line that reproduces it."""

from __future__ import annotations

import hashlib
import json
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import Case, GenerationMode
from schemathesis.core.transport import Response

from consent.domain import SourceType
from consent.journeys import load_catalog
from consent_dev.codat_simulator.catalogue import default_integrations
from consent_dev.devserver import DevStack
from consent_dev.jwt_auth import LocalIssuer
from consent_dev.openapi import build_openapi

pytestmark = pytest.mark.fuzz

# The bank's identity provider, locally: made before the stack so that the tokens exist when the schema loads.
ISSUER = LocalIssuer(url="https://issuer.consent.test")
SEED = 20240611
MAX_EXAMPLES = 25  # generated per operation in the fuzzing phase, besides the coverage phase's cases
STATEFUL_SCENARIOS = 25
STATEFUL_MAX_STEPS = 8
OWNER, PEER = "alice", "mallory"

BUILTIN_CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "use_after_free",
    "ensure_resource_availability",
    "missing_required_header",
    "ignored_auth",
    "object_level_authorization",
    "unsupported_method",
    "allow_header_conformance",
)


def load_schema() -> Any:
    """The document `make dev` serves at /openapi.json (generated from the code; the first test checks that
    the running stack serves exactly this), loaded when pytest collects, so that each operation is a test.
    (`schemathesis.pytest.from_fixture` would load it from the stack itself, but it fails on pytest 9.2:
    it sets `Function._nodeid`, which pytest no longer has.)"""
    customers = {
        "auth": [
            {"name": name, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {ISSUER.token(name)}"}]}
            for name in (OWNER, PEER)
        ]
    }
    with tempfile.TemporaryDirectory() as directory:
        wfc = Path(directory) / "customers.json"  # Web Fuzzing Commons auth: read once, when the schema loads
        wfc.write_text(json.dumps(customers), encoding="utf-8")
        config = schemathesis.Config.from_dict(
            {
                "seed": SEED,
                "request-timeout": 30,
                "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "mode": "all", "database": "none"},
                # Every built-in check, each named, so that none is left off by a change of defaults.
                "checks": {"enabled": True, **{name: {"enabled": True} for name in BUILTIN_CHECKS}},
                "phases": {"stateful": {"max-steps": STATEFUL_MAX_STEPS}},
                # alice sends every request; mallory is loaded for object_level_authorization's replays.
                "auth": {"wfc": {"path": str(wfc), "user": OWNER, "peers": [OWNER, PEER]}},
            }
        )
        return schemathesis.openapi.from_dict(build_openapi(), config=config)


schema = load_schema()


# -- the stack ----------------------------------------------------------------------------------------------


class Live:
    """Where the running stack is (set once it is up)."""

    api_url = ""
    erased = 0  # companies erased so far (each spends the Idempotency-Key that created it)


def universal_platforms() -> tuple[str, ...]:
    """The simulator's enabled integrations that every journey allows: a connection to one is valid for any
    company. Known when pytest collects, since the coverage phase's cases are built then."""
    journeys = list(load_catalog().journeys.values())  # template.yaml sets no JOURNEYS_FILE: the packaged ones
    return tuple(
        sorted(
            integration.key
            for integration in default_integrations().values()
            if integration.enabled
            and (source_type := SourceType.from_codat(integration.source_type)) is not None
            and all(journey.allows(source_type) for journey in journeys)
        )
    )


PLATFORMS = universal_platforms()


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    # environ={}: the simulator, whatever CODAT_* the developer's shell has.
    with DevStack(port=0, codat_port=0, environ={}, issuer=ISSUER) as running:
        Live.api_url = running.api_url
        owner = {"Authorization": f"Bearer {ISSUER.token(OWNER)}"}
        listed = httpx.get(f"{running.api_url}/integrations", headers=owner, timeout=10)
        assert PLATFORMS, "no enabled integration that every journey allows"
        assert set(PLATFORMS) <= {item["platformKey"] for item in listed.json()["items"]}, listed.text
        yield running


# -- what the document cannot say ---------------------------------------------------------------------------


@schema.hook("map_case")
def state_valid_positive_case(_: Any, case: Case) -> Case:
    """A positive case is one the API must accept (`positive_data_acceptance`), but three inputs are valid by the
    API's state, not by their shape, and for a well-formed value the state rejects the contract (PRODUCT §3)
    answers 422; Schemathesis knows only shapes. So a positive case carries, in place of what it drew:
      - no `cursor`: a cursor is opaque, and only one the API issued is valid (any other is 422);
      - an `Idempotency-Key` that names its body (the same key with another body is 422
        `idempotency_key_reused`; with the same body it is a replay, which is tested this way too) and the number
        of companies erased so far (a key whose company was erased is spent: 422 whatever the body);
      - a `platformKey` of an enabled integration that every journey allows (any other is 422).
    Negative cases are sent exactly as drawn."""
    if case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE:
        return case
    if isinstance(case.query, MutableMapping):
        case.query.pop("cursor", None)
    if isinstance(case.headers, MutableMapping):
        for name in [name for name in case.headers if name.lower() == "idempotency-key"]:
            digest = hashlib.sha256(json.dumps(case.body, sort_keys=True, default=str).encode()).hexdigest()
            case.headers[name] = f"{str(case.headers[name])[:200]}.{digest[:16]}.{Live.erased}"
    if isinstance(case.body, MutableMapping) and case.body.get("platformKey") not in (None, *PLATFORMS):
        drawn = str(case.body["platformKey"])
        case.body["platformKey"] = PLATFORMS[zlib.crc32(drawn.encode()) % len(PLATFORMS)]
    return case


def validate(case: Case, response: Response, **kwargs: Any) -> None:
    __tracebackhide__ = True
    if case.method.upper() == "DELETE" and case.path == "/companies/{companyId}" and response.status_code == 204:
        Live.erased += 1
    case.validate_response(response, transport_kwargs={"base_url": Live.api_url}, **kwargs)


# -- the tests ----------------------------------------------------------------------------------------------


def test_the_fuzzed_document_is_the_one_the_stack_serves(stack: DevStack) -> None:
    served = httpx.get(stack.openapi_url, timeout=10).json()
    assert served == schema.raw_schema


@schema.parametrize()
def test_every_operation_answers_as_documented(
    case: Case, stack: DevStack, fuzz_tally: Counter[tuple[str, str]]
) -> None:
    fuzz_tally[(case.operation.label, case.meta.phase.name.value if case.meta else "explicit")] += 1
    validate(case, case.call(base_url=stack.api_url))


def test_sequences_of_calls_keep_every_promise(stack: DevStack, fuzz_tally: Counter[tuple[str, str]]) -> None:
    class Sequences(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"base_url": stack.api_url}

        def validate_response(self, response: Response, case: Case, *_: Any, **__: Any) -> None:
            __tracebackhide__ = True
            fuzz_tally[(case.operation.label, "stateful")] += 1
            validate(case, response, recorder=self.recorder)

    Sequences.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_MAX_STEPS,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
