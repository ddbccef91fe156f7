"""Schemathesis against `make dev`'s own stack and the OpenAPI document it serves: every operation fuzzed with
schema-valid and schema-invalid requests (the coverage and fuzzing phases), then stateful sequences
(create → read → revoke → erase → read again), with every check on.
The customer "alice" sends the requests; "mallory" replays alice's reads and must get what a stranger gets
(object-level authorization).

Schemathesis' own expectations, untailored: no hook rewrites a case and no check is given other statuses. What
the document calls valid the API accepts, or refuses for a reason of state (404, 409); cursors are positions
with a pattern, so a drawn one is a real one.

Deterministic: derandomized Hypothesis with a fixed seed and a fixed number of examples, so CI sends the same
requests every time; each stateful sequence starts from an empty deployment. A failure names
the check and prints the response and a `curl` line that reproduces it."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.core.transport import Response

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
                "checks": {
                    "enabled": True,
                    **{name: {"enabled": True} for name in BUILTIN_CHECKS},
                },
                "phases": {"stateful": {"max-steps": STATEFUL_MAX_STEPS}},
                # alice sends every request; mallory is loaded for object_level_authorization's replays.
                "auth": {"wfc": {"path": str(wfc), "user": OWNER, "peers": [OWNER, PEER]}},
            }
        )
        return schemathesis.openapi.from_dict(build_openapi(), config=config)


schema = load_schema()


# -- the stack ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    # environ={}: the simulator, whatever CODAT_* the developer's shell has.
    with DevStack(port=0, codat_port=0, environ={}, issuer=ISSUER) as running:
        yield running


# -- the tests ----------------------------------------------------------------------------------------------


def test_the_fuzzed_document_is_the_one_the_stack_serves(stack: DevStack) -> None:
    served = httpx.get(stack.openapi_url, timeout=10).json()
    assert served == schema.raw_schema


@schema.parametrize()
def test_every_operation_answers_as_documented(
    case: Case, stack: DevStack, fuzz_tally: Counter[tuple[str, str]]
) -> None:
    fuzz_tally[(case.operation.label, case.meta.phase.name.value if case.meta else "explicit")] += 1
    case.call_and_validate(base_url=stack.api_url)


def test_sequences_of_calls_keep_every_promise(stack: DevStack, fuzz_tally: Counter[tuple[str, str]]) -> None:
    class Sequences(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Each sequence starts from an empty deployment: Hypothesis runs a sequence again to check or report
            # it, and the run again must meet the world the first run met (as Schemathesis' own runner expects).
            stack.reset()

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"base_url": stack.api_url}

        def validate_response(self, response: Response, case: Case, *_: Any, **__: Any) -> None:
            __tracebackhide__ = True
            fuzz_tally[(case.operation.label, "stateful")] += 1
            case.validate_response(response, transport_kwargs={"base_url": stack.api_url}, recorder=self.recorder)

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
