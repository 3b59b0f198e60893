"""python -m bench.firsttry [--quick] [--apps microblog,demo] [--examples 300] [--db sqlite]

A first try, as a new user makes it (issue 20, item 9): for each app-shaped target (a
package under ``targets/`` with an app factory), ``fuzzer init`` writes its spec, and
the spec runs unedited. One row per app: how long init took, the spec's length, the
endpoints it kept of the routes it found, the identities it declared, what its setup
ran, the planted races found (by endpoint: any race reported at the endpoint where
one is planted) and after how many examples each was first seen. Prints a markdown
table and writes ``reports/firsttry.json`` and ``reports/firsttry.md``.

``--quick`` (what ``make bench`` runs): the two oldest apps, 100 examples each.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import targets
from fuzzer import api
from fuzzer.errors import FuzzerError
from fuzzer.findings import RACES
from fuzzer.report import reporting

#: Where each app's races are planted (as ``fuzzer init`` names endpoints), from the
#: apps' docstrings. An app-shaped package not listed here is still tried; its row
#: then counts what was found, with no planted races to compare against.
PLANTED: dict[str, tuple[str, ...]] = {
    "microblog": (
        "POST /api/posts/<int:id>/like",
        "POST /follow/<username>",
        "POST /auth/register",
    ),
    "demo": (
        "GET /post/<int:post_id>",
        "POST /post/<int:post_id>/like",
        "POST /post/<int:post_id>/tags",
        "POST /user/<username>/follow",
        "POST /user/<username>/unfollow",
        "POST /auth/register",
    ),
    "photos": ("POST /photo/<int:photo_id>/like",),
    "bookmarks": ("POST /items/<int:item_id>/save",),
    "bank": ("POST /withdraw",),
    "coupons": ("POST /redeem",),
    "board": ("POST /topic/<int:topic_id>/reply", "POST /poll/<int:poll_id>/vote"),
    "transfers": ("POST /transfer",),
    "splitbill": ("POST /api/projects/<project_id>/bills",),
    "newsletter": ("POST /subscribe",),
    "cart": ("POST /api/checkout",),
    "recipes": ("POST /recipe/<int:recipe_id>/rate",),
    "ctf": ("POST /challenges/<int:challenge_id>/solve",),
    "tokens": ("POST /api/wallet/topup",),
    "helpers": ("POST /items/<int:item_id>/buy",),
    "journal": ("POST /api/entries/<int:entry_id>/star",),
    "reservations": (
        "POST /events/<int:event_id>/reserve",
        "POST /reservations/<int:reservation_id>/pay",
    ),
    "tickets": ("POST /events/<int:event_id>/buy", "POST /events/<int:event_id>/waitlist"),
    "warehouse": ("POST /api/orders",),
    "library": ("POST /borrow",),
    "ledger": ("POST /api/transfers",),
    "tryout_kudos": (
        "POST /api/kudos",
        "POST /api/kudos/<int:kudos_id>/reactions",
        "POST /api/rewards/<int:reward_id>/redeem",
    ),
}
#: The factory of an app whose package does not export it at the top.
FACTORIES = {"demo": "targets.demo.app:create_app"}
QUICK = ("microblog", "demo")
TIMEOUT = 1200  # seconds for one app's first try (init and the run)


@dataclass
class Row:
    app: str
    init_seconds: float = 0.0
    spec_lines: int = 0
    kept: int = 0
    routes: int = 0
    identities: int = 0
    setup: str = ""
    planted: tuple[str, ...] = ()
    found: dict[str, int] | None = None  # planted endpoint -> examples to first detection
    other: list[str] | None = None  # races found at endpoints with no planted race
    examples: int = 0
    run_seconds: float = 0.0
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self), planted=list(self.planted))

    def __post_init__(self) -> None:
        self.planted = tuple(self.planted)  # a list when read back from JSON


def apps() -> list[str]:
    """Every package under targets/ whose module (or FACTORIES entry) has ``create_app``."""
    found = []
    for info in sorted(pkgutil.iter_modules(targets.__path__), key=lambda m: m.name):
        if not info.ispkg:
            continue
        module, _, name = factory(info.name).partition(":")
        if callable(getattr(importlib.import_module(module), name, None)):
            found.append(info.name)
    return found


def factory(app: str) -> str:
    return FACTORIES.get(app, f"targets.{app}:create_app")


def init(app: str, directory: str) -> Row:
    """init's spec for ``app``, written into ``directory``: the row's first columns."""
    from fuzzer.init.spec import write_spec

    row = Row(app, planted=PLANTED.get(app, ()))
    started = time.monotonic()
    written = write_spec(factory(app), _spec(app, directory), force=True)
    row.init_seconds = round(time.monotonic() - started, 1)
    plan = written.plan
    with open(written.path, encoding="utf-8") as handle:
        row.spec_lines = len(handle.read().splitlines())
    row.routes = len(plan.routes)
    row.kept = sum(1 for r in plan.routes if plan.kept(r))
    row.identities = len(plan.identities)
    row.setup = ", ".join(f"{kind} {name}".strip() for kind, name in plan.setup)
    return row


def search(row: Row, directory: str, examples: int, db: str) -> Row:
    """The spec ``init`` wrote, run as it is: the planted races found, and when."""
    from fuzzer.execute.instrument import load_target

    module = os.path.splitext(os.path.basename(_spec(row.app, directory)))[0]
    sys.path.insert(0, directory)
    try:
        sys.modules.pop(module, None)
        target = load_target(f"{module}:target")
    finally:
        sys.path.remove(directory)
    started = time.monotonic()
    report = api.run(
        target,
        db=db,
        max_examples=examples,
        seed=1,
        shrink_budget=5.0,
        report_dir=None,
        example_db=None,
    )
    row.run_seconds = round(time.monotonic() - started, 1)
    row.examples = report.result.examples
    row.found = {}
    for finding in report.findings:
        if finding.kind not in RACES:
            continue
        hits = [e for e in finding.endpoints if e in row.planted]
        for endpoint in hits:
            seen = row.found.get(endpoint)
            row.found[endpoint] = min(finding.found_after, seen or finding.found_after)
        if not hits:
            row.other = [*(row.other or []), f"{finding.kind} ({' + '.join(finding.endpoints)})"]
    return row


def _spec(app: str, directory: str) -> str:
    return os.path.join(directory, f"fuzz_first_{app}.py")


def _in_fresh_processes(app: str, examples: int, db: str) -> Row:
    """One app's first try, init in a Python process of its own and the run in another:
    a factory that can build one app per process (init builds it once more to check
    its spec), and what an app's modules keep, stay out of the next step."""
    with tempfile.TemporaryDirectory(prefix="firsttry-") as directory:
        row = _child(Row(app, planted=PLANTED.get(app, ())), "init", directory, examples, db)
        if not row.error:
            row = _child(row, "run", directory, examples, db)
    return row


def _child(row: Row, phase: str, directory: str, examples: int, db: str) -> Row:
    command = [sys.executable, "-m", "bench.firsttry", f"--{phase}", json.dumps(row.to_json())]
    command += ["--dir", directory, "--examples", str(examples), "--db", db]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        command, cwd=root, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    last = done.stdout.strip().splitlines()[-1:] or [""]
    try:
        return Row(**json.loads(last[0]))
    except (ValueError, TypeError):
        why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return Row(row.app, planted=row.planted, error=f"{phase}: {why}")


def _phase(phase: str, given: str, directory: str, examples: int, db: str) -> int:
    """``--init ROW`` or ``--run ROW`` (a child): the row with this phase's columns, as a
    JSON line on stdout (the last line)."""
    row = Row(**json.loads(given))
    try:
        row = init(row.app, directory) if phase == "init" else search(row, directory, examples, db)
    except FuzzerError as exc:  # init or the run refused: that is the row
        row.error = f"{phase}: {exc}"
    sys.stdout.write(json.dumps(row.to_json()) + "\n")
    return 0


def markdown(rows: Sequence[Row], meta: Mapping[str, Any]) -> str:
    lines = [
        "## A first try: `fuzzer init`, then its spec unedited",
        "",
        f"{meta['examples']} examples per app, seed 1, on {meta['db']}; {meta['machine']}.",
        "",
        "| app | init | spec lines | endpoints kept | identities | setup "
        "| races found of planted | examples to first detection | other races | run |",
        "|---|---:|---:|---:|---:|---|---:|---|---|---:|",
    ]
    for r in rows:
        if r.error:
            lines.append(f"| {r.app} | failed: {r.error} | | | | | | | | |")
            continue
        found = r.found or {}
        firsts = ", ".join(f"{e}: {n}" for e, n in sorted(found.items(), key=lambda x: x[1]))
        planted = f"{len(found)} of {len(r.planted)}" if r.planted else "none declared"
        lines.append(
            f"| {r.app} | {r.init_seconds:.1f} s | {r.spec_lines} | {r.kept} of {r.routes} "
            f"| {r.identities} | {r.setup} | {planted} | {firsts or '–'} "
            f"| {'; '.join(r.other or []) or '–'} "
            f"| {r.run_seconds:.1f} s |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.firsttry")
    parser.add_argument("--quick", action="store_true", help="microblog and demo, 100 examples")
    parser.add_argument("--apps", default=None, help="comma-separated package names")
    parser.add_argument("--examples", type=int, default=None)
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("--out", default="reports")
    parser.add_argument("--init", default=None, help=argparse.SUPPRESS)  # a child's phase
    parser.add_argument("--run", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--dir", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = args.apps.split(",") if args.apps else list(QUICK) if args.quick else apps()
    examples = args.examples or (100 if args.quick else 300)
    if args.init or args.run:
        phase = "init" if args.init else "run"
        return _phase(phase, args.init or args.run, args.dir, examples, args.db)
    import platform

    meta = {
        "examples": examples,
        "db": args.db,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
    }
    rows = []
    for app in names:
        reporting.note(f"first try: {app}")
        rows.append(_in_fresh_processes(app, examples, args.db))
    page = markdown(rows, meta)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "firsttry.json"), "w", encoding="utf-8") as handle:
        json.dump({"meta": meta, "rows": [r.to_json() for r in rows]}, handle, indent=2)
    with open(os.path.join(args.out, "firsttry.md"), "w", encoding="utf-8") as handle:
        handle.write(page)
    reporting.text(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
