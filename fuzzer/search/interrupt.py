"""A stop requested from outside (SIGTERM), seen by the search between executions.

A signal handler runs in the main thread, which is inside trio's event loop while the
search runs in a worker thread: raising there could land in trio's own code. So the
handler only sets a flag, and the search raises ``KeyboardInterrupt`` in its own
thread before its next execution, which unwinds as Ctrl-C does (the server stops, the
scratch databases are dropped). This does not depend on SIGINT's disposition, which a
non-interactive shell sets to "ignored" for its background jobs.
"""

from __future__ import annotations

import threading

_requested = threading.Event()


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
