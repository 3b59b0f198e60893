"""A stop requested from outside (SIGTERM, Ctrl-C), seen by the search between executions.

A signal handler runs in the main thread, which is where the search runs: raising
there could land anywhere, in Hypothesis's own code (its gc callback, where an
exception is printed and ignored) or trio's. So while a session is open
(``watched()``) the handler only sets a flag, and the search raises
``KeyboardInterrupt`` before its next execution, which unwinds as Ctrl-C does (the
server stops, the scratch databases are dropped). This does not depend on SIGINT's
disposition, which a non-interactive shell sets to "ignored" for its background jobs.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_requested = threading.Event()
_watchers = 0
_lock = threading.Lock()


@contextlib.contextmanager
def watched() -> Iterator[None]:
    """While the block runs, something calls ``check()`` between executions."""
    global _watchers
    with _lock:
        _watchers += 1
    try:
        yield
    finally:
        with _lock:
            _watchers -= 1


def watching() -> bool:
    return _watchers > 0


def request() -> None:
    _requested.set()


def requested() -> bool:
    return _requested.is_set()


def clear() -> None:
    _requested.clear()


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a stop was requested."""
    if _requested.is_set():
        raise KeyboardInterrupt
