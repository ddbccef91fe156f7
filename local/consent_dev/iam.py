"""IAM as AWS checks it, for the offline stack: which function made each AWS call, the IAM actions and resources
AWS authorizes for that call, and whether the function's own policy in template.yaml allows them.

moto checks no IAM, so without this a policy missing an action passes every test and fails in AWS (a
`TransactWriteItems` with an `Update` step needs `dynamodb:UpdateItem`). Handlers run through
`consent_dev.lambda_runtime.load_handler`, which names the running function here; `CallRecorder` sees every boto3
call made while one runs."""

from __future__ import annotations

import contextvars
import fnmatch
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consent_dev.template import Function, functions, load_template

# The function whose handler is running in this thread (its logical id), set by `load_handler`'s wrapper.
RUNNING_FUNCTION: contextvars.ContextVar[str | None] = contextvars.ContextVar("running_function", default=None)


@dataclass(frozen=True, order=True)
class Permission:
    """One IAM action on one resource, the resource named by the template's logical id (a physical name made by
    `consent_dev.aws.deploy` is `<logical id>-<suffix>`): `arn:ConsentTable`, `arn:ConsentTable/index/GSI1`."""

    action: str
    resource: str

    def __str__(self) -> str:
        return f"{self.action} on {self.resource}"


# -- what AWS authorizes for a call ---------------------------------------------------------------------------------

# One step of a transaction is authorized as the action of the same name (AWS documents it so: a Put in
# TransactWriteItems needs dynamodb:PutItem on its table, and so on).
_TRANSACT_WRITE_STEPS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def permissions_for(service: str, operation: str, params: Mapping[str, Any], logical: Iterable[str]) -> set[Permission]:
    """The IAM permissions AWS checks for one API call. `logical` maps physical names to logical ids."""
    if service == "dynamodb":
        return _dynamodb(operation, params, logical)
    if service == "sns" and operation in ("Publish", "PublishBatch"):
        return {Permission("sns:Publish", _resource(str(params.get("TopicArn", "")), logical))}
    if service == "secretsmanager":
        return {Permission(f"secretsmanager:{operation}", _resource(str(params.get("SecretId", "")), logical))}
    if service == "sqs":
        return {Permission(f"sqs:{operation}", _resource(str(params.get("QueueUrl", "")), logical))}
    return {Permission(f"{service}:{operation}", "*")}


def _dynamodb(operation: str, params: Mapping[str, Any], logical: Iterable[str]) -> set[Permission]:
    if operation == "TransactWriteItems":
        found = set()
        for item in params.get("TransactItems", []):
            ((step, body),) = item.items()
            found.add(Permission(f"dynamodb:{_TRANSACT_WRITE_STEPS[step]}", _resource(body["TableName"], logical)))
        return found
    if operation == "TransactGetItems":
        return {
            Permission("dynamodb:GetItem", _resource(i["Get"]["TableName"], logical)) for i in params["TransactItems"]
        }
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return {Permission(f"dynamodb:{operation}", _resource(t, logical)) for t in params.get("RequestItems", {})}
    table = _resource(str(params.get("TableName", "")), logical)
    if params.get("IndexName"):
        table = f"{table}/index/{params['IndexName']}"
    return {Permission(f"dynamodb:{operation}", table)}


def _resource(name_or_arn: str, logical_ids: Iterable[str]) -> str:
    """`arn:<logical id>` for the name, ARN or queue URL of something made from the template (`deploy` names each
    `<logical id>-<suffix>`; a Secrets Manager ARN adds `-XXXXXX`), else the text itself."""
    tail = name_or_arn.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    for logical_id in sorted(logical_ids, key=len, reverse=True):
        if tail == logical_id or tail.startswith(f"{logical_id}-"):
            return f"arn:{logical_id}"
    return name_or_arn


# -- what a function's policy grants --------------------------------------------------------------------------------


def granted(function: Function) -> set[Permission]:
    """Every (action, resource) the function's inline policy statements allow, resources as logical ids."""
    found: set[Permission] = set()
    for policy in function.policies:
        if not isinstance(policy, dict) or "Statement" not in policy:
            raise ValueError(f"{function.logical_id}: only inline policy statements are checked, not {policy!r}")
        for statement in policy["Statement"]:
            if statement.get("Effect") != "Allow" or "Condition" in statement or "NotAction" in statement:
                raise ValueError(f"{function.logical_id}: only unconditional Allow statements are checked")
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            found |= {Permission(action, _policy_resource(r)) for action in actions for r in resources}
    return found


def _policy_resource(value: Any) -> str:
    if value == "*":
        return "*"
    if isinstance(value, dict) and "Ref" in value:
        return f"arn:{value['Ref']}"  # a secret's, a topic's Ref is its ARN
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        return f"arn:{logical_id}" if attribute == "Arn" else f"arn:{logical_id}.{attribute}"
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = str(value["Fn::Sub"])
        if text.startswith("${") and "}" in text:
            reference, rest = text[2:].split("}", 1)
            logical_id, _, attribute = reference.partition(".")
            return (f"arn:{logical_id}" if attribute in ("", "Arn") else f"arn:{logical_id}.{attribute}") + rest
    raise ValueError(f"a policy resource this check cannot read: {value!r}")


def allows(grants: set[Permission], needed: Permission) -> bool:
    return any(g.action == needed.action and fnmatch.fnmatchcase(needed.resource, g.resource) for g in grants)


# -- recording ------------------------------------------------------------------------------------------------------


class CallRecorder:
    """Every AWS call made while a function's handler runs, as (function, permission), from botocore itself."""

    def __init__(self, template: dict[str, Any] | None = None) -> None:
        self.seen: set[tuple[str, Permission]] = set()
        self._lock = threading.Lock()
        self._logical_ids = tuple((template or load_template())["Resources"])

    def install(self) -> None:
        from botocore.client import BaseClient  # noqa: PLC0415 - only when recording

        # Every call goes through this private method, which botocore's stubs leave out.
        original = BaseClient._make_api_call  # type: ignore[attr-defined]
        recorder = self

        def recording(client: Any, operation: str, params: Mapping[str, Any]) -> Any:
            function = RUNNING_FUNCTION.get()
            if function is not None:
                recorder.record(function, client.meta.service_model.service_name, operation, params)
            return original(client, operation, params)

        BaseClient._make_api_call = recording  # type: ignore[attr-defined]

    def record(self, function: str, service: str, operation: str, params: Mapping[str, Any]) -> None:
        with self._lock:
            for permission in permissions_for(service, operation, params, self._logical_ids):
                self.seen.add((function, permission))

    def dump(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = sorted([function, p.action, p.resource] for function, p in self.seen)
        path.write_text(json.dumps(rows), encoding="utf-8")


def load(paths: Iterator[Path] | list[Path]) -> set[tuple[str, Permission]]:
    seen = set()
    for path in paths:
        for function, action, resource in json.loads(path.read_text(encoding="utf-8")):
            seen.add((function, Permission(action, resource)))
    return seen


# -- the verdict ----------------------------------------------------------------------------------------------------

# Granted, and needed, but not by a call of the function's code: each with its reason.
NOT_CALLED_BY_CODE: dict[tuple[str, Permission], str] = {
    **{
        ("OutboxRelayFunction", Permission(f"dynamodb:{action}", "arn:ConsentTable.StreamArn")): (
            "Lambda's event source mapping reads the table's stream with the function's role"
        )
        for action in ("DescribeStream", "GetRecords", "GetShardIterator", "ListStreams")
    },
    ("OutboxRelayFunction", Permission("sqs:SendMessage", "arn:OutboxRelayFailureQueue")): (
        "Lambda's event source mapping sends a discarded batch to the on-failure destination with the function's role"
    ),
    **{
        (function, Permission("kms:Decrypt", "arn:ConsentKey")): (
            "DynamoDB and Secrets Manager decrypt the table's and the secrets' keys under the stack's key as the caller"
        )
        for function in (
            "CreateCompanyFunction",
            "ConsentStatusFunction",
            "CreateConnectionFunction",
            "RevokeFunction",
            "WebhookHandlerFunction",
            "ReconcileFunction",
            "LifecycleFunction",
        )
    },
    ("OutboxRelayFunction", Permission("kms:Decrypt", "arn:ConsentKey")): (
        "the event source mapping reads the stream (under the stack's key) with the function's role"
    ),
    ("OutboxRelayFunction", Permission("kms:GenerateDataKey", "arn:ConsentKey")): (
        "the event source mapping sends to the failure queue (under the stack's key) with the function's role"
    ),
}


@dataclass
class Verdict:
    denied: list[str]
    unused: list[str]

    @property
    def ok(self) -> bool:
        return not self.denied and not self.unused

    def report(self) -> str:
        lines = []
        if self.denied:
            lines.append("AWS would deny these calls (the function's policy in template.yaml lacks them):")
            lines += [f"  - {line}" for line in self.denied]
        if self.unused:
            lines.append("Granted but never used by any test's call (remove them, or list why in NOT_CALLED_BY_CODE):")
            lines += [f"  - {line}" for line in self.unused]
        return "\n".join(lines)


def judge(seen: set[tuple[str, Permission]], *, complete: bool, template: dict[str, Any] | None = None) -> Verdict:
    """Every recorded call against its function's policy; with `complete` (the whole suite ran), also every grant
    against the recorded calls."""
    by_function = {f.logical_id: f for f in functions(template or load_template())}
    denied = sorted(
        f"{function}: {permission}"
        for function, permission in seen
        if function not in by_function or not allows(granted(by_function[function]), permission)
    )
    unused: list[str] = []
    if complete:
        for logical_id, function in by_function.items():
            used = {p for f, p in seen if f == logical_id}
            for grant in sorted(granted(function)):
                if (logical_id, grant) in NOT_CALLED_BY_CODE:
                    continue
                if not any(u.action == grant.action and fnmatch.fnmatchcase(u.resource, grant.resource) for u in used):
                    unused.append(f"{logical_id}: {grant}")
    return Verdict(denied, unused)
