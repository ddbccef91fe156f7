"""Fixtures for contract tests: Codat's spec (skipped when absent, required in CI) and a validating simulator."""

from collections.abc import Iterator

import httpx
import pytest

from consent_dev.codat_simulator import CodatSimulator
from consent_dev.codat_spec import CodatSpec, ResponseChecker, require_spec


@pytest.fixture(scope="session")
def codat_spec() -> CodatSpec:
    return require_spec()


@pytest.fixture
def sim(codat_spec: CodatSpec) -> CodatSimulator:
    return CodatSimulator(spec=codat_spec, validate=True)


@pytest.fixture
def spec_check(codat_spec: CodatSpec) -> ResponseChecker:
    # Checks every answer the client receives, independently of the simulator's own checks.
    return ResponseChecker(codat_spec)


@pytest.fixture
def http(sim: CodatSimulator, spec_check: ResponseChecker) -> Iterator[httpx.Client]:
    with sim.client(timeout=2.0, event_hooks={"response": [spec_check]}) as client:
        yield client
