"""Redis databases the app opens that are not the fuzzer's scratch database.

The fuzzer resets its own scratch Redis database before every execution (caches.py);
any other database the app talks to keeps what the requests write there, and the
fuzzer cannot put it back (a microblog's export endpoint queued 22 background jobs
into database 0, silently). So every connection pool redis-py makes while the app is
built and set up, or inside a fuzzed request, is recorded: the run names each such
database at its start with its number of keys, and counts them again at the end
(``--strict-isolation``: refused before anything runs). Keys are counted only on
loopback: the fuzzer sends nothing anywhere else.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Any

from fuzzer.errors import TargetSetupError
from fuzzer.execute import gates

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_lock = threading.Lock()
_watching = 0
_opened: list[str] = []  # "host:port/db" of every pool made while watched, in order
_installed = False


def install() -> None:
    """Record every redis-py connection pool made while watched (once per process)."""
    global _installed
    if _installed:
        return
    try:
        from redis.connection import ConnectionPool
    except ImportError:
        return
    original = ConnectionPool.__init__

    @functools.wraps(original)
    def recorded(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if _watching or gates.in_request():
            with _lock:
                _opened.append(place(self))

    ConnectionPool.__init__ = recorded  # type: ignore[method-assign]
    _original.append(original)
    _installed = True


_original: list[Any] = []  # redis-py's own ConnectionPool.__init__, while patched


def uninstall() -> None:
    """Put redis-py's ``ConnectionPool.__init__`` back (the last Session has ended)."""
    global _installed
    if not _installed or not _original:
        return
    from redis.connection import ConnectionPool

    ConnectionPool.__init__ = _original.pop()  # type: ignore[method-assign]
    _installed = False


@contextlib.contextmanager
def watching() -> Iterator[None]:
    """Record the pools made in this block (the app's factory and setup)."""
    global _watching
    install()
    with _lock:
        _watching += 1
    try:
        yield
    finally:
        with _lock:
            _watching -= 1


def mark() -> int:
    """Where this run's record begins (pools made before belong to earlier runs)."""
    install()
    with _lock:
        return len(_opened)


def place(pool: Any) -> str:
    """Where a pool connects: ``host:port/db``, or ``unix:path/db``."""
    kwargs = getattr(pool, "connection_kwargs", {}) or {}
    db = kwargs.get("db", 0) or 0
    if kwargs.get("path"):
        return f"unix:{kwargs['path']}/{db}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"


def count_keys(where: str) -> int | None:
    """The number of keys in a database on loopback; None elsewhere or unreachable."""
    host_port, _, db = where.rpartition("/")
    host, _, port = host_port.rpartition(":")
    if host not in _LOOPBACK:
        return None
    try:
        import redis

        client = redis.Redis(host=host, port=int(port), db=int(db), socket_connect_timeout=1)
        try:
            return int(client.dbsize())
        finally:
            client.close()
    except Exception:
        return None


class ForeignRedis:
    """The Redis databases this run's app opened besides the scratch one, with their
    numbers of keys at the start."""

    def __init__(self, scratch: str | None, since: int, *, strict: bool, where: str) -> None:
        self.scratch = scratch  # "127.0.0.1:6379/<n>" of the scratch database, if any
        self.since = since  # mark() when this run began
        self.where = where
        self.before = {p: count_keys(p) for p in self._foreign()}
        if strict and self.before:
            raise TargetSetupError(
                f"{where}: the app opens Redis {', '.join(self.before)}, not the fuzzer's "
                f"scratch database, which it cannot reset between executions "
                f"(--strict-isolation); declare Target(redis=True) and build the client from "
                f"the URL the factory then receives"
            )

    def _foreign(self) -> list[str]:
        with _lock:
            opened = list(dict.fromkeys(_opened[self.since :]))
        return [p for p in opened if not self._is_scratch(p)]

    def _is_scratch(self, where: str) -> bool:
        if self.scratch is None:
            return False
        host_port, _, db = where.rpartition("/")
        host, _, port = host_port.rpartition(":")
        s_host_port, _, s_db = self.scratch.rpartition("/")
        _, _, s_port = s_host_port.rpartition(":")
        return host in _LOOPBACK and port == s_port and db == s_db

    def notices(self) -> list[str]:
        """One line per database, said when the run starts."""
        return [
            f"the app opens Redis {p} ({_keys(n)}), not the fuzzer's scratch database: what "
            f"requests write there is not reset between executions (--strict-isolation "
            f"refuses this)"
            for p, n in self.before.items()
        ]

    def after(self) -> list[str]:
        """One line per database the app opened (at the start or during the run), with
        its keys now and before."""
        lines = []
        for p in self._foreign():
            now = count_keys(p)
            if p in self.before:
                then = self.before[p]
                change = f"{_keys(now)} after the run, {_keys(then)} before"
            else:
                change = f"opened during the run; {_keys(now)} after it"
            lines.append(
                f"Redis {p} (not the fuzzer's): {change}; the fuzzer neither resets nor "
                f"removes them"
            )
        return lines


def _keys(n: int | None) -> str:
    return "keys not counted: not on loopback or not reachable" if n is None else f"{n} keys"
