"""`make bench`: the product's performance beside its floors, measured in the same run.

Absolute times on a shared machine are noise; ratios to a floor measured alongside, and call counts, are not.
Prints a table per section and writes the same figures as JSON to `.bench/` (latest.json, and one file per run).

    .venv/bin/python bench/run.py [--quick] [--only calls,warm,...] [--sam PATH] [--out .bench]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common  # noqa: F401 - first: it sets Powertools' environment before anything imports Powertools

# isort: split
import calls
import cold_start
import layer
import reminders
import scale
import warm
from common import Stack, Table, quiet

SECTIONS = ("calls", "journey", "warm", "scale", "burst", "reminders", "cold", "layer")
# Iterations: the full run fits in about five minutes on a 2-core machine, and about a minute more for the reminders'
# 100,000 connections; --quick is for trying the bench.
FULL = {"fakes": 150, "real": 25, "cold": 7, "shipped": 5, "repeats": 3, "connections": 100_000}
QUICK = {"fakes": 50, "real": 8, "cold": 3, "shipped": 1, "repeats": 1, "connections": 10_000}


def _sections(stack: Stack, sizes: dict[str, int], sam: str | None) -> dict[str, Callable[[], tuple[Table, Any]]]:
    return {
        "calls": lambda: calls.per_request(stack),
        "journey": lambda: calls.journey(stack),
        "warm": lambda: warm.run(stack, fake_iterations=sizes["fakes"], real_iterations=sizes["real"]),
        "scale": lambda: scale.company_size(stack, repeats=sizes["repeats"]),
        "burst": lambda: scale.burst(stack),
        "reminders": lambda: reminders.run(stack, connections=sizes["connections"]),
        "cold": lambda: cold_start.run(stack, runs=sizes["cold"], shipped_runs=sizes["shipped"]),
        "layer": lambda: layer.run(sam),
    }


# Cold start as shipped against the floor: the API functions (what a customer waits for) within 1.5x, the
# webhook (Codat waits 15 s, but bursts start many at once) within 1.2x.
COLD_START_GOALS = {
    "CreateCompanyFunction": 1.5,
    "ConsentStatusFunction": 1.5,
    "CreateConnectionFunction": 1.5,
    "RevokeFunction": 1.5,
    "WebhookHandlerFunction": 1.2,
}


def goals(results: dict[str, Any]) -> Table:
    """The performance targets, against what this run measured."""
    table = Table("Goals", ["goal", "measured", "met"])
    if "calls" in results:
        measured = [r for r in results["calls"].values() if "within_budget" in r]
        met = sum(r["within_budget"] for r in measured)
        table.add("call budgets met exactly", f"{met}/{len(measured)} requests", met == len(measured))
    if "cold" in results:
        for name, r in results["cold"].items():
            if name not in COLD_START_GOALS:
                continue
            target = COLD_START_GOALS[name]
            # The goal is as shipped (the built layer beside only the runtime's packages), as Lambda runs it.
            measured = r.get("as_shipped_ratio", r["ratio"])
            how = "as shipped" if "as_shipped_ratio" in r else "from the checkout (layer not built)"
            table.add(
                f"cold start {name.removesuffix('Function')} ≤ {target}x floor (to the first response)",
                f"{measured}x {how} ({r['ratio']}x from the checkout)",
                measured <= target,
            )
            if "as_shipped_import_ratio" in r:
                table.add(
                    f"import {name.removesuffix('Function')} ≤ {target}x floor (the module alone; boto3 on first use)",
                    f"{r['as_shipped_import_ratio']}x as shipped (framework alone {r['as_shipped_framework_ratio']}x)",
                    r["as_shipped_import_ratio"] <= target,
                )
    if "warm" in results:
        over = {name: r["ratio"] for name, r in results["warm"].items() if r["ratio"] > 1.2}
        worst = ", ".join(f"{n} {v}x" for n, v in sorted(over.items(), key=lambda kv: -kv[1])) or "none"
        table.add("warm overhead ≤ 1.2x floor (median)", f"over: {worst}", not over)
    if "reminders" in results:
        table.add(*reminders.goal(results["reminders"]))
    if "journey" in results:
        journey = results["journey"]
        table.add(
            "journey: fewer Codat requests than polling",
            f"{journey['ours']['codat_total']} vs {journey['codat_sample']['codat_total']}",
            journey["ours"]["codat_total"] < journey["codat_sample"]["codat_total"],
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer iterations: to try the bench, not to quote it")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    parser.add_argument("--sam", default=os.environ.get("SAM"), help="the SAM CLI, to build the layer if needed")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / ".bench")
    options = parser.parse_args(argv)
    chosen = [s.strip() for s in options.only.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections: {', '.join(unknown)}")
    sizes = QUICK if options.quick else FULL

    started = time.monotonic()
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_start": os.getloadavg(),
        },
        "iterations": sizes,
        "results": {},
        "seconds": {},
    }
    print(
        f"make bench: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, Python {platform.python_version()}"
        f" ({'quick' if options.quick else 'full'} run). Absolute times here are noise; read the ratios.",
        flush=True,
    )
    rendered: list[str] = []
    stack = Stack.start()
    try:
        sections = _sections(stack, sizes, options.sam)
        for name in chosen:
            section_started = time.monotonic()
            with quiet():
                table, results = sections[name]()
            report["results"][name] = results
            report["seconds"][name] = round(time.monotonic() - section_started, 1)
            rendered.append(table.render())
            print(rendered[-1], flush=True)
    finally:
        stack.stop()
    summary = goals(report["results"])
    rendered.append(summary.render())
    print(rendered[-1])
    report["load_average_at_end"] = os.getloadavg()
    report["total_seconds"] = round(time.monotonic() - started, 1)
    options.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for path in (options.out / f"bench-{stamp}.json", options.out / "latest.json"):
        path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    (options.out / "latest.txt").write_text("".join(rendered), encoding="utf-8")
    print(f"\n{report['total_seconds']:.0f} s. Figures: {options.out / 'latest.json'} (tables: latest.txt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
