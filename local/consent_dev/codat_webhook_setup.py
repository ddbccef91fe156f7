"""`make codat-webhooks`: Codat's webhook consumer for a stack's webhook URL, made right (or, with `--check`, only
judged): enabled, for every company, with every event type the receiver handles.

Where to: `WEBHOOK_URL` (or `--url`), else the deployed stack `STACK` (or `--stack`): its `WebhookUrl` output, or its
`ApiUrl` and the template's webhook route. Codat: `CODAT_BASE_URL` (default: Codat's production API) and
`CODAT_API_KEY` (read from the environment only, never printed). Exit status: 0 healthy (or made so), 1 not healthy
or Codat failed, 2 nothing to work with (no URL, no key, no such stack)."""

from __future__ import annotations

import argparse
import base64
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO
from urllib.parse import urlsplit

from consent.codat.client import CodatClient
from consent.codat.errors import CodatError
from consent.settings import Settings
from consent.usecases.webhook_consumers import ConsumerCheck, ConsumerStatus, check, ensure
from consent_dev.template import routes

DEFAULT_BASE_URL: str = Settings.model_fields["codat_base_url"].default
_WEBHOOK_FUNCTION = "WebhookHandlerFunction"
PORTAL_REMINDER = (
    "secret: Codat does not return a consumer's signing secret: copy it from Codat's Portal, where the consumer is "
    "listed, into the stack's CodatWebhookSecret secret (its ARN is the CodatWebhookSecretArn output), e.g. "
    "aws secretsmanager put-secret-value --secret-id <arn> --secret-string 'whsec_...'; while it changes, the "
    "secret may hold the new and the old one, space-separated"
)


class SetupError(Exception):
    """Nothing to work with: no webhook URL, no API key, no such stack."""


def webhook_path() -> str:
    """The webhook route of template.yaml (`/webhooks/codat`)."""
    return next(route.path for route in routes() if route.function == _WEBHOOK_FUNCTION)


def stack_webhook_url(stack: str, cloudformation: Any) -> str:
    """The deployed stack's `WebhookUrl` output, or its `ApiUrl` with the template's webhook route."""
    try:
        [described] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except Exception as error:  # botocore's ClientError, NoCredentialsError, NoRegionError, ...
        raise SetupError(f"cannot read the outputs of stack {stack}: {error}") from error
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    if "WebhookUrl" in outputs:
        return str(outputs["WebhookUrl"])
    if "ApiUrl" in outputs:
        return str(outputs["ApiUrl"]).rstrip("/") + webhook_path()
    raise SetupError(f"stack {stack} has neither a WebhookUrl nor an ApiUrl output")


def describe(found: ConsumerCheck) -> list[str]:
    """One line per finding about the URL's consumers."""
    handled = found.handled
    if found.status is ConsumerStatus.MISSING:
        return ["missing: Codat has no webhook consumer for this URL"]
    lines: list[str] = []
    for consumer in found.consumers:
        if consumer in found.healthy:
            lines.append(
                f"healthy: consumer {consumer.id} receives all {len(handled)} event types the receiver handles"
            )
            continue
        if consumer.disabled:
            lines.append(f"disabled: consumer {consumer.id} (Codat disables one after days of failed deliveries)")
            continue
        lacking = sorted(handled - set(consumer.event_types))
        if lacking:
            lines.append(f"short of event types: consumer {consumer.id} lacks {', '.join(lacking)}")
        if consumer.company_tags:
            tags = ", ".join(consumer.company_tags)
            lines.append(f"filtered: consumer {consumer.id} receives only events of companies tagged {tags}")
    if len(found.healthy) > 1:
        lines.append(
            f"several: {len(found.healthy)} healthy consumers for this URL deliver every event; keep the one whose "
            "signing secret the stack holds and delete the others in Codat's Portal (never done here)"
        )
    elif found.several:
        lines.append(f"several: {len(found.consumers)} consumers for this URL")
    return lines


def _why_stale(found: ConsumerCheck, consumer_id: str) -> str:
    consumer = next(c for c in found.consumers if c.id == consumer_id)
    if consumer.disabled:
        return "disabled"
    if consumer.company_tags:
        return "filtered by company tags"
    return "short of event types"


def run(codat: CodatClient, url: str, *, check_only: bool, out: TextIO) -> int:
    def say(line: str) -> None:
        print(line, file=out)

    if check_only:
        try:
            found = check(codat, url)
        except CodatError as error:  # what Codat answered, and to which call: never the credentials
            say(f"failed: {error}")
            return 1
        for line in describe(found):
            say(line)
        return 0 if found.is_healthy else 1

    setup = ensure(codat, url)
    if setup.found is not None:
        for line in describe(setup.found):
            say(line)
    if setup.created is not None:
        types = ", ".join(setup.created.event_types)
        say(f"created: consumer {setup.created.id} with the event types the receiver handles: {types}")
    for consumer in setup.deleted:
        assert setup.found is not None
        say(f"deleted: consumer {consumer.id} ({_why_stale(setup.found, consumer.id)})")
    if setup.failure is not None:
        say(f"failed: {setup.failure}; what is listed above was done: run it again to finish")
        return 1
    if not setup.changed:
        say("nothing to do")
    if setup.created is not None:
        say(f"new: consumer {setup.created.id} has a signing secret of its own, which only Codat's Portal shows")
    say(PORTAL_REMINDER)
    return 0


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    cloudformation: Callable[[], Any] | None = None,
    transport: Any = None,
) -> int:
    """The command; `cloudformation` (a boto3 client factory) and `transport` (httpx's) are for tests."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="make codat-webhooks",
        description="Codat's webhook consumer for the stack's webhook URL: made right, or only checked.",
    )
    parser.add_argument("--check", action="store_true", help="only report; exit status 1 unless healthy")
    parser.add_argument("--url", default=env.get("WEBHOOK_URL") or None, help="the webhook URL (env WEBHOOK_URL)")
    parser.add_argument("--stack", default=env.get("STACK") or None, help="read it from this stack (env STACK)")
    parser.add_argument(
        "--codat-base-url",
        default=env.get("CODAT_BASE_URL") or DEFAULT_BASE_URL,
        help=f"Codat's API (env CODAT_BASE_URL, default {DEFAULT_BASE_URL})",
    )
    args = parser.parse_args(argv)
    try:
        url = _webhook_url(args.url, args.stack, cloudformation)
        api_key = env.get("CODAT_API_KEY", "").strip()
        if not api_key:
            raise SetupError("set CODAT_API_KEY to the Codat API key (it is read from the environment only)")
    except SetupError as error:
        print(f"error: {error}", file=err)
        return 2
    print(f"Codat webhook consumers for {url} (Codat API {args.codat_base_url})", file=out)
    credential = base64.b64encode(api_key.encode()).decode()
    codat = CodatClient(base_url=args.codat_base_url, api_key=lambda: credential, transport=transport)
    try:
        return run(codat, url, check_only=args.check, out=out)
    finally:
        codat.close()


def _webhook_url(url: str | None, stack: str | None, cloudformation: Callable[[], Any] | None) -> str:
    if url is None and stack is not None:
        url = stack_webhook_url(stack, (cloudformation or _cloudformation)())
    if url is None:
        raise SetupError("set WEBHOOK_URL (or --url) to the webhook URL, or STACK (or --stack) to the deployed stack")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SetupError(f"{url!r} is not an absolute http(s) URL")
    return url


def _cloudformation() -> Any:
    import boto3  # noqa: PLC0415 - only to read a stack's outputs

    return boto3.client("cloudformation")


if __name__ == "__main__":
    sys.exit(main())
