"""How much a long run holds: the process's resident memory and its open database
connections. A soak measures them at the start and at the end; both must stay flat.

Memory is not flat from the start: resident memory grows for the first minutes of a
soak (83 → 117 MiB over ten minutes, then level: caches, the allocator's arenas, the
oracle's memo filling up to its bound) and then levels off. So start and end alone
would call a warm-up a leak, and a warm-up that ends late would hide one. A ``Trend``
samples memory through the soak and judges the *second half*: a leak grows there too,
a warm-up does not. It says "flat" or "growing", with the numbers.

Connections are counted where they can be seen whole: for SQLite the open file
descriptors of this process on the scratch database's file (each connection holds
one; SQLite keeps the descriptor of a closed connection for reuse while others hold
locks on the file, so the count can lag a close but does not grow with churn); for
MariaDB/MySQL and PostgreSQL the server's own list of sessions on the scratch
database. Both count the target's pooled connections and the fuzzer's own.
"""

from __future__ import annotations

import contextlib
import os
import resource
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fuzzer.db import Databases
    from fuzzer.db.base import Backend


FLAT_MIB = 4.0  # growth over the second half below max(this, FLAT_SHARE of the level)
FLAT_SHARE = 0.03
SAMPLES = 256  # kept at most (then every other one is dropped: the trend stays whole)


@dataclass
class Trend:
    """Resident memory sampled over a run, at most every ``interval`` seconds."""

    interval: float = 5.0
    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MiB)

    def sample(self, seconds: float, memory_mib: float | None = None, force: bool = False) -> None:
        if not force and self.samples and seconds - self.samples[-1][0] < self.interval:
            return
        self.samples.append((seconds, resident_mib() if memory_mib is None else memory_mib))
        if len(self.samples) > SAMPLES:
            self.samples = self.samples[::2] + (
                [self.samples[-1]] if len(self.samples) % 2 == 0 else []
            )
            self.interval *= 2

    def second_half(self) -> tuple[float, float] | None:
        """Memory at the middle of the run and at its end (each the median of a few
        samples around it, so one collection does not decide), or None if too few."""
        if len(self.samples) < 6:
            return None
        end = self.samples[-1][0]
        middle = self.samples[0][0] + (end - self.samples[0][0]) / 2
        later = [m for t, m in self.samples if t >= middle]
        window = max(2, len(later) // 5)
        return _median(later[:window]), _median(later[-window:])

    def growth(self) -> float | None:
        """MiB gained over the second half of the run (None: too short to tell)."""
        half = self.second_half()
        return None if half is None else half[1] - half[0]

    def verdict(self) -> str:
        half = self.second_half()
        if half is None:
            return "too short to tell"
        middle, end = half
        limit = max(FLAT_MIB, FLAT_SHARE * middle)
        return "flat" if end - middle < limit else "growing"

    def to_json(self) -> dict[str, object]:
        half = self.second_half()
        return {
            "verdict": self.verdict(),
            "second_half_mib": [round(m, 1) for m in half] if half else None,
            "samples": [[round(t, 1), round(m, 1)] for t, m in self.samples],
        }


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


@dataclass(frozen=True)
class Vitals:
    memory_mib: float  # resident set size of this process
    connections: int | None  # open connections to the run's scratch databases; None: unknown

    def to_json(self) -> dict[str, float | int | None]:
        return {"memory_mib": round(self.memory_mib, 1), "connections": self.connections}


def measure(databases: Databases) -> Vitals:
    counts = [connections(backend) for backend in databases.backends.values()]
    known = [c for c in counts if c is not None]
    return Vitals(resident_mib(), sum(known) if known and len(known) == len(counts) else None)


def resident_mib() -> float:
    """The resident set size now (Linux), or the peak where only that is known."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**10  # kilobytes on Linux


def connections(backend: Backend) -> int | None:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    dialect = backend.dialect
    if dialect == "sqlite":
        return _open_files(os.path.realpath(str(getattr(backend, "path", ""))))
    name = make_url(backend.url).database
    if dialect == "mysql":
        sql = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = :name"
    elif dialect == "postgresql":
        sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = :name"
    else:
        return None
    try:
        with backend.engine.connect() as conn:
            return int(conn.execute(text(sql), {"name": name}).scalar() or 0)
    except Exception:
        return None


def _open_files(path: str) -> int | None:
    directory = "/proc/self/fd"
    if not path or not os.path.isdir(directory):
        return None
    count = 0
    for fd in os.listdir(directory):
        with contextlib.suppress(OSError):
            if os.readlink(os.path.join(directory, fd)) == path:
                count += 1
    return count
