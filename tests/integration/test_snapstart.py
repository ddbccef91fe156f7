"""SnapStart: a function restored from a snapshot builds its clients and reads its secrets afresh, and draws
its own random numbers; the hooks are registered by importing any handler, and only under SnapStart.

The hooks run as Lambda's runtime runs them: registered with the runtime's own `snapshot_restore_py`, the
before-snapshot hooks in reverse order of registration, the after-restore hooks in order."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import snapshot_restore_py

from consent import services as services_module
from consent.services import (
    after_restore,
    aws_client,
    default_services,
    prepare_snapshot,
    register_snapstart_hooks,
)
from consent.settings import get_settings
from consent_dev.aws import Deployed, MotoServer, deploy
from consent_dev.template import functions

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], list[Any]]:
    """The runtime's hook registries, empty for the test."""
    before: list[Any] = []
    after: list[Any] = []
    monkeypatch.setattr(snapshot_restore_py, "_before_snapshot_registry", before)
    monkeypatch.setattr(snapshot_restore_py, "_after_restore_registry", after)
    return before, after


@pytest.fixture
def function_environment(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployed]:
    """A function's environment on a fresh deployment, and this process's services forgotten around the test."""
    deployed = deploy(moto_server.endpoint, secret_values={"CodatApiKeySecret": "key-at-snapshot"})
    monkeypatch.setenv("CONSENT_TABLE_NAME", deployed.tables["ConsentTable"])
    monkeypatch.setenv("CODAT_API_KEY_SECRET_NAME", deployed.secrets["CodatApiKeySecret"])
    monkeypatch.delenv("CODAT_API_KEY", raising=False)
    get_settings.cache_clear()
    default_services.cache_clear()
    yield deployed
    get_settings.cache_clear()
    default_services.cache_clear()


def _run_before_snapshot(before: list[Any]) -> None:
    for hook, args, kwargs in reversed(before):
        hook(*args, **kwargs)


def _run_after_restore(after: list[Any]) -> None:
    for hook, args, kwargs in after:
        hook(*args, **kwargs)


def test_outside_snapstart_no_hook_is_registered(registry: tuple[list[Any], list[Any]]) -> None:
    for initialization in ({}, {"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"}):
        assert register_snapstart_hooks(initialization) is False
    assert registry == ([], [])


def test_under_snapstart_the_snapshot_is_prepared_and_the_restore_forgets_it(
    registry: tuple[list[Any], list[Any]],
) -> None:
    assert register_snapstart_hooks({"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}) is True

    before, after = registry
    assert [hook for hook, _, _ in before] == [prepare_snapshot]
    assert [hook for hook, _, _ in after] == [after_restore]


def test_a_restored_function_builds_new_clients_and_reads_a_rotated_secret(
    registry: tuple[list[Any], list[Any]], function_environment: Deployed
) -> None:
    # Given a snapshot taken of an initialized function that then served a request (its secret cached)
    register_snapstart_hooks({"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"})
    before, after = registry
    _run_before_snapshot(before)
    snapshotted = default_services()
    secret_name = snapshotted.settings.codat_api_key_secret
    assert secret_name is not None
    assert snapshotted.secrets(secret_name) == "key-at-snapshot"
    snapshotted_store = snapshotted.store
    # ... and the secret rotated while the snapshot waited
    aws_client("secretsmanager").put_secret_value(SecretId=secret_name, SecretString="key-after-rotation")
    random_state = random.getstate()

    # When an environment is restored from it
    _run_after_restore(after)

    # Then it builds its own services and clients, reads the secret again, and draws its own random numbers
    restored = default_services()
    assert restored is not snapshotted
    assert restored.store is not snapshotted_store
    assert restored.secrets(secret_name) == "key-after-rotation"
    assert random.getstate() != random_state


def test_before_the_snapshot_nothing_is_sent_anywhere(
    registry: tuple[list[Any], list[Any]], function_environment: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    monkeypatch.setattr(services_module, "aws_client", made.append)
    register_snapstart_hooks({"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"})

    _run_before_snapshot(registry[0])

    assert made == []
    assert "boto3" in sys.modules
    assert "catalog" in vars(default_services())  # the journeys file read into the snapshot


# Imports one handler in a fresh interpreter initialized for SnapStart, as Lambda does when it publishes a
# version, and says which hooks the runtime's library holds.
_IMPORT_UNDER_SNAPSTART = """
import importlib.util, json, sys
code_uri = sys.argv[1]
sys.path.insert(0, code_uri)
spec = importlib.util.spec_from_file_location("app", f"{code_uri}/app.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
import snapshot_restore_py as runtime
print(json.dumps({
    "before": [f.__module__ + "." + f.__name__ for f, _, _ in runtime._before_snapshot_registry],
    "after": [f.__module__ + "." + f.__name__ for f, _, _ in runtime._after_restore_registry],
}))
"""


@pytest.mark.parametrize("function", functions(), ids=lambda f: f.logical_id)
def test_importing_any_handler_under_snapstart_registers_the_hooks(function: Any) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_UNDER_SNAPSTART, str(function.code_uri)],
        env={
            "PATH": "/usr/bin:/bin",
            "AWS_DEFAULT_REGION": "eu-west-2",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "before": ["consent.services.prepare_snapshot"],
        "after": ["consent.services.after_restore"],
    }
