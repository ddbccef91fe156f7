"""One cold start, in a fresh interpreter: `python cold_child.py <job.json>`.

`function` jobs import the function's module from its folder, as Lambda's runtime does, and serve its first
event; `floor` jobs only import boto3 and create the AWS clients the function uses; `framework` jobs do the floor's
work and import the libraries every API function builds on (pydantic, Powertools' resolver, Logger, Metrics).
Each prints one line, `BENCH {json}`, with the times measured from the moment the parent spawned this process
(CLOCK_MONOTONIC is shared by every process), so interpreter start-up counts for all alike, and the CPU time this
process used (which other processes on a busy machine change less). A job's `path` goes first on
`sys.path`: for a run as shipped (`python -I -S`), the built layer and the runtime's own packages only.

Only the standard library is imported before the measured work."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import uuid
from typing import Any


class LambdaContext:
    """What Powertools and the handlers read from Lambda's context object."""

    def __init__(self, function_name: str, timeout_seconds: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:eu-west-2:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "bench"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def function(job: dict[str, Any]) -> dict[str, Any]:
    module_name, handler_name = job["handler"].rsplit(".", 1)
    sys.path.insert(0, job["code_uri"])  # Lambda's task root comes first on the path
    spec = importlib.util.spec_from_file_location(module_name, f"{job['code_uri']}/{module_name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler = getattr(module, handler_name)
    imported = time.monotonic()
    result = handler(job["event"], LambdaContext(job["function"], job["timeout"]))
    answered, cpu = time.monotonic(), time.process_time()
    return {
        "import_ms": (imported - job["spawned"]) * 1000,
        "first_request_ms": (answered - imported) * 1000,
        "total_ms": (answered - job["spawned"]) * 1000,
        "cpu_ms": cpu * 1000,
        "status": result.get("statusCode") if isinstance(result, dict) else None,
        "clients": sorted(_aws_clients()),
        "modules": len(sys.modules),
        "max_rss_mb": _peak_rss_mb(),
    }


def floor(job: dict[str, Any]) -> dict[str, Any]:
    import boto3  # noqa: PLC0415 - the measured work
    from botocore.config import Config  # noqa: PLC0415

    config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 3})
    clients = [boto3.client(service, config=config) for service in job["clients"]]
    done, cpu = time.monotonic(), time.process_time()
    return {
        "total_ms": (done - job["spawned"]) * 1000,
        "cpu_ms": cpu * 1000,
        "clients": len(clients),
        "modules": len(sys.modules),
        "max_rss_mb": _peak_rss_mb(),
    }


def framework(job: dict[str, Any]) -> dict[str, Any]:
    """The floor's work, then what every API function imports before a line of ours runs."""
    measured = floor(job)
    import pydantic  # noqa: PLC0415 - the measured work
    from aws_lambda_powertools import Logger, Metrics  # noqa: PLC0415
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver  # noqa: PLC0415

    class First(pydantic.BaseModel):  # the first model builds pydantic's schema machinery
        value: int

    APIGatewayHttpResolver(enable_validation=True)
    Logger()
    Metrics(namespace="bench")
    done, cpu = time.monotonic(), time.process_time()
    measured.update(total_ms=(done - job["spawned"]) * 1000, cpu_ms=cpu * 1000, modules=len(sys.modules))
    return measured


def _peak_rss_mb() -> float:
    # VmHWM, not getrusage: ru_maxrss survives exec, so it would report the forked parent's size.
    with open("/proc/self/status", encoding="ascii") as status:
        peak = next(line for line in status if line.startswith("VmHWM:"))
    return int(peak.split()[1]) / 1024


def _aws_clients() -> set[str]:
    """The services of the boto3 clients this process created (looked up after the measured work)."""
    if "botocore.client" not in sys.modules:
        return set()
    import gc  # noqa: PLC0415

    from botocore.client import BaseClient  # noqa: PLC0415

    return {o.meta.service_model.service_name for o in gc.get_objects() if isinstance(o, BaseClient)}


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        job = json.load(handle)
    sys.path[:0] = job.get("path", [])
    measured = {"function": function, "floor": floor, "framework": framework}[job["kind"]](job)
    sys.stdout.flush()
    print("BENCH " + json.dumps(measured), flush=True)
