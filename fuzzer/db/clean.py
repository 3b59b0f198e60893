"""``fuzzer clean``: list the scratch databases runs left, and remove those of dead runs.

A run that dies without its ``finally`` (SIGKILL, a target calling ``os._exit``) leaves
its scratch databases behind. Each carries its owner's marker and is locked while the
owner lives (owner.py); this lists every marked one on the servers given and removes
those whose owner is gone and whose name is a scratch name (owner.removable). Kept
databases (``--keep-db``) stay unless asked; another host's are listed and left.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

from fuzzer.db.owner import Owner, removable
from fuzzer.db.url import parse
from fuzzer.errors import DatabaseError

DEFAULTS = ("sqlite", "mariadb", "postgres")

_WHY = {
    "alive": "its run is still going",
    "kept": "kept with --keep-db (--include-kept removes it)",
    "in use": "another run holds its lock",
    "not scratch": "its name is not one the fuzzer gives its scratch databases, although it "
    "carries the fuzzer's marker; drop it by hand if it is yours to drop",
    "elsewhere": "its run is on another host, whose processes cannot be seen from here; "
    "clean it from that host",
}


def clean(
    databases: Sequence[str],
    *,
    dry_run: bool = False,
    include_kept: bool = False,
    explicit: bool = True,
) -> Iterator[str]:
    """One line per scratch database found (what was done with it), then a total.
    A server that cannot be reached is an error when it was ``explicit``ly named, and
    one line saying so otherwise."""
    removed = left = 0
    for db in databases:
        try:
            where, found, remove = _server(db, include_kept)
        except DatabaseError as exc:
            if explicit:
                raise
            yield f"{db}: not reachable, skipped ({' '.join(str(exc).split())[:160]})"
            continue
        if not found:
            yield f"No scratch databases of the fuzzer {where}"
        for place, owner in found:
            if dry_run:
                name = os.path.basename(place.rstrip(os.sep))
                outcome = removable(name, owner, include_kept=include_kept) or "would remove"
            else:
                try:
                    outcome = remove(place, owner)
                except Exception as exc:  # no privilege, or another clean got there first
                    left += 1
                    yield f"Could not remove {place} {where}: {' '.join(str(exc).split())}"
                    continue
            if outcome in ("removed", "would remove"):
                removed += 1
                verb = "Removed" if outcome == "removed" else "Would remove"
                why = "kept with --keep-db by its run" if owner.kept else "its run is gone"
                yield f"{verb} {place} {where}: {why} ({owner.describe()})"
            else:
                left += 1
                yield f"Left {place} {where} ({owner.describe()}): {_WHY[outcome]}"
    verb = "would be removed" if dry_run else "removed"
    yield f"{removed} {verb}, {left} left"


Remove = Callable[[str, Owner], str]


def _server(db: str, include_kept: bool) -> tuple[str, list[tuple[str, Owner]], Remove]:
    """Where ``db`` is, the marked scratch databases there, and how to remove one."""
    spec = parse(db)
    if spec.dialect == "sqlite":
        from fuzzer.db import sqlite

        def remove_file(place: str, owner: Owner) -> str:
            return sqlite.remove_if_dead(place, owner, include_kept=include_kept)

        return "in the temporary directory", sqlite.temporary_databases(), remove_file
    from fuzzer.db import Databases
    from fuzzer.db.scratch import ServerBackend

    backend = Databases.open(db).backends["default"]
    assert isinstance(backend, ServerBackend)
    with backend.admin() as cursor:
        backend.server_version = backend._version(cursor)  # MariaDB or MySQL

    def remove(place: str, owner: Owner) -> str:
        return backend.remove_if_dead(place, owner, include_kept=include_kept)

    return f"on {backend.where}", backend.scratch_databases(), remove
