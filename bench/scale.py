"""python -m bench.scale [--target targets.bazaar:buggy] [--examples 500] [--seed 1]

A big target run as a user runs it (``python -m fuzzer run`` in a child process), for
issue 20 item 8's acceptance: seconds to the first progress line and to the plan,
peak memory (the child's maximum resident set), the races found of those planted
(``RACES`` of the target's module) and the examples to each; then two more children,
stopped by SIGTERM and by SIGINT as soon as they say they are surveying, and how long
each took to exit (and its exit code: 130). Prints a Markdown table and writes
reports/scale.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, Any

#: What the acceptance asks of a run of a 60+ endpoint target.
LIMITS = {"first_line": 10.0, "peak_mib": 500.0, "stop": 10.0}


@dataclass
class Scale:
    """One run of a big target, and two stopped early."""

    target: str
    examples: int
    seed: int
    endpoints: int = 0
    first_line: float = 0.0  # seconds from start to the first line the run printed
    planned: float = 0.0  # seconds from start to "surveyed … planned …"
    seconds: float = 0.0  # the whole run
    peak_mib: float = 0.0
    exit_code: int = 0
    planted: list[str] = field(default_factory=list)  # "kind · endpoint"
    found: dict[str, int] = field(default_factory=dict)  # planted race -> examples to it
    stops: dict[str, dict[str, float]] = field(default_factory=dict)  # signal -> seconds, code

    @property
    def missed(self) -> list[str]:
        return [race for race in self.planted if race not in self.found]

    def failures(self) -> list[str]:
        """What misses the acceptance's limits, one line each."""
        lines = [f"missed {race}" for race in self.missed]
        if self.first_line > LIMITS["first_line"]:
            lines.append(f"first line after {self.first_line:.1f} s")
        if self.peak_mib > LIMITS["peak_mib"]:
            lines.append(f"peak memory {self.peak_mib:.0f} MiB")
        for name, stop in self.stops.items():
            if stop["code"] != 130 or stop["seconds"] > LIMITS["stop"]:
                lines.append(f"{name}: exit {stop['code']:.0f} after {stop['seconds']:.1f} s")
        return lines


def _command(target: str, examples: int, seed: int, directory: str) -> list[str]:
    return [
        sys.executable,
        "-u",
        "-m",
        "fuzzer",
        "run",
        target,
        "-n",
        str(examples),
        "--seed",
        str(seed),
        "--shrink-budget",
        "30",
        "--report-dir",
        os.path.join(directory, "reports"),
        "--summary-file",
        os.path.join(directory, "summary.json"),
    ]


def _lines(stream: IO[str], started: float) -> Any:
    """(seconds since ``started``, line) for each line the child prints."""
    for line in stream:
        yield time.monotonic() - started, line.rstrip("\n")


def _reap(process: subprocess.Popen[str]) -> float:
    """Wait for the child; its peak resident set in MiB (``wait4``'s own rusage)."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    kib = usage.ru_maxrss / 1024 if sys.platform == "darwin" else usage.ru_maxrss  # bytes there
    return kib / 1024


def planted(target: str) -> list[str]:
    """The target module's ``RACES`` as "kind · endpoint"."""
    module = importlib.import_module(target.split(":", 1)[0])
    return sorted(f"{kind} · {endpoint}" for kind, endpoint in getattr(module, "RACES", ()))


def run(target: str, examples: int, seed: int) -> Scale:
    """The whole run: times to its first lines, peak memory, the planted races found."""
    result = Scale(target, examples, seed, planted=planted(target))
    with tempfile.TemporaryDirectory(prefix="fuzzer-scale-") as directory:
        started = time.monotonic()
        with subprocess.Popen(
            _command(target, examples, seed, directory),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as process:
            assert process.stdout is not None
            for seconds, line in _lines(process.stdout, started):
                result.first_line = result.first_line or seconds
                if line.startswith("surveyed ") and "planned" in line:
                    result.planned = seconds
                    result.endpoints = int(line.split()[1])
            result.peak_mib = round(_reap(process), 1)
        result.seconds = round(time.monotonic() - started, 1)
        result.exit_code = process.returncode
        with open(os.path.join(directory, "summary.json"), encoding="utf-8") as handle:
            summary = json.load(handle)
    for finding in summary.get("findings", []):
        for endpoint in finding["endpoints"]:
            race = f"{finding['kind']} · {endpoint}"
            if race in result.planted:
                after = result.found.get(race, finding["found_after"])
                result.found[race] = min(after, finding["found_after"])
    result.first_line, result.planned = round(result.first_line, 2), round(result.planned, 2)
    return result


def stopped(target: str, which: signal.Signals) -> dict[str, float]:
    """A run sent ``which`` as soon as it says it is surveying: seconds from the signal
    to its exit, and its exit code."""
    with tempfile.TemporaryDirectory(prefix="fuzzer-scale-") as directory:
        sent = None
        with subprocess.Popen(
            _command(target, 500, 1, directory),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                if sent is None and line.startswith("surveying "):
                    process.send_signal(which)
                    sent = time.monotonic()
            process.wait()
        seconds = time.monotonic() - (sent if sent is not None else time.monotonic())
        return {"seconds": round(seconds, 2), "code": process.returncode}


def measure(target: str, examples: int, seed: int, stops: bool = True) -> Scale:
    result = run(target, examples, seed)
    if stops:
        for which in (signal.SIGTERM, signal.SIGINT):
            result.stops[which.name] = stopped(target, which)
    return result


def markdown(result: Scale) -> str:
    rows = [
        "| target | endpoints | examples | first line | planned | peak | races found |",
        "|---|---|---|---|---|---|---|",
        f"| {result.target} | {result.endpoints} | {result.examples} (seed {result.seed}) "
        f"| {result.first_line} s | {result.planned} s | {result.peak_mib} MiB "
        f"| {len(result.found)} of {len(result.planted)} |",
        "",
    ]
    rows += [f"- {race}: after {n} examples" for race, n in sorted(result.found.items())]
    rows += [f"- {race}: missed" for race in result.missed]
    rows += [
        f"- stopped by {name} while surveying: exit {stop['code']:.0f} after {stop['seconds']} s"
        for name, stop in result.stops.items()
    ]
    failures = result.failures()
    rows.append("\n" + ("Within the acceptance's limits." if not failures else "; ".join(failures)))
    return "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("--target", default="targets.bazaar:buggy")
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="reports")
    parser.add_argument("--no-stops", action="store_true", help="skip the SIGTERM/SIGINT runs")
    args = parser.parse_args(argv)
    result = measure(args.target, args.examples, args.seed, stops=not args.no_stops)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "scale.json"), "w", encoding="utf-8") as handle:
        json.dump({**asdict(result), "limits": LIMITS}, handle, indent=2)
    sys.stdout.write(markdown(result))
    return 1 if result.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
