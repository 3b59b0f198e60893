"""How much a long run holds: the process's resident memory and its open database
connections. A soak measures them at the start and at the end; both must stay flat.

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
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .db import Databases
    from .db.base import Backend


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
