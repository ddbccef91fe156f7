"""Running the template's functions in-process the way Lambda would: a Lambda context with a real deadline,
handlers loaded from their folders, and the events their schedules send. (The events API Gateway invokes them
with: `consent_dev.gateway`.)"""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from consent_dev.iam import RUNNING_FUNCTION
from consent_dev.template import PSEUDO_PARAMETERS, Schedule, functions, parameter_defaults, resolve

Handler = Callable[..., dict[str, Any]]


class LambdaContext:
    """The parts of Lambda's context object that our code and Powertools read; the deadline is real."""

    def __init__(self, function_name: str, *, timeout_seconds: float = 29.0, memory_mb: int = 512) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:eu-west-2:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@lru_cache(maxsize=32)
def load_module(code_uri: Path, module_name: str = "app") -> ModuleType:
    """Import a function's module from its folder, as Lambda does (the folder is the code root)."""
    file = code_uri / f"{module_name.replace('.', '/')}.py"
    spec = importlib.util.spec_from_file_location(f"fn_{code_uri.name}_{module_name}", file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {file}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_handler(code_uri: Path, handler: str = "app.lambda_handler") -> Handler:
    """A function's handler, e.g. `app.lambda_handler` of its folder. While it runs, `RUNNING_FUNCTION` names the
    template's function (so the AWS calls it makes are checked against that function's policy)."""
    module_name, attribute = handler.rsplit(".", 1)
    function = getattr(load_module(code_uri, module_name), attribute)
    assert callable(function)
    logical_id = _function_at(Path(code_uri))

    @functools.wraps(function)
    def running(*args: Any, **kwargs: Any) -> Any:
        token = RUNNING_FUNCTION.set(logical_id)
        try:
            return function(*args, **kwargs)
        finally:
            RUNNING_FUNCTION.reset(token)

    return running


def _function_at(code_uri: Path) -> str | None:
    folder = code_uri.resolve()
    return next((f.logical_id for f in functions() if f.code_uri.resolve() == folder), None)


def parse_body(result: Mapping[str, Any]) -> Any:
    body = result.get("body") or ""
    if result.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body) if body else None


def scheduled_event(schedule: Schedule, now: datetime, refs: Mapping[str, Any] | None = None) -> Any:
    """What `schedule` invokes its function with when it fires at `now`, as AWS sends it: an EventBridge rule
    (`Schedule`) sends its `Input` if it has one (nothing else then), else EventBridge's "Scheduled Event"; an
    EventBridge Scheduler schedule (`ScheduleV2`) sends its `Input`, else Scheduler's default notification.
    `refs` resolve the template's intrinsics (by default: the parameters' defaults, `PSEUDO_PARAMETERS`)."""
    known: dict[str, Any] = {**PSEUDO_PARAMETERS, **parameter_defaults(), **(refs or {})}
    properties = {
        name: resolve(schedule.properties[name], known)
        for name in ("Input", "Name", "GroupName")
        if schedule.properties.get(name) is not None
    }
    if "Input" in properties:
        return json.loads(str(properties["Input"]))
    region, account = known["AWS::Region"], known["AWS::AccountId"]
    name = properties.get("Name") or f"{schedule.function}{schedule.event}"
    detail: Any
    if schedule.type == "ScheduleV2":
        group = properties.get("GroupName") or "default"
        resource = f"arn:aws:scheduler:{region}:{account}:schedule/{group}/{name}"
        source, detail = "aws.scheduler", "{}"  # Scheduler's default notification: its detail is a string
    else:
        resource = f"arn:aws:events:{region}:{account}:rule/{name}"
        source, detail = "aws.events", {}
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": source,
        "account": account,
        "time": f"{now.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}",
        "region": region,
        "resources": [resource],
        "detail": detail,
    }
