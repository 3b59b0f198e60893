"""python -m bench.catalog [--db sqlite,mariadb,postgres] [--seeds 5] [--examples 150]
[--fixed-examples 1000] [--targets wiki,tasks]

The catalog's acceptance measurement (README, "The catalog"): for every story in
``targets/`` and every database, run the buggy twin once per seed and record, for each
finding, whether the kinds are exactly the ones the target declares for that database,
the examples it took to find each (``found_after``), and the minimized scenario's size
(concurrent requests, init requests, yields); then run the fixed twin for
``--fixed-examples`` examples and count its findings (the goal is none), and say after
how many examples it had explored every writing endpoint pair at depth ≤ 2
(fuzzer/search/plan/pairs.py). Prints a markdown table and writes ``reports/catalog.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

from fuzzer import api
from fuzzer.execute.instrument import load_target
from fuzzer.report import reporting

from .__main__ import available

STORIES = [
    "profile",
    "wiki",
    "tasks",
    "jobs",
    "dashboard",
    "pricing",
    "portal",
    "stock",
    "oncall",
    "tags",
    "social",
    "forum",
    "lastitem",
    "inbox",
    "gallery",
]


def measure(name: str, db: str, seeds: int, examples: int, fixed_examples: int) -> dict[str, Any]:
    buggy = load_target(f"targets.{name}:buggy")
    expected = sorted(buggy.expected(db))
    runs = []
    for seed in range(1, seeds + 1):
        started = time.monotonic()
        report = api.run(
            buggy, db=db, max_examples=examples, seed=seed, report_dir=None, example_db=None
        )
        runs.append(
            {
                "seed": seed,
                "seconds": round(time.monotonic() - started, 1),
                "exact": sorted({f.kind for f in report.findings}) == expected,
                "coverage": report.result.coverage.to_json() if report.result.coverage else None,
                "findings": [
                    {
                        "kind": f.kind,
                        "endpoints": list(f.endpoints),
                        "found_after": f.found_after,
                        "requests": len(f.scenario.requests),
                        "init": len(f.scenario.init),
                        "yields": sum(len(g.yields) for g in f.scenario.schedule),
                        "flaky": f.flaky,
                    }
                    for f in report.findings
                ],
            }
        )
    started = time.monotonic()
    fixed = api.run(
        f"targets.{name}:fixed",
        db=db,
        max_examples=fixed_examples,
        seed=1,
        report_dir=None,
        example_db=None,
    )
    return {
        "target": name,
        "db": db,
        "expected": expected,
        "runs": runs,
        "fixed": {
            "examples": fixed.result.examples,
            "seconds": round(time.monotonic() - started, 1),
            "findings": [f.kind for f in fixed.findings],
            "unknown": dict(fixed.result.unknown),
            "coverage": fixed.result.coverage.to_json() if fixed.result.coverage else None,
        },
    }


def row(result: dict[str, Any]) -> str:
    runs = result["runs"]
    exact = sum(r["exact"] for r in runs)
    cells = []
    for kind in result["expected"] or ["—"]:
        found = [f for r in runs for f in r["findings"] if f["kind"] == kind]
        if not found:
            cells.append(f"{kind}: not found" if kind != "—" else "nothing (as declared)")
            continue
        after = sorted(f["found_after"] for f in found)
        sizes = sorted({(f["requests"], f["init"], f["yields"]) for f in found})
        size = ", ".join(
            f"{n} req" + (f" + {i} init" if i else "") + f", {y} yield{'s' if y != 1 else ''}"
            for n, i, y in sizes
        )
        cells.append(
            f"{kind}: median {statistics.median(after):g} examples "
            f"(min {after[0]}, max {after[-1]}); {size}"
        )
    fixed = result["fixed"]
    clean = "clean" if not fixed["findings"] else "FOUND " + ", ".join(fixed["findings"])
    return (
        f"| {result['target']} | {result['db']} | {exact}/{len(runs)} exact | "
        f"{'<br>'.join(cells)} | {covered(fixed.get('coverage'))} | "
        f"{clean} in {fixed['examples']} examples |"
    )


def covered(coverage: dict[str, Any] | None) -> str:
    """When the fixed twin's run had explored every endpoint pair at depth ≤ 2 (on the
    fixed twin no finding ends the search early), or how far it got."""
    if not coverage:
        return "—"
    if coverage["done_after"] is not None:
        return f"{coverage['pairs']} pairs after {coverage['done_after']} examples"
    return f"{coverage['explored']} of {coverage['pairs']} pairs"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.catalog")
    parser.add_argument("--db", default="sqlite,mariadb,postgres")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--examples", type=int, default=150)
    parser.add_argument("--fixed-examples", type=int, default=1000)
    parser.add_argument("--targets", default=",".join(STORIES))
    parser.add_argument("--out", default="reports")
    args = parser.parse_args()
    results = []
    for db in args.db.split(","):
        why = available(db)
        if why:
            reporting.note(why)
            continue
        for name in args.targets.split(","):
            reporting.note(f"targets.{name} on {db}")
            results.append(measure(name, db, args.seeds, args.examples, args.fixed_examples))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "catalog.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
    lines = [
        "| target | database | runs | examples to find, minimized size | all pairs at depth ≤ 2 "
        "| fixed twin |",
        "|---|---|---|---|---|---|",
        *(row(r) for r in results),
    ]
    reporting.text("\n".join(lines))


if __name__ == "__main__":
    main()
