"""What the scheduler asks of a database about locks, and SQLite's write lock.

``Pending`` is the step a request waits to run. A database whose locking the scheduler
models (SQLite: ``WriteLockModel``) answers ``LockModel``; a server that can say whether
a connection waits for a lock (MariaDB, PostgreSQL) answers ``LockProbe``. They live with
the databases so that ``fuzzer.db`` does not import the scheduler that uses them.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fuzzer.model import StepKind


@dataclass(frozen=True)
class Pending:
    """The step a request waits to run."""

    kind: StepKind
    text: str = ""
    connection: Hashable | None = None  # key of the DBAPI connection it will use
    write: bool = False  # an SQL statement that takes a write lock
    database: str = ""  # which of the target's databases it runs on

    def describe(self) -> str:
        if self.kind == "sql":
            return " ".join(self.text.split())[:120]
        return f"{self.kind} {self.text}".strip()


class LockModel(Protocol):
    """A database whose locking the scheduler models instead of observing (SQLite)."""

    def admits(self, request: int, pending: Pending) -> bool: ...
    def granted(self, request: int, pending: Pending) -> None: ...
    def arrived(self, request: int) -> None: ...
    def holder(self) -> int | None: ...


class LockProbe(Protocol):
    """A database server that can say whether a connection waits for a lock."""

    def waiting(self, connections: Sequence[Any]) -> str | None:
        """Why one of these DBAPI connections waits for a lock right now, or None."""

    def break_waits(self, connections: Sequence[Any]) -> None:
        """End the lock waits of these connections (to recover from a hang)."""


class WriteLockModel:
    """SQLite's database-wide write lock (one per database file), as the requests see it.

    A connection takes it with its first writing statement and keeps it until its
    COMMIT or ROLLBACK has run (known when its request reaches its next gate).
    """

    def __init__(self) -> None:
        self._holders: dict[str, tuple[int, Hashable]] = {}
        self._releasing: set[str] = set()

    def admits(self, request: int, pending: Pending) -> bool:
        holder = self._holders.get(pending.database)
        if not pending.write or holder is None:
            return True
        return holder[1] == pending.connection or holder[0] == request

    def granted(self, request: int, pending: Pending) -> None:
        holder = self._holders.get(pending.database)
        if pending.write and holder is None:
            self._holders[pending.database] = (request, pending.connection)
        elif (
            pending.kind in ("commit", "rollback")
            and holder is not None
            and holder[1] == pending.connection
        ):
            self._releasing.add(pending.database)

    def arrived(self, request: int) -> None:
        for database in list(self._releasing):
            if self._holders[database][0] == request:
                del self._holders[database]
                self._releasing.discard(database)

    def holder(self) -> int | None:
        return next(iter(self._holders.values()))[0] if self._holders else None
