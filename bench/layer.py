"""Layer size: the built Lambda layer unzipped, by distribution (and its top-level packages), with what pulled
each one in and whether Lambda's Python runtime already provides it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from email.parser import Parser
from importlib.util import cache_from_source
from pathlib import Path
from typing import Any

from common import Table

ROOT = Path(__file__).resolve().parents[1]
BUILT = ROOT / ".aws-sam" / "build" / "ConsentLayer" / "python"
# In Lambda's python3.13 runtime already (it ships boto3 and what boto3 needs).
IN_RUNTIME = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def built_layer(sam: str | None, workdir: Path) -> tuple[Path, str]:
    """The layer's `python/` folder: `make build`'s if present, else `sam build ConsentLayer` into `workdir`."""
    if BUILT.is_dir():
        return BUILT, "from .aws-sam/build (make build)"
    if not sam:
        raise RuntimeError("no .aws-sam/build and no SAM CLI: run `make build`, or pass --sam")
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(  # noqa: S603 - the SAM CLI on our own template
        [sam, "build", "ConsentLayer", "--template-file", str(ROOT / "template.yaml"), "--build-dir", str(workdir)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return workdir / "ConsentLayer" / "python", "sam build ConsentLayer into a temporary folder"


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _requirement_name(requirement: str) -> str:
    return _normalize(re.split(r"[\s<>=!~\[(;]", requirement.strip(), maxsplit=1)[0])


def _wanted() -> dict[str, set[str]]:
    """The layer's own requirements (shared/requirements.txt), with the extras asked for."""
    wanted: dict[str, set[str]] = {}
    requirements = ROOT / "shared" / "requirements.txt"
    lines = requirements.read_text(encoding="utf-8").splitlines() if requirements.is_file() else []
    for line in (raw.split("#")[0].strip() for raw in lines):
        if line:
            extras = re.search(r"\[([^\]]+)\]", line)
            wanted[_requirement_name(line)] = {e.strip() for e in extras.group(1).split(",")} if extras else set()
    return wanted


def measure(python: Path) -> list[dict[str, Any]]:
    """Bytes per distribution (its RECORD's files and their .pyc, metadata included); the rest is the project's.
    `required_by` follows Requires-Dist, counting an extra's requirements only where that extra was asked for."""
    wanted = _wanted()
    distributions: list[dict[str, Any]] = []
    claimed: set[Path] = set()
    requires: dict[str, set[str]] = {}
    for info in sorted(python.glob("*.dist-info")):
        metadata = Parser().parsestr((info / "METADATA").read_text(encoding="utf-8"))
        name = _normalize(metadata["Name"])
        files = [python / line.split(",")[0] for line in (info / "RECORD").read_text(encoding="utf-8").splitlines()]
        # with the bytecode the layer's build compiled for them (not in RECORD: pip compiles nothing there)
        files += [Path(cache_from_source(str(f))) for f in files if f.suffix == ".py"]
        files = [f for f in files if f.is_file()]
        claimed.update(files)
        tops = sorted({f.relative_to(python).parts[0] for f in files} - {info.name, "bin", "__pycache__"})
        tops = [t.removesuffix(".py") for t in tops if not t.endswith((".dist-info", ".data", ".pth"))]
        distributions.append({"name": name, "bytes": sum(f.stat().st_size for f in files), "packages": tops})
        for requirement in metadata.get_all("Requires-Dist") or []:
            required, _, marker = requirement.partition(";")
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)", marker)
            if extra is None or extra.group(1) in wanted.get(name, set()):
                requires.setdefault(_requirement_name(required), set()).add(name)
    present = {d["name"] for d in distributions}
    for distribution in distributions:
        direct = ["requirements.txt"] if distribution["name"] in wanted else []
        distribution["required_by"] = direct + sorted(requires.get(distribution["name"], set()) & present)
        distribution["in_lambda_runtime"] = distribution["name"] in IN_RUNTIME
    for entry in sorted(python.iterdir()):
        files = [entry] if entry.is_file() else list(entry.rglob("*"))
        unclaimed = [f for f in files if f.is_file() and f not in claimed]
        if unclaimed and entry.name != "requirements.txt":
            distributions.append(
                {
                    "name": entry.name,
                    "bytes": sum(f.stat().st_size for f in unclaimed),
                    "packages": [entry.name],
                    "required_by": ["(the project)"],
                    "in_lambda_runtime": False,
                }
            )
    return sorted(distributions, key=lambda d: d["bytes"], reverse=True)


def run(sam: str | None) -> tuple[Table, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="consent-layer-") as tmp:
        python, source = built_layer(sam, Path(tmp))
        distributions = measure(python)
        total = _size(python)
    table = Table(
        f"Layer size, unzipped ({source})",
        ["distribution", "packages", "KB", "share", "pulled in by", "in Lambda runtime"],
    )
    for d in distributions:
        table.add(
            d["name"],
            ", ".join(d["packages"]),
            round(d["bytes"] / 1024),
            f"{d['bytes'] / total:.0%}",
            ", ".join(d["required_by"]),
            "yes" if d["in_lambda_runtime"] else "",
        )
    duplicated = sum(d["bytes"] for d in distributions if d["in_lambda_runtime"])
    table.notes.append(f"total {total / 2**20:.1f} MB; {duplicated / 2**20:.1f} MB of it duplicates Lambda's runtime")
    pyc = sum(1 for _ in python.rglob("*.pyc"))
    modules = sum(1 for _ in python.rglob("*.py"))
    table.notes.append(
        f"{pyc} .pyc files for {modules} modules"
        + (
            ""
            if pyc >= modules
            else ": a cold start compiles each module without one that it imports (/opt is read-only)"
        )
    )
    results = {
        "source": source,
        "total_bytes": total,
        "duplicates_runtime_bytes": duplicated,
        "pyc_files": pyc,
        "distributions": distributions,
    }
    return table, results
