"""Cold start of each function in template.yaml: a fresh interpreter imports the function's module and serves
its first event (against the embedded moto server and the Codat simulator over HTTP, with the environment the
template gives the function and its secrets in moto's Secrets Manager), beside the floor measured in the same
run: a fresh interpreter that only imports boto3 and creates the AWS clients the function created.

Each function is measured twice: from this checkout (the venv's site-packages, `shared/` installed editable),
and as shipped: the layer `shared/Makefile` builds, for this machine's architecture, beside only the runtime's
own packages (boto3 and its dependencies), in an interpreter without site-packages (`python -I -S`), as in
Lambda. Each beside its own floor."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from consent.observability import TRACING_SUBSEGMENTS
from consent.services import aws_client
from consent_dev import budget
from consent_dev.template import Function, function_environment, functions

from common import Stack, Table, ratio

CHILD = Path(__file__).with_name("cold_child.py")
ROOT = Path(__file__).resolve().parents[1]

# The first event of each function: the request its callers make most, in the state it needs.
REPRESENTATIVE = {
    "CreateCompanyFunction": "POST /companies",
    "ConsentStatusFunction": "GET /companies/{companyId}",
    "CreateConnectionFunction": "POST /companies/{companyId}/connections",
    "RevokeFunction": "DELETE /companies/{companyId}/connections/{connectionId}",
    "WebhookHandlerFunction": "webhook connection.connected",
}
# Lambda's own: the python3.13 runtime provides boto3 and its dependencies; the layer brings everything else.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
# `python -X importtime`: "import time: <self µs> | <cumulative µs> | <indent><module>".
IMPORTTIME_LINE = re.compile(r"^import time:\s+(?P<self>\d+) \|\s+\d+ \|\s*(?P<module>\S+)$")
SPLIT_PACKAGES = ("aws_lambda_powertools", "consent")
LAYER_ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def _lambda_environment(function: Function, stack: Stack) -> dict[str, str]:
    """The function's template environment on this stack, and what Lambda itself sets."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108 - a fallback HOME, nothing written there
        "LANG": "C.UTF-8",
        **stack.moto.environment(),
        **function_environment(function, stack.refs()),
        # No X-Ray daemon locally: the stand-in for Lambda's tracing (Powertools then skips patching).
        "POWERTOOLS_TRACE_DISABLED": "1",
        "AWS_LAMBDA_FUNCTION_NAME": function.logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "LAMBDA_TASK_ROOT": str(function.code_uri),
    }


def _events(function: Function, stack: Stack) -> Callable[[], dict[str, Any]] | None:
    """A factory of first events for `function` (each fresh, in the state it needs), or None if unknown."""
    world, _ = stack.world()
    if function.logical_id in REPRESENTATIVE:
        case = next(c for c in budget.CASES if c.name == REPRESENTATIVE[function.logical_id])
        requests = case.prepare(world)
        return lambda: requests().to_event(world.api)[1]
    if function.logical_id == "OutboxRelayFunction":
        company_id = world.company()
        event = _stream_event(stack, company_id)
        return lambda: event
    if function.logical_id == "ReconcileFunction":
        world.linked_connection(world.company())
        return _scheduled_event
    return None


def _stream_event(stack: Stack, company_id: str) -> dict[str, Any]:
    """The company's ledger entries as the table's stream delivers them to the relay."""
    items = aws_client("dynamodb").query(
        TableName=stack.settings.table_name,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :ledger)",
        ExpressionAttributeValues={":pk": {"S": f"COMPANY#{company_id}"}, ":ledger": {"S": "LEDGER#"}},
    )["Items"]
    stream_arn = stack.deployed.stream_arns["ConsentTable"]
    records = [
        {
            "eventID": uuid.uuid4().hex,
            "eventName": "INSERT",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": stream_arn.split(":")[3],
            "dynamodb": {
                "ApproximateCreationDateTime": int(time.time()),
                "Keys": {"PK": item["PK"], "SK": item["SK"]},
                "NewImage": item,
                "SequenceNumber": str(1000 + position),
                "SizeBytes": len(json.dumps(item)),
                "StreamViewType": "NEW_IMAGE",
            },
            "eventSourceARN": stream_arn,
        }
        for position, item in enumerate(items)
    ]
    return {"Records": records}


def _scheduled_event() -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": "eu-west-2",
        "resources": ["arn:aws:events:eu-west-2:123456789012:rule/ReconcileSchedule"],
        "detail": {},
    }


def _spawn(
    job: dict[str, Any], env: dict[str, str], workdir: Path, *, isolated: bool = False, importtime: bool = False
) -> dict[str, Any]:
    path = workdir / f"{uuid.uuid4().hex}.json"
    started = job["spawned"] = time.monotonic()  # the clock starts here (writing the job takes microseconds)
    path.write_text(json.dumps(job), encoding="utf-8")
    # -P: the bench's own folder stays off the path, as it is in Lambda; -I -S: no site-packages at all.
    flags = ["-I", "-S"] if isolated else ["-P"]
    if importtime:
        flags += ["-X", "importtime"]
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, *flags, str(CHILD), str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    line = next((line for line in reversed(done.stdout.splitlines()) if line.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"cold start child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    measured: dict[str, Any] = json.loads(line.removeprefix("BENCH "))
    measured["wall_ms"] = (time.monotonic() - started) * 1000  # with interpreter shutdown, for reference
    if importtime:
        measured["imports"] = _import_times(done.stderr)
    return measured


def _import_times(stderr: str) -> dict[str, int]:
    """Each module's own import time (µs, its children excluded) from `python -X importtime`'s report."""
    times: dict[str, int] = {}
    for line in stderr.splitlines():
        found = IMPORTTIME_LINE.match(line)
        if found:
            times[found.group("module")] = int(found.group("self"))
    return times


def _package(module: str) -> str:
    """What an import is charged to: the top-level package, or its subpackage for Powertools and ours."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] in SPLIT_PACKAGES and len(parts) > 1 else parts[0]


def most_expensive_imports(function: dict[str, int], floor: dict[str, int], count: int = 10) -> list[list[Any]]:
    """The `count` packages whose modules cost the function most to import beyond what its floor imports
    anyway (boto3 and botocore): [[package, ms], …], the most expensive first."""
    by_package: dict[str, int] = {}
    for module, micros in function.items():
        if module not in floor:
            by_package[_package(module)] = by_package.get(_package(module), 0) + micros
    ranked = sorted(by_package.items(), key=lambda kv: -kv[1])[:count]
    return [[package, round(micros / 1000, 1)] for package, micros in ranked]


def _shipped_layer(workdir: Path) -> tuple[Path | None, str]:
    """The layer as `sam build` makes it (shared/Makefile), from this checkout and for this machine's architecture,
    built into `workdir` (pip downloads the wheels); None, and why, when it cannot be built."""
    architecture = LAYER_ARCHITECTURES.get(platform.machine().lower())
    if architecture is None:
        return None, f"no Lambda architecture for this machine ({platform.machine()})"
    env = {**os.environ, "ARTIFACTS_DIR": str(workdir / "layer"), "LAYER_ARCHITECTURE": architecture}
    built = subprocess.run(  # noqa: S603 - our own Makefile
        ["make", "-s", "-f", str(ROOT / "shared" / "Makefile"), "build-ConsentLayer", f"PYTHON={sys.executable}"],  # noqa: S607
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if built.returncode != 0:
        return None, f"shared/Makefile failed: {built.stderr.strip().splitlines()[-1:]}"
    return workdir / "layer" / "python", f"shared/Makefile for {architecture}"


def _runtime_packages(workdir: Path) -> Path:
    """A folder with only what Lambda's runtime adds to the standard library: links to this venv's boto3 & co."""
    runtime = workdir / "runtime"
    runtime.mkdir(exist_ok=True)
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec is not None, f"{name} is not installed"
        location = Path(spec.submodule_search_locations[0] if spec.submodule_search_locations else str(spec.origin))
        (runtime / location.name).symlink_to(location)
    return runtime


def _as_shipped(
    job: dict[str, Any],
    floor_job: dict[str, Any],
    events: Callable[[], dict[str, Any]],
    *,
    env: dict[str, str],
    workdir: Path,
    path: list[str],
    runtime: str,
    runs: int,
) -> dict[str, Any]:
    """The function as shipped (the built layer beside the runtime's packages), its floor and the framework
    floor, `runs` times each; then one more start of the function and its floor under -X importtime (which slows
    imports: not timed) for the imports that cost most beyond the floor."""
    shipped, floor, framework, traced_on = [], [], [], []
    with_subsegments = {**env, TRACING_SUBSEGMENTS: "true"}
    for _ in range(runs):
        shipped.append(_spawn({**job, "event": events(), "path": path}, env, workdir, isolated=True))
        traced_on.append(_spawn({**job, "event": events(), "path": path}, with_subsegments, workdir, isolated=True))
        floor.append(_spawn({**floor_job, "path": [runtime]}, env, workdir, isolated=True))
        framework.append(_spawn({**floor_job, "kind": "framework", "path": path}, env, workdir, isolated=True))
    traced = _spawn({**job, "event": events(), "path": path}, env, workdir, isolated=True, importtime=True)
    traced_floor = _spawn({**floor_job, "path": [runtime]}, env, workdir, isolated=True, importtime=True)
    floor_ms = statistics.median(f["total_ms"] for f in floor)
    result: dict[str, Any] = {
        "imports_beyond_floor": most_expensive_imports(traced["imports"], traced_floor["imports"]),
        "as_shipped_ms": statistics.median(s["total_ms"] for s in shipped),
        "as_shipped_floor_ms": floor_ms,
        # The module's import alone (no first request) against the same floor.
        "as_shipped_import_ms": statistics.median(s["import_ms"] for s in shipped),
        # What no code of ours can go below: the floor plus pydantic, Powertools' resolver, Logger and Metrics.
        "as_shipped_framework_ms": statistics.median(f["total_ms"] for f in framework),
        # The TracingSubsegments parameter on: Powertools' Tracer and the X-Ray SDK imported.
        "as_shipped_subsegments_ms": statistics.median(t["total_ms"] for t in traced_on),
        "as_shipped_status": [s["status"] for s in shipped],
        "as_shipped_runs": len(shipped),
    }
    for name in ("", "_import", "_framework", "_subsegments"):
        result[f"as_shipped{name}_ratio"] = ratio(result[f"as_shipped{name}_ms"], floor_ms)
    return result


def run(stack: Stack, *, runs: int, shipped_runs: int) -> tuple[Table, dict[str, Any]]:
    table = Table(
        f"Cold start (ms, median of {runs}; spawn → first response; floor = fresh interpreter importing boto3 and "
        "creating the same clients)",
        [
            "function",
            "floor",
            "cold start",
            "ratio",
            "CPU ratio",
            "import",
            "1st request",
            "as shipped",
            "its floor",
            "ratio",
            "import ratio",
            "framework ratio",
            "subsegments ratio",
            "modules",
            "MB",
        ],
    )
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="consent-bench-") as tmp:
        workdir = Path(tmp)
        layer, layer_source = _shipped_layer(workdir)
        runtime = _runtime_packages(workdir)
        for function in functions():
            stack.fresh_table()
            events = _events(function, stack)
            if events is None:
                table.add(function.logical_id, *["-"] * (len(table.columns) - 1))
                table.notes.append(f"{function.logical_id}: no representative event in bench/cold_start.py yet")
                continue
            env = _lambda_environment(function, stack)
            job = {
                "kind": "function",
                "function": function.logical_id,
                "code_uri": str(function.code_uri),
                "handler": function.handler,
                "timeout": 29.0,
            }
            # A first, unmeasured start writes the bytecode caches and says which AWS clients the function makes.
            first = _spawn({**job, "event": events()}, env, workdir)
            floor_job = {"kind": "floor", "clients": first["clients"]}
            cold, floor = [], []
            for _ in range(runs):
                cold.append(_spawn({**job, "event": events()}, env, workdir))
                floor.append(_spawn(dict(floor_job), env, workdir))
            result = {
                "clients": first["clients"],
                "status": [c["status"] for c in cold],
                "floor_ms": statistics.median(f["total_ms"] for f in floor),
                "cold_ms": statistics.median(c["total_ms"] for c in cold),
                "import_ms": statistics.median(c["import_ms"] for c in cold),
                "first_request_ms": statistics.median(c["first_request_ms"] for c in cold),
                "modules": cold[-1]["modules"],
                "floor_modules": floor[-1]["modules"],
                "max_rss_mb": round(max(c["max_rss_mb"] for c in cold), 1),
                "floor_max_rss_mb": round(max(f["max_rss_mb"] for f in floor), 1),
                "runs": {"cold_ms": [c["total_ms"] for c in cold], "floor_ms": [f["total_ms"] for f in floor]},
            }
            result["ratio"] = ratio(result["cold_ms"], result["floor_ms"])
            result["cold_cpu_ms"] = statistics.median(c["cpu_ms"] for c in cold)
            result["floor_cpu_ms"] = statistics.median(f["cpu_ms"] for f in floor)
            result["cpu_ratio"] = ratio(result["cold_cpu_ms"], result["floor_cpu_ms"])
            if layer is not None:
                result.update(
                    _as_shipped(
                        job,
                        floor_job,
                        events,
                        env=env,
                        workdir=workdir,
                        path=[str(layer), str(runtime)],
                        runtime=str(runtime),
                        runs=shipped_runs,
                    )
                )
                table.notes.append(
                    f"{function.logical_id.removesuffix('Function')}: ten most expensive imports as shipped beyond "
                    "the floor (ms of their own import time under -X importtime): "
                    + ", ".join(f"{package} {ms}" for package, ms in result["imports_beyond_floor"])
                )
            results[function.logical_id] = result
            table.add(
                function.logical_id.removesuffix("Function"),
                result["floor_ms"],
                result["cold_ms"],
                result["ratio"],
                result["cpu_ratio"],
                result["import_ms"],
                result["first_request_ms"],
                result.get("as_shipped_ms", "-"),
                result.get("as_shipped_floor_ms", "-"),
                result.get("as_shipped_ratio", "-"),
                result.get("as_shipped_import_ratio", "-"),
                result.get("as_shipped_framework_ratio", "-"),
                result.get("as_shipped_subsegments_ratio", "-"),
                result["modules"],
                result["max_rss_mb"],
            )
    clients = (f"{name.removesuffix('Function')}: {', '.join(r['clients']) or 'none'}" for name, r in results.items())
    table.notes.append("AWS clients per function (the floor creates the same): " + "; ".join(clients))
    table.notes.append(
        "POWERTOOLS_TRACE_DISABLED=1 stands in for Lambda's X-Ray (no daemon here); Lambda's init also "
        "patches botocore/httpx for tracing, which this does not measure"
    )
    table.notes.append(
        f"as shipped: {layer_source}: its wheels and .pyc, beside only the runtime's boto3 and dependencies, in "
        f"`python -I -S` (no site-packages), and its floor alike; median of {shipped_runs}"
        if layer is not None
        else f"as shipped: not measured ({layer_source})"
    )
    table.notes.append(
        "import ratio: as shipped, spawn → the module imported (no first request) against the same floor; framework "
        "ratio: a fresh interpreter that does the floor's work and imports pydantic (one model built), Powertools' "
        "resolver, Logger and Metrics, against the same floor: what a function using them cannot go below; subsegments "
        "ratio: the function as shipped with TracingSubsegments on (Powertools' Tracer, the X-Ray SDK)"
    )
    table.notes.append(
        "CPU ratio: the same, in CPU time (interpreter start-up included), which a busy machine disturbs less; "
        "import and 1st request split the cold start; modules and MB (peak RSS) of the function"
    )
    return table, results
