"""python -m bench.sqlread [--targets profile,bazaar] [--examples 20] [--repeat 5]

What reading the statements of a trace costs, old against new, measured in one run: the
catalog targets are fuzzed briefly on SQLite and every statement their requests ran is
kept with its recorded parameters and the statement SQLAlchemy compiled. Each is then read

* ``regex``: by the regular expressions fuzzer/sql.py used before sqlglot (loaded from
  the git history, ``--old``), not cached;
* ``sqlglot``: its text parsed by sqlglot (``fuzzer/sql/text.py``), not cached;
* ``compiled``: from the compiled statement (``fuzzer/sql/compiled.py``), not cached;
* ``gate, warm``: what the gate pays for each statement run, once SQLAlchemy's compiled
  statement (or the text) has been read: the shape kept, the parameters bound;
* ``step``: as a plan reads it, ``Step.access`` a second time (kept on the step).

Prints microseconds per trace (the mean trace's statements) and the ratios to ``regex``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fuzzer import api, sql
from fuzzer.execute import recording
from fuzzer.execute.instrument import load_target
from fuzzer.model import Step
from fuzzer.report import reporting
from fuzzer.sql import compiled, shape

OLD = "42da52a"  # the last commit whose fuzzer/sql.py read statements by regular expressions


def collect(targets: list[str], examples: int) -> list[tuple[str, str, Any]]:
    """(statement, parameters as recorded, compiled statement) of every statement the
    targets' requests ran, and how many traces they made."""
    kept: list[tuple[str, str, Any]] = []
    real = recording.sql.shape_of

    def spy(statement: str, context: Any = None) -> sql.Shape:
        kept.append((statement, "", getattr(context, "compiled", None)))
        return real(statement, context)

    real_recorded = recording.sql.recorded

    def spy_recorded(statement: str, params_text: str, found: sql.Shape) -> sql.Access:
        if kept and kept[-1][0] == statement:
            kept[-1] = (statement, params_text, kept[-1][2])
        return real_recorded(statement, params_text, found)

    recording.sql.shape_of = spy
    recording.sql.recorded = spy_recorded
    try:
        for name in targets:
            api.run(
                load_target(f"targets.{name}:buggy"),
                db="sqlite",
                max_examples=examples,
                seed=1,
                report_dir=None,
                example_db=None,
            )
    finally:
        recording.sql.shape_of = real
        recording.sql.recorded = real_recorded
    return kept


def old_parser(commit: str) -> Callable[..., Any] | None:
    """The regex reader of ``commit``'s fuzzer/sql.py, uncached (None without git)."""
    try:
        source = subprocess.run(
            ["git", "show", f"{commit}:fuzzer/sql.py"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("old_sql")
    sys.modules["old_sql"] = module  # its data classes look their module up
    exec(compile(source, "old_sql.py", "exec"), module.__dict__)
    return module.access.__wrapped__


def timed(read: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        read()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sqlread")
    parser.add_argument("--targets", default="profile,stock,social,bazaar")
    parser.add_argument("--examples", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--old", default=OLD, help="the commit of the regex reader")
    args = parser.parse_args()
    statements = [s for s in collect(args.targets.split(","), args.examples) if s[1] or s[2]]
    distinct = {(text, params): made for text, params, made in statements}
    regex = old_parser(args.old)

    def by_regex() -> None:
        assert regex is not None
        for text, params in distinct:
            regex(text, params, "")

    def by_sqlglot() -> None:
        for text, params in distinct:
            sql.shape.__wrapped__(text)
            sql.access.__wrapped__(text, params)

    def by_compiled() -> None:
        for (text, params), made in distinct.items():
            found = compiled._reading(made) if made is not None else None
            sql.recorded(text, params, found or shape(text))

    contexts = {key: types.SimpleNamespace(compiled=made) for key, made in distinct.items()}

    def by_gate() -> None:  # what the gate pays per statement run, its caches warm
        for (text, params), context in contexts.items():
            sql.recorded(text, params, sql.shape_of(text, context))

    steps = [Step(0, i, "sql", text, params) for i, (text, params) in enumerate(distinct)]
    for step in steps:
        step.access  # noqa: B018 - read once, as the gate or the first reader does

    def by_step() -> None:
        for step in steps:
            step.access  # noqa: B018

    n = len(distinct)
    rows = {"sqlglot": timed(by_sqlglot, args.repeat), "compiled": timed(by_compiled, args.repeat)}
    by_gate()
    rows["gate, warm"] = timed(by_gate, args.repeat)
    rows["step"] = timed(by_step, args.repeat)
    if regex is not None:
        rows = {"regex": timed(by_regex, args.repeat), **rows}
    base = rows.get("regex")
    lines = [
        f"{n} distinct statements ({len(statements)} run) of {args.targets}; "
        "microseconds per statement, the best of "
        f"{args.repeat}; ratio old/new (regex / this)",
        "| reader | µs per statement | regex / this |",
        "|---|---|---|",
    ]
    for name, seconds in rows.items():
        ratio = f"{base / seconds:.2f}" if base else "—"
        lines.append(f"| {name} | {seconds / n * 1e6:.1f} | {ratio} |")
    reporting.text("\n".join(lines))


if __name__ == "__main__":
    main()
