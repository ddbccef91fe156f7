"""Fixtures for the unit tests of the local Codat simulator."""

from collections.abc import Iterator

import httpx
import pytest

from consent_dev.codat_simulator import CodatSimulator


@pytest.fixture
def sim() -> CodatSimulator:
    # Validates against Codat's spec when it is present; the simulator's behaviour does not depend on it.
    return CodatSimulator()


@pytest.fixture
def sim_client(sim: CodatSimulator) -> Iterator[httpx.Client]:
    with sim.client(timeout=2.0) as http:
        yield http
