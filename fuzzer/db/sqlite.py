"""SQLite, the embedded default: a temporary file per run, in WAL mode.

A file named in ``--db`` is judged by the file it is, not by its name: the path is
resolved (a symlink ``fuzz_alias.db`` pointing at ``shop.db`` is ``shop.db``), and a file
with another hard link is refused as if unnamed. Each run locks its file for its
lifetime (an ``flock`` on ``<file>.fuzzer-lock`` beside it, which also names the owner,
owner.py), so a second run on the same file is refused.

In WAL mode readers never block and there is one database-wide write lock, taken by
a connection's first writing statement and held until COMMIT or ROLLBACK. The
scheduler models that lock (``WriteLockModel``) instead of letting a second writer
run into SQLite's busy handler, which backs off in sleeps of tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Sequence
from typing import Any

from fuzzer.db.base import Backend
from fuzzer.db.locks import LockModel, WriteLockModel
from fuzzer.db.owner import Owner, me, removable
from fuzzer.db.url import SCRATCH_NAME, guard_name
from fuzzer.errors import DatabaseError, UnsafeDatabase

LOCK_SUFFIX = ".fuzzer-lock"
TEMP_PREFIX = "fuzz-"


class SQLiteBackend(Backend):
    dialect = "sqlite"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._directory: str | None = None
        self._lock: int | None = None  # the descriptor whose flock marks this run's use
        named = self.spec.database
        if named and named != ":memory:":
            if self.prefix:  # several databases: one file each, beside the named one
                root, extension = os.path.splitext(named)
                named = f"{root}_{self.logical_name}{extension or '.sqlite'}"
            self.given = os.path.abspath(named)
            self.path = os.path.realpath(named)  # the file itself, not a name pointing at it
        else:
            self._directory = tempfile.mkdtemp(prefix=TEMP_PREFIX)
            self.path = os.path.join(self._directory, f"fuzz_{self.logical_name}.sqlite")
            self.given = self.path

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    @property
    def database_key(self) -> str:
        return self.path

    def create(self) -> None:
        exists = os.path.exists(self.path)
        name = os.path.basename(self.path)  # the file's own name, symlinks resolved
        links = os.stat(self.path).st_nlink if exists else 1
        if links > 1 and not self.allow_wipe:
            raise UnsafeDatabase(
                f"Refusing to use existing SQLite file {self.given} from --db "
                f"{self.spec.safe_url}: it has {links} hard links, so its name does not say "
                f"which database it is, and the fuzzer deletes its rows; name a scratch file "
                f"of its own, or pass --allow-wipe if its data may be lost"
            )
        guard_name(
            name,
            exists=exists,
            allow_wipe=self.allow_wipe,
            spec=self.spec.safe_url,
            shown="" if self.given == self.path else f"{name!r} ({self.given} points to it)",
        )
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            raise DatabaseError(
                f"Cannot create SQLite database {self.path}: directory {directory} does not exist"
            )
        self._take_lock()
        if exists:
            dropped = self._drop_tables()
            if dropped:
                line = f"Emptied existing SQLite database {self.path}: dropped {', '.join(dropped)}"
                if not SCRATCH_NAME.match(os.path.basename(self.path)):
                    line += (
                        " (--allow-wipe: its name does not mark it as scratch, and these "
                        "tables were there before the target's setup)"
                    )
                self.notices.append(line)
        try:
            with sqlite3.connect(self.path) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            raise DatabaseError(f"Cannot create SQLite database {self.path}: {exc}") from None
        self.created = True

    def _take_lock(self) -> None:
        """flock ``<file>.fuzzer-lock`` for the run (written with the owner marker);
        refuse the file when another run holds it."""
        path = self.path + LOCK_SUFFIX
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DatabaseError(
                f"Cannot create the lock file {path} beside SQLite database {self.path}: "
                f"{exc.strerror}; the directory must be writable"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            owner = _read_owner(path)
            by = f" ({owner.describe()})" if owner else ""
            raise DatabaseError(
                f"SQLite database {self.path} is in use by another fuzzer run{by}; wait for "
                f"that run to end, or give this one another file in --db (or none: the "
                f"fuzzer then uses a temporary file)"
            ) from None
        self._lock = fd
        _write_owner(fd, me())

    def _release_lock(self, *, remove: bool) -> None:
        fd, self._lock = self._lock, None
        if fd is None:
            return
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path + LOCK_SUFFIX)
        os.close(fd)

    def _drop_tables(self) -> list[str]:
        with sqlite3.connect(self.path) as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            conn.execute("PRAGMA foreign_keys=OFF")
            for name in names:
                conn.execute(f'DROP TABLE IF EXISTS "{name}"')
        return [str(name) for name in names]

    def drop(self) -> None:
        self.close()
        if self.keep:
            if self._lock is not None:
                _write_owner(self._lock, me().as_kept())
            self._release_lock(remove=self._directory is None)
            return
        if self._directory is not None:
            self._release_lock(remove=False)
            shutil.rmtree(self._directory, ignore_errors=True)
            return
        if self.created:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.path + suffix)
        self._release_lock(remove=True)

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


def _write_owner(fd: int, owner: Owner) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, (owner.text() + "\n").encode(), 0)


def _read_owner(path: str) -> Owner | None:
    try:
        with open(path) as marker:
            return Owner.parse(marker.read())
    except OSError:
        return None


def temporary_databases(root: str | None = None) -> list[tuple[str, Owner]]:
    """The temporary directories of SQLite scratch databases under ``root`` (the system's
    temporary directory), each with its owner."""
    found = []
    pattern = os.path.join(root or tempfile.gettempdir(), TEMP_PREFIX + "*")
    for directory in sorted(glob.glob(pattern)):
        for lock in sorted(glob.glob(os.path.join(directory, "*" + LOCK_SUFFIX))):
            owner = _read_owner(lock)
            if owner is not None:
                found.append((directory, owner))
                break
    return found


def remove_if_dead(directory: str, owner: Owner, *, include_kept: bool = False) -> str:
    """Remove a temporary SQLite scratch directory whose run is dead: "removed", or why not
    (owner.removable, or "in use")."""
    why = removable(os.path.basename(directory.rstrip(os.sep)), owner, include_kept=include_kept)
    if why is not None:
        return why
    held = []
    try:
        for lock in glob.glob(os.path.join(directory, "*" + LOCK_SUFFIX)):
            fd = os.open(lock, os.O_RDWR)
            held.append(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return "in use"
        shutil.rmtree(directory, ignore_errors=True)
    finally:
        for fd in held:
            os.close(fd)
    return "removed"


def sweep(root: str | None = None) -> list[str]:
    """Remove the temporary SQLite databases dead runs left; one line per directory."""
    lines = []
    for directory, owner in temporary_databases(root):
        with contextlib.suppress(OSError):
            if remove_if_dead(directory, owner) == "removed":
                lines.append(
                    f"Removed SQLite scratch directory {directory}, left by a run that died "
                    f"({owner.describe()})"
                )
    return lines
