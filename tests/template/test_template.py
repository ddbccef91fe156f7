"""template.yaml: lint-clean, every handler importable, least privilege, every setting set where it is read."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from consent.settings import ENVIRONMENT, Settings
from consent_dev.cors import cors_policy
from consent_dev.lambda_runtime import load_handler
from consent_dev.template import REPO_ROOT, TEMPLATE_PATH, functions, load_template, parameter_defaults, routes

pytestmark = pytest.mark.template

FUNCTIONS = functions()


def test_cfn_lint_finds_nothing() -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run([str(cfn_lint), str(TEMPLATE_PATH)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.logical_id)
def test_every_handler_imports_and_is_callable(function: Any) -> None:
    assert function.code_uri.is_dir()
    handler = load_handler(function.code_uri, function.handler)
    assert callable(handler)


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.logical_id)
def test_every_function_has_its_own_least_privilege_policy(function: Any) -> None:
    resource = load_template()["Resources"][function.logical_id]["Properties"]
    assert "Role" not in resource, "one generated role per function"
    statements = [s for policy in function.policies for s in policy["Statement"]]
    assert statements, "a function without permissions cannot be right"
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions), statement
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert all(r != "*" for r in resources), statement


def test_every_api_route_sits_behind_the_jwt_authorizer() -> None:
    api = load_template()["Resources"]["ConsentApi"]["Properties"]["Auth"]
    assert api["DefaultAuthorizer"] == "CustomerJwt"
    assert set(api["Authorizers"]["CustomerJwt"]["JwtConfiguration"]) == {"issuer", "audience"}
    for route in routes():
        assert route.authorized or route.path == "/webhooks/codat", route.route_key


def test_routes_are_those_of_the_product_contract_so_far() -> None:
    keys = {route.route_key for route in routes()}
    assert {
        "POST /companies",
        "POST /companies/{companyId}/journeys",
        "GET /companies",
        "GET /companies/{companyId}",
    } <= keys


def test_the_table_has_the_keys_the_store_uses_with_pitr_ttl_and_encryption() -> None:
    table = load_template()["Resources"]["ConsentTable"]["Properties"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["PK", "SK"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["GSI1", "GSI2"]
    # The lifecycle's index holds keys only: the run reads what is due, then each company strongly.
    reminders = table["GlobalSecondaryIndexes"][1]
    assert [k["AttributeName"] for k in reminders["KeySchema"]] == ["GSI2PK", "GSI2SK"]
    assert reminders["Projection"] == {"ProjectionType": "KEYS_ONLY"}


def test_every_setting_name_is_a_real_environment_variable_of_the_package() -> None:
    # The settings model and its environment map agree, so no setting is unreachable from the template.
    assert set(ENVIRONMENT) == set(Settings.model_fields)


def test_the_layer_is_built_from_shared_for_python_313_by_its_makefile() -> None:
    layer = load_template()["Resources"]["ConsentLayer"]
    assert layer["Properties"]["ContentUri"] == "shared/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    # sam build runs `make build-ConsentLayer` from the ContentUri's Makefile; its default architecture is the
    # one the template declares (sam does not pass BuildArchitecture on to make).
    makefile = (REPO_ROOT / "shared" / "Makefile").read_text(encoding="utf-8")
    assert "\nbuild-ConsentLayer:" in makefile
    assert f"LAYER_ARCHITECTURE ?= {layer['Metadata']['BuildArchitecture']}\n" in makefile
    requirements = (REPO_ROOT / "shared" / "requirements.txt").read_text().split()
    assert not any(r.startswith("boto3") for r in requirements), "boto3 comes with the Lambda runtime"


@pytest.mark.parametrize(
    ("origins", "accepted"),
    [
        ("", True),
        ("https://app.example-bank.com", True),
        ("https://app.example-bank.com,http://localhost:3000", True),
        ("*", False),
        ("https://app.example-bank.com,*", False),
        ("https://*.example-bank.com", False),
        ("app.example-bank.com", False),
    ],
)
def test_allowed_origins_are_listed_never_a_wildcard(origins: str, accepted: bool) -> None:
    pattern = load_template()["Parameters"]["AllowedOrigins"]["AllowedPattern"]
    assert (re.fullmatch(pattern, origins) is not None) is accepted


def test_cors_follows_the_allowed_origins_parameter() -> None:
    assert cors_policy({**parameter_defaults(), "AllowedOrigins": ""}) is None
    policy = cors_policy({**parameter_defaults(), "AllowedOrigins": "https://a.example,https://b.example"})
    assert policy is not None
    assert policy.allow_origins == ("https://a.example", "https://b.example")
    assert {"authorization", "content-type", "idempotency-key"} <= set(policy.allow_headers)
    assert {"retry-after", "idempotent-replayed", "x-request-id"} <= set(policy.expose_headers)
    assert not policy.allow_credentials
