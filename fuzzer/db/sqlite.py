"""SQLite, the embedded default: a temporary file per run, in WAL mode.

In WAL mode readers never block and there is one database-wide write lock, taken by
a connection's first writing statement and held until COMMIT or ROLLBACK. The
scheduler models that lock (``WriteLockModel``) instead of letting a second writer
run into SQLite's busy handler, which backs off in sleeps of tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Sequence
from typing import Any

from ..errors import DatabaseError
from ..scheduler import LockModel, WriteLockModel
from .base import Backend
from .url import guard_name


class SQLiteBackend(Backend):
    dialect = "sqlite"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._directory: str | None = None
        named = self.spec.database
        if named and named != ":memory:":
            if self.prefix:  # several databases: one file each, beside the named one
                root, extension = os.path.splitext(named)
                named = f"{root}_{self.logical_name}{extension or '.sqlite'}"
            self.path = os.path.abspath(named)
        else:
            self._directory = tempfile.mkdtemp(prefix="fuzz-")
            self.path = os.path.join(self._directory, f"fuzz_{self.logical_name}.sqlite")

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    @property
    def database_key(self) -> str:
        return self.path

    def create(self) -> None:
        exists = os.path.exists(self.path)
        guard_name(
            os.path.basename(self.path),
            exists=exists,
            allow_wipe=self.allow_wipe,
            spec=self.spec.safe_url,
        )
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            raise DatabaseError(
                f"Cannot create SQLite database {self.path}: directory {directory} does not exist"
            )
        if exists:
            self._drop_tables()
        try:
            with sqlite3.connect(self.path) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            raise DatabaseError(f"Cannot create SQLite database {self.path}: {exc}") from None
        self.created = True

    def _drop_tables(self) -> None:
        with sqlite3.connect(self.path) as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
                )
            ]
            conn.execute("PRAGMA foreign_keys=OFF")
            for name in names:
                conn.execute(f'DROP TABLE IF EXISTS "{name}"')

    def drop(self) -> None:
        self.close()
        if self.keep:
            return
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
        elif self.created:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.path + suffix)

    def lock_model(self) -> LockModel:
        return WriteLockModel()

    def describe(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            version = conn.exec_driver_sql("select sqlite_version()").scalar()
            journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        return {
            "dialect": "sqlite",
            "server_version": f"SQLite {version}",
            "isolation_level": "SERIALIZABLE",
            "settings": {"journal_mode": journal},
            "notes": [
                "SQLite has one database-wide write lock: some interleavings cannot happen here",
                "with_for_update() compiles to nothing on SQLite",
            ],
        }

    def _restore_preamble(self) -> Sequence[str]:
        return ("PRAGMA defer_foreign_keys=ON",)

    def _extra_tables(self) -> Sequence[str]:
        return ("sqlite_sequence",)

    def _has_triggers(self, conn: Any) -> bool:
        sql = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger'"
        return bool(conn.exec_driver_sql(sql).scalar())
