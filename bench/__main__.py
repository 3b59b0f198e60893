"""python -m bench [--quick] [--seeds N] [--db sqlite,mariadb] [--targets profile,checkout]"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import pkgutil
import platform
import time
from dataclasses import replace
from typing import Any

import targets
from fuzzer.errors import FuzzerError
from fuzzer.report import reporting
from fuzzer.target.contract import Target

from .measure import Budget, TargetResult, measure_buggy, measure_fixed
from .render import markdown


def discover(names: list[str] | None) -> list[tuple[Target, Target | None]]:
    """Every targets.* module with a `buggy` target that declares findings (and its
    `fixed` twin)."""
    pairs = []
    for info in sorted(pkgutil.iter_modules(targets.__path__), key=lambda m: m.name):
        if names and info.name not in names:
            continue
        module = importlib.import_module(f"targets.{info.name}")
        buggy, fixed = getattr(module, "buggy", None), getattr(module, "fixed", None)
        if not isinstance(buggy, Target) or not (
            buggy.expected_findings or any(buggy.expected_on.values())
        ):
            continue
        for name, target in (("buggy", buggy), ("fixed", fixed)):
            if isinstance(target, Target):
                object.__setattr__(target, "reference", f"targets.{info.name}:{name}")
        pairs.append((buggy, fixed if isinstance(fixed, Target) else None))
    return pairs


def available(db: str) -> str | None:
    """None if the database can be used, else why not."""
    from fuzzer.db import Databases

    try:
        databases = Databases.open(db)
        databases.create()
        databases.drop()
    except (FuzzerError, ImportError, OSError) as exc:
        return f"{db} skipped: {exc}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "--quick", action="store_true", default=os.environ.get("BENCH_QUICK", "") not in ("", "0")
    )
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--db", default=None, help="comma-separated (default sqlite,mariadb)")
    parser.add_argument("--targets", default=None, help="comma-separated module names")
    parser.add_argument("--out", default="reports")
    args = parser.parse_args()
    budget = Budget.quick() if args.quick else Budget()
    if args.seeds:
        budget.seeds = args.seeds
    dbs = (args.db or ("sqlite" if args.quick else "sqlite,mariadb")).split(",")
    names = (
        args.targets.split(",")
        if args.targets
        else (["profile", "checkout"] if args.quick else None)
    )
    notes: list[str] = []
    meta: dict[str, Any] = {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
        "budget": ", ".join(f"{k}={v}" for k, v in vars(budget).items()),
        "notes": notes,
    }
    started = time.monotonic()
    results: list[TargetResult] = []
    for db in dbs:
        why = available(db)
        if why:
            notes.append(why)
            reporting.note(why)
            continue
        for target, fixed in discover(names):
            buggy = replace(target, expected_findings=target.expected(db), expected_on={})
            if not buggy.expected_findings:
                notes.append(f"{target.reference}: no bug expected on {db} at its default level")
                continue
            result = measure_buggy(buggy, db, budget, reporting.note)
            if fixed is not None:
                measure_fixed(fixed, db, budget, result, reporting.note)
            results.append(result)
    meta["seconds"] = round(time.monotonic() - started, 1)
    documents = [r.to_json() for r in results]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench.json"), "w", encoding="utf-8") as handle:
        json.dump({"meta": meta, "results": documents}, handle, indent=2)
    page = markdown(documents, meta) + f"\nThe benchmark took {meta['seconds']} s.\n"
    with open(os.path.join(args.out, "bench.md"), "w", encoding="utf-8") as handle:
        handle.write(page)
    reporting.text(page)


if __name__ == "__main__":
    main()
