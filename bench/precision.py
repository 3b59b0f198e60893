"""python -m bench.precision [--db sqlite,mariadb,postgres] [--examples sqlite=1000,...]
[--targets profile,wiki] [--jobs 2] [--until 10:15] [--seed 1] [--out reports]
[--args=--faults]

Issue 19's precision measurement: every fixed twin of the catalog (``tests/catalog.py``)
on every database, N examples each (default 1,000 on SQLite, 300 on MariaDB and
PostgreSQL), ``--jobs`` searches at once (two by default: the machine loaded as the
acceptance asks), each a ``fuzzer run`` of its own at ``nice -n 10``. The goal is no
finding anywhere. Prints a table (target × database: examples, findings, unconfirmed,
examples not judged, seconds) and writes ``precision.json`` in ``--out``, with each
cell's summary and reports under ``--out/precision/<target>-<db>/``.

Bounded in time: ``--until HH:MM`` (UTC) starts no cell after that time and gives a
running cell only the time left (``--time-budget``), so its row says how many examples
it ran; a cell that never started is listed as not run. Password hashing is whatever
the target does (shoplogin: werkzeug's default scrypt cost); nothing here speeds it up.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .__main__ import available

_WRITING = threading.Lock()
DEFAULT_EXAMPLES = {"sqlite": 1000, "mariadb": 300, "postgres": 300}


@dataclass
class Cell:
    target: str
    db: str
    asked: int
    examples: int = 0
    findings: list[str] = field(default_factory=list)  # kinds of the confirmed findings
    unconfirmed: int = 0
    unjudged: int = 0  # examples judged not at all
    partly: int = 0  # judged with masks
    unknown: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    exit_code: int | None = None
    stop: str = "not run"
    error: str = ""


def catalog() -> list[str]:
    from tests.catalog import CATALOG

    return [story.name for story in CATALOG]


def until(text: str | None) -> float | None:
    """The UTC wall-clock time HH:MM of today as a ``time.time()``, or None."""
    if not text:
        return None
    try:
        hours, minutes = (int(part) for part in text.split(":"))
        now = datetime.datetime.now(datetime.UTC)
        end = now.replace(hour=hours, minute=minutes, second=0, microsecond=0)
    except ValueError:
        raise SystemExit(f"--until: expected a UTC time HH:MM, got {text!r}") from None
    return end.timestamp()


def run_cell(
    cell: Cell, out: Path, seed: int, end: float | None, extra: list[str] | None = None
) -> Cell:
    budget = None if end is None else end - time.time()
    if budget is not None and budget < 30:
        cell.stop = "not run (out of time)"
        return cell
    directory = out / "precision" / f"{cell.target}-{cell.db}"
    directory.mkdir(parents=True, exist_ok=True)
    summary = directory / "summary.json"
    summary.unlink(missing_ok=True)
    fuzzer = Path(sys.executable).with_name("fuzzer")
    command = ["nice", "-n", "10", str(fuzzer), "run", f"targets.{cell.target}:fixed"]
    command += ["--db", cell.db, "-n", str(cell.asked), "--seed", str(seed), "--no-progress"]
    command += ["--summary-file", str(summary), "--report-dir", str(directory / "reports")]
    if budget is not None:
        command += ["--time-budget", f"{budget:.0f}"]
    command += extra or []
    started = time.monotonic()
    with open(directory / "output.txt", "w", encoding="utf-8") as output:
        done = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, check=False)
    cell.seconds = round(time.monotonic() - started, 1)
    cell.exit_code = done.returncode
    if not summary.exists():
        cell.stop = "crashed"
        cell.error = (directory / "output.txt").read_text(encoding="utf-8")[-2000:]
        return cell
    read(cell, json.loads(summary.read_text(encoding="utf-8")))
    return cell


def read(cell: Cell, summary: dict[str, Any]) -> None:
    if "error" in summary:  # the command stopped before searching
        cell.stop, cell.error = "error", summary["error"]
        return
    search = summary.get("search") or {}
    judged = summary.get("judged") or {}
    cell.examples = search.get("examples", 0)
    cell.stop = search.get("stop_reason", "")
    cell.findings = [f["kind"] for f in summary.get("findings", [])]
    cell.unconfirmed = len(summary.get("unconfirmed", []))
    cell.unjudged = judged.get("not", 0)
    cell.partly = judged.get("partly", 0)
    cell.unknown = dict(summary.get("unknown") or {})


def table(cells: list[Cell]) -> Table:
    grid = Table(title="Fixed twins: findings per target and database (goal: none)")
    for name in ("target", "database", "examples", "findings", "unconfirmed", "unjudged"):
        grid.add_column(name, justify="left" if name in ("target", "database") else "right")
    grid.add_column("partly", justify="right")
    grid.add_column("seconds", justify="right")
    grid.add_column("stopped")
    for c in cells:
        found = ", ".join(c.findings) if c.findings else "0"
        ran = f"{c.examples}/{c.asked}" if c.exit_code is not None else "—"
        style = "red" if failed(c) else None
        grid.add_row(
            c.target,
            c.db,
            ran,
            found,
            str(c.unconfirmed),
            str(c.unjudged),
            str(c.partly),
            f"{c.seconds:.0f}",
            c.stop,
            style=style,
        )
    return grid


def examples_per_db(text: str) -> dict[str, int]:
    counts = dict(DEFAULT_EXAMPLES)
    for part in filter(None, text.split(",")):
        db, _, n = part.partition("=")
        if db not in counts or not n.isdigit():
            raise SystemExit(f"--examples: expected db=N with db one of {sorted(counts)}: {part!r}")
        counts[db] = int(n)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.precision")
    parser.add_argument("--db", default="sqlite,mariadb,postgres")
    parser.add_argument("--examples", default="", help="per database, e.g. sqlite=1000,mariadb=300")
    parser.add_argument("--targets", default="", help="default: every story of tests/catalog.py")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--until", default=None, help="UTC HH:MM: start nothing after it")
    parser.add_argument("--out", default="reports")
    parser.add_argument(
        "--args", default="", help="more options of fuzzer run, e.g. --args=--faults"
    )
    args = parser.parse_args()
    counts = examples_per_db(args.examples)
    names = [n for n in args.targets.split(",") if n] or catalog()
    console = Console(stderr=True)
    cells: list[Cell] = []
    for db in args.db.split(","):
        why = available(db)
        if why:
            console.print(why)
            continue
        cells += [Cell(name, db, counts[db]) for name in names]
    out = Path(args.out)
    end = until(args.until)

    def one(cell: Cell) -> Cell:
        run_cell(cell, out, args.seed, end, shlex.split(args.args))
        found = ", ".join(cell.findings) or "no finding"
        console.print(
            f"{cell.target} on {cell.db}: {cell.examples} examples, {found}, "
            f"{cell.unjudged} not judged, {cell.seconds:.0f} s ({cell.stop})"
        )
        write(out, cells)
        return cell

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(one, cells))
    write(out, cells)
    Console(width=max(Console().width, 140)).print(table(cells))
    sys.exit(1 if any(failed(c) for c in cells) else 0)


def failed(cell: Cell) -> bool:
    return bool(cell.findings) or cell.stop in ("crashed", "error")


def write(out: Path, cells: list[Cell]) -> None:
    os.makedirs(out, exist_ok=True)
    with _WRITING:
        text = json.dumps([asdict(c) for c in cells], indent=2) + "\n"
        (out / "precision.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
