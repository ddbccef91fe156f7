"""`make codat-webhooks` against the Codat simulator over real HTTP: it makes the consumer right once, then finds
nothing to do; `--check` only reports; each finding and action is one line; the API key is never printed."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from consent.usecases.webhooks import HANDLED_EVENT_TYPES
from consent_dev.codat_simulator import CodatSimulator, Fault, SimServer, serve
from consent_dev.codat_webhook_setup import main

pytestmark = pytest.mark.unit

API_KEY = "setup-test-codat-key"  # a documented fake, accepted only by the simulator
URL = "https://a1b2c3d4e5.execute-api.eu-west-2.amazonaws.com/webhooks/codat"
HANDLED = sorted(HANDLED_EVENT_TYPES)


@pytest.fixture
def codat_sim() -> Iterator[CodatSimulator]:
    sim = CodatSimulator(api_key=API_KEY)
    yield sim
    assert sim.contract_violations == []


@pytest.fixture
def server(codat_sim: CodatSimulator) -> Iterator[SimServer]:
    with serve(codat_sim) as running:
        yield running


class Run:
    def __init__(self, status: int, out: str, err: str) -> None:
        self.status, self.out, self.err = status, out, err

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    def kinds(self) -> list[str]:
        """Each line's leading word: what it is about (the header excepted)."""
        return [line.split(":", 1)[0] for line in self.lines[1:]]


def run(server: SimServer, *args: str, cloudformation: Any = None, **environ: str) -> Run:
    env = {"WEBHOOK_URL": URL, "CODAT_BASE_URL": server.url, "CODAT_API_KEY": API_KEY, **environ}
    out, err = io.StringIO(), io.StringIO()
    status = main(list(args), environ=env, out=out, err=err, cloudformation=cloudformation)
    return Run(status, out.getvalue(), err.getvalue())


def assert_no_key(output: str) -> None:
    assert API_KEY not in output
    assert base64.b64encode(API_KEY.encode()).decode() not in output


def test_it_creates_the_consumer_once_then_finds_nothing_to_do(codat_sim: CodatSimulator, server: SimServer) -> None:
    # When the command runs against a Codat without a consumer for the URL
    first = run(server)

    # Then it says what it found and did, one line each, and how to get the signing secret
    assert first.status == 0, first.out
    assert first.lines[0] == f"Codat webhook consumers for {URL} (Codat API {server.url})"
    assert first.kinds() == ["missing", "created", "new", "secret"]
    [consumer] = codat_sim.webhook_consumers
    assert (consumer.url, sorted(consumer.event_types)) == (URL, HANDLED)
    assert consumer.id in first.lines[2]
    assert "CodatWebhookSecret" in first.lines[-1]
    assert "Portal" in first.lines[-1]

    # When it runs again, and with --check
    second, checked = run(server), run(server, "--check")

    # Then nothing more is done, and the check exits 0
    assert (second.status, second.kinds()) == (0, ["healthy", "nothing to do", "secret"])
    assert (checked.status, checked.kinds()) == (0, ["healthy"])
    assert [c.id for c in codat_sim.webhook_consumers] == [consumer.id]
    for output in (first, second, checked):
        assert_no_key(output.out + output.err)


def test_check_reports_every_finding_changes_nothing_and_exits_1(codat_sim: CodatSimulator, server: SimServer) -> None:
    disabled = codat_sim.add_webhook_consumer(URL, HANDLED, disabled=True)
    short = codat_sim.add_webhook_consumer(URL, HANDLED[2:])
    filtered = codat_sim.add_webhook_consumer(URL, HANDLED, company_tags=["region:uk"])
    codat_sim.add_webhook_consumer("https://elsewhere.example/hook", [])

    checked = run(server, "--check")

    assert checked.status == 1
    assert checked.kinds() == ["disabled", "short of event types", "filtered", "several"]
    assert disabled.id in checked.lines[1]
    assert checked.lines[2] == f"short of event types: consumer {short.id} lacks {', '.join(HANDLED[:2])}"
    assert filtered.id in checked.lines[3]
    assert "elsewhere" not in checked.out
    assert {r.operation for r in codat_sim.requests} == {"GET /webhooks"}


def test_it_replaces_what_is_stale_and_says_why_each_was_deleted(codat_sim: CodatSimulator, server: SimServer) -> None:
    disabled = codat_sim.add_webhook_consumer(URL, HANDLED, disabled=True)
    short = codat_sim.add_webhook_consumer(URL, HANDLED[1:])

    done = run(server)

    assert done.status == 0, done.out
    assert done.kinds() == [
        "disabled",
        "short of event types",
        "several",
        "created",
        "deleted",
        "deleted",
        "new",
        "secret",
    ]
    assert done.lines[5] == f"deleted: consumer {disabled.id} (disabled)"
    assert done.lines[6] == f"deleted: consumer {short.id} (short of event types)"
    assert run(server, "--check").status == 0


def test_codat_failing_is_one_line_saying_what_was_done_and_exit_1(
    codat_sim: CodatSimulator, server: SimServer
) -> None:
    codat_sim.add_webhook_consumer(URL, HANDLED, disabled=True)
    codat_sim.inject(Fault(kind="status", status=503, method="DELETE", times=None))

    failed = run(server)

    assert failed.status == 1
    assert failed.kinds() == ["disabled", "created", "failed"]
    assert failed.lines[-1].startswith("failed: Codat answered 503 to DELETE /webhooks/")
    assert "run it again to finish" in failed.lines[-1]
    assert_no_key(failed.out)

    codat_sim.clear_faults()
    again = run(server)
    assert again.kinds() == ["disabled", "healthy", "several", "deleted", "secret"]


def test_a_check_codat_refuses_is_a_failed_line(codat_sim: CodatSimulator, server: SimServer) -> None:
    codat_sim.inject(Fault(kind="status", status=401, times=None))

    checked = run(server, "--check")

    assert (checked.status, checked.kinds()) == (1, ["failed"])
    assert "401" in checked.lines[-1]


def test_without_a_url_or_a_key_it_says_what_to_set(server: SimServer) -> None:
    no_url = run(server, WEBHOOK_URL="")
    no_key = run(server, CODAT_API_KEY="")
    not_a_url = run(server, "--url", "webhooks/codat")

    assert [r.status for r in (no_url, no_key, not_a_url)] == [2, 2, 2]
    assert "WEBHOOK_URL" in no_url.err
    assert "STACK" in no_url.err
    assert "CODAT_API_KEY" in no_key.err
    assert "not an absolute http(s) URL" in not_a_url.err


# -- the webhook URL from a deployed stack's outputs ------------------------------------------------------------


def stack(outputs: dict[str, str] | None, *, name: str = "consent-prod") -> Any:
    client = boto3.client(
        "cloudformation", region_name="eu-west-2", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    stubber = Stubber(client)
    if outputs is None:
        stubber.add_client_error("describe_stacks", "ValidationError", f"Stack with id {name} does not exist")
    else:
        described = {
            "StackName": name,
            "CreationTime": "2024-01-01T00:00:00Z",
            "StackStatus": "CREATE_COMPLETE",
            "Outputs": [{"OutputKey": key, "OutputValue": value} for key, value in outputs.items()],
        }
        stubber.add_response("describe_stacks", {"Stacks": [described]}, {"StackName": name})
    stubber.activate()
    return lambda: client


@pytest.mark.parametrize(
    "outputs",
    [{"WebhookUrl": URL, "ApiUrl": "https://ignored.example"}, {"ApiUrl": URL.removesuffix("/webhooks/codat")}],
    ids=["WebhookUrl", "ApiUrl-and-the-templates-route"],
)
def test_the_url_comes_from_the_stacks_outputs(
    codat_sim: CodatSimulator, server: SimServer, outputs: dict[str, str]
) -> None:
    done = run(server, "--stack", "consent-prod", WEBHOOK_URL="", cloudformation=stack(outputs))

    assert done.status == 0, done.out + done.err
    assert [c.url for c in codat_sim.webhook_consumers] == [URL]


def test_a_stack_that_cannot_be_read_is_said_so(server: SimServer) -> None:
    missing = run(server, WEBHOOK_URL="", STACK="gone", cloudformation=stack(None, name="gone"))
    bare = run(server, WEBHOOK_URL="", STACK="consent-prod", cloudformation=stack({}))

    assert (missing.status, bare.status) == (2, 2)
    assert "does not exist" in missing.err
    assert "neither a WebhookUrl nor an ApiUrl output" in bare.err


# -- as `make codat-webhooks` runs it ----------------------------------------------------------------------------


def test_the_module_runs_as_a_command(server: SimServer) -> None:
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CODAT_", "WEBHOOK_URL", "STACK"))},
        "WEBHOOK_URL": URL,
        "CODAT_BASE_URL": server.url,
        "CODAT_API_KEY": API_KEY,
    }
    done = subprocess.run(
        [sys.executable, "-m", "consent_dev.codat_webhook_setup", "--check"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines()[1] == "missing: Codat has no webhook consumer for this URL"
    assert_no_key(done.stdout + done.stderr)
