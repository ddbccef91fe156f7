"""A bank's developer generates a Python client from `make dev`'s `/openapi.json` with a mainstream generator
(openapi-python-client, pinned in `make test`) and runs a customer's whole journey through it: typed requests,
typed answers, typed problems."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from consent_dev.devserver import DevStack
from consent_dev.jwt_auth import LocalIssuer
from consent_dev.template import REPO_ROOT

pytestmark = pytest.mark.e2e

GENERATOR = REPO_ROOT / ".tools" / "openapi-python-client" / "bin" / "openapi-python-client"
ISSUER = LocalIssuer(url="https://issuer.consent.test")
WAIT_SECONDS = 20.0


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    with DevStack(port=0, codat_port=0, environ={}, issuer=ISSUER) as running:
        yield running


@pytest.fixture(scope="module")
def client_package(stack: DevStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not GENERATOR.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("openapi-python-client is not installed (make test installs it)")
        pytest.skip("openapi-python-client is not installed: `make test` (or make .tools/openapi-python-client/...)")
    folder = tmp_path_factory.mktemp("generated")
    document = folder / "openapi.json"
    document.write_bytes(httpx.get(stack.openapi_url, timeout=10).content)
    result = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(document), "--meta", "none", "--output-path", "bank_client"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PATH": f"{REPO_ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Nothing of the document was left out of the client
    assert "Cannot parse" not in result.stdout + result.stderr, result.stdout
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("bank_client")
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == "bank_client" or n.startswith("bank_client.")]:
            del sys.modules[name]
        shutil.rmtree(folder, ignore_errors=True)


def test_a_generated_client_runs_the_whole_journey(stack: DevStack, client_package: Any) -> None:
    api = importlib.import_module("bank_client.api")
    models = importlib.import_module("bank_client.models")
    for module in ("companies", "connections", "consent_ledger", "journeys"):
        importlib.import_module(f"bank_client.api.{module}")
    for operation in (
        "companies.create_company",
        "companies.get_company",
        "companies.erase_company",
        "connections.list_integrations",
        "connections.create_connection",
        "connections.revoke_connection",
        "consent_ledger.list_consent_events",
        "journeys.list_journeys",
    ):
        importlib.import_module(f"bank_client.api.{operation}")
    client = client_package.AuthenticatedClient(base_url=stack.api_url, token=ISSUER.token("customer-generated"))

    # The catalogue, then a company for one of its journeys (idempotent)
    journeys = api.journeys.list_journeys.sync(client=client)
    assert [j.name for j in journeys.items] == ["credit_check", "loan_application", "onboarding"]
    request = models.CreateCompanyRequest(name="Generated Ltd", journey=models.CreateCompanyRequestJourney.ONBOARDING)
    key = str(uuid.uuid4())
    created = api.companies.create_company.sync_detailed(client=client, body=request, idempotency_key=key)
    assert created.status_code == 201
    company = created.parsed
    assert isinstance(company, models.Company)
    again = api.companies.create_company.sync_detailed(client=client, body=request, idempotency_key=key)
    assert (again.status_code, again.parsed.company_id) == (201, company.company_id)

    # A typed problem: another body with the same key
    other = models.CreateCompanyRequest(name="Other Ltd", journey=models.CreateCompanyRequestJourney.ONBOARDING)
    refused = api.companies.create_company.sync_detailed(client=client, body=other, idempotency_key=key)
    assert refused.status_code == 409
    assert str(refused.parsed.code) == "idempotency_key_reused"

    # Connect the bank, authorize on Codat's (the simulator's) page, and the journey completes
    banks = api.connections.list_integrations.sync(client=client, source_type=models.SourceType.BANKING)
    assert "qhnd" in [i.platform_key for i in banks.items]
    connection = api.connections.create_connection.sync(
        company.company_id, client=client, body=models.CreateConnectionRequest(platform_key="qhnd")
    )
    assert isinstance(connection, models.Connection)
    httpx.post(connection.link_url, data={"action": "authorize"}, timeout=10)
    deadline = time.monotonic() + WAIT_SECONDS
    while (read := api.companies.get_company.sync(company.company_id, client=client)).journeys[0].status != "complete":
        assert time.monotonic() < deadline, read
        time.sleep(0.1)

    # The ledger, a revoke and the erasure, all typed
    ledger = api.consent_ledger.list_consent_events.sync(company.company_id, client=client)
    assert "connection.linked" in [str(entry.type_) for entry in ledger.items]
    revoked = api.connections.revoke_connection.sync(company.company_id, connection.connection_id, client=client)
    assert str(revoked.status) == "Unlinked"
    erased = api.companies.erase_company.sync_detailed(company.company_id, client=client)
    assert erased.status_code == 204
    gone = api.companies.get_company.sync_detailed(company.company_id, client=client)
    assert (gone.status_code, str(gone.parsed.code)) == (404, "not_found")


NODE_TOOLS = REPO_ROOT / "tools" / "asyncapi" / "node_modules" / ".bin"
USAGE = Path(__file__).with_name("typescript") / "usage.ts"


def _tsc(folder: Path) -> subprocess.CompletedProcess[str]:
    command = [str(NODE_TOOLS / "tsc"), "--strict", "--noEmit", "--target", "es2022", "--module", "es2022"]
    command += ["--moduleResolution", "bundler", "usage.ts"]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300, check=False)


def test_typescript_types_generated_from_the_document_type_check_a_bank_apps_usage(
    stack: DevStack, tmp_path: Path
) -> None:
    if not (NODE_TOOLS / "openapi-typescript").exists() or shutil.which("node") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("openapi-typescript is not installed (make node-deps)")
        pytest.skip("openapi-typescript is not installed: `make node-deps` (needs node and npm)")
    (tmp_path / "openapi.json").write_bytes(httpx.get(stack.openapi_url, timeout=10).content)
    generated = subprocess.run(
        [str(NODE_TOOLS / "openapi-typescript"), "openapi.json", "-o", "api.d.ts"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert generated.returncode == 0, generated.stderr
    (tmp_path / "usage.ts").write_text(USAGE.read_text(encoding="utf-8"), encoding="utf-8")

    compiled = _tsc(tmp_path)
    assert compiled.returncode == 0, compiled.stdout

    # and the types are no rubber stamp: a code the 409 cannot carry does not compile
    broken = USAGE.read_text(encoding="utf-8").replace('| "conflict" = answer.code', "= answer.code")
    (tmp_path / "usage.ts").write_text(broken, encoding="utf-8")
    assert "TS2322" in _tsc(tmp_path).stdout
