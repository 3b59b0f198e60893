"""Who owns a scratch database: a marker naming the run, and a lock held while it lives.

Every scratch database the fuzzer creates carries a marker, ``fuzzer-owner host=…
pid=… started=…`` (a database comment on MariaDB and PostgreSQL, a lock file beside
an SQLite file), and every database a run uses is locked for the run's lifetime
(MariaDB ``GET_LOCK``, PostgreSQL ``pg_try_advisory_lock``, an ``flock`` on SQLite's
lock file). The lock keeps a second run off a database the first one is using; the
marker with the lock tells a run that died without cleaning up (``kill -9``, a target
calling ``os._exit``) from one still running, so ``fuzzer clean`` and the next run can
remove what the dead one left. A database kept with ``--keep-db`` is marked ``kept``
and never removed unless asked.

A marker alone never condemns a database: ``removable`` also asks that its **name** is
one the fuzzer gives its scratch databases (``fuzz_<run>`` on a server, a ``fuzz-…``
temporary directory for SQLite), so a database of the user's that carries a copied
comment, or a kept one renamed for an investigation, stays; and a marker of another
host is left (its process cannot be looked up from here) and listed as such.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import socket
from dataclasses import dataclass, replace

MARK = "fuzzer-owner"
# fuzz_<run id: 8 hex digits>, plus _<name> per named database of the target (scratch.py)
SERVER_SCRATCH = re.compile(r"^fuzz_[0-9a-f]{8}(_[a-z0-9_]{1,20})?$")
# tempfile.mkdtemp(prefix="fuzz-"): 8 characters of [a-z0-9_] (sqlite.py)
SQLITE_SCRATCH = re.compile(r"^fuzz-[a-z0-9_]{8}$")
_FIELDS = re.compile(r"^fuzzer-owner host=(\S+) pid=(\d+) started=(\d+(?:\.\d+)?)( kept)?$")


@dataclass(frozen=True)
class Owner:
    """The run that made a scratch database: where, which process, since when."""

    host: str
    pid: int
    started: float  # the process's start, seconds since the epoch
    kept: bool = False

    def text(self) -> str:
        return f"{MARK} host={self.host} pid={self.pid} started={self.started:.0f}" + (
            " kept" if self.kept else ""
        )

    @classmethod
    def parse(cls, text: str | None) -> Owner | None:
        """The owner a marker names; None when it is not the fuzzer's marker."""
        match = _FIELDS.match((text or "").strip())
        if match is None:
            return None
        host, pid, started, kept = match.groups()
        return cls(host, int(pid), float(started), bool(kept))

    def as_kept(self) -> Owner:
        return replace(self, kept=True)

    def describe(self) -> str:
        when = datetime.datetime.fromtimestamp(self.started, datetime.UTC)
        return f"pid {self.pid} on {self.host}, started {when:%Y-%m-%d %H:%M:%S} UTC"

    def alive(self) -> bool | None:
        """Whether the owning process still runs: None when it ran on another host."""
        if self.host != this_host():
            return None
        if not _pid_exists(self.pid):
            return False
        started = process_start(self.pid)
        # the same pid, started at another time, is another process
        return started is None or abs(started - self.started) < 5


def removable(name: str, owner: Owner, *, include_kept: bool = False) -> str | None:
    """Why the scratch database ``name`` (a server database, or the basename of an SQLite
    temporary directory) marked by ``owner`` must stay: "not scratch", "elsewhere",
    "kept", "alive"; None when it may be removed (its run is gone)."""
    if not (SERVER_SCRATCH.match(name) or SQLITE_SCRATCH.match(name)):
        return "not scratch"
    if owner.kept and not include_kept:
        return "kept"
    alive = owner.alive()
    if alive is None:
        return "elsewhere"
    return "alive" if alive else None


def this_host() -> str:
    return socket.gethostname() or "localhost"


def me() -> Owner:
    """This process as an owner."""
    return Owner(this_host(), os.getpid(), process_start(os.getpid()) or 0.0)


def process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), from /proc; None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as system:
            boot = next(float(line.split()[1]) for line in system if line.startswith("btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_name(database: str) -> str:
    """The server-wide name of a database's lock (MariaDB GET_LOCK: at most 64 characters)."""
    return f"fuzzer:{database}"[:64]


def lock_key(database: str) -> int:
    """A database's PostgreSQL advisory lock key: a signed 64-bit hash of its name."""
    digest = hashlib.blake2b(lock_name(database).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
