"""A stop requested from outside (Ctrl-C, SIGTERM), seen by the search between executions.

A signal handler runs in the main thread between two bytecodes of whatever it runs:
Hypothesis's engine, trio's event loop, or a garbage collector callback of Hypothesis's,
where a ``KeyboardInterrupt`` is printed as "Exception ignored" and lost (issue 21:
Ctrl-C lost once in 26 tries). So the handler sets a flag first, always; while a search
is running (``watched``) that is all it does, and the search raises
``KeyboardInterrupt`` before its next execution, in its own code, which unwinds as
Ctrl-C does (the server stops, the scratch databases are dropped). Outside a
search (loading the target, creating databases) it raises ``KeyboardInterrupt`` at
once as well; if that one is lost, the flag is still set, and the next check (the
session's start, every execution, the command's end) raises or reports it. A second
signal while the first is still pending raises at once wherever it lands: a way out of
code that never checks.

SIGTERM is handled alike, so a CI job's timeout stops as Ctrl-C does. SIGINT is left
alone when it is ignored: a non-interactive shell starts its background jobs so
(``sh -c 'fuzzer run … &'``), and ``kill -INT`` must not stop them.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = [
    "check",
    "clear",
    "handle",
    "install",
    "installed",
    "request",
    "requested",
    "watched",
]

_requested = threading.Event()
_watchers = 0  # runs whose search checks the flag now


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


@contextlib.contextmanager
def watched() -> Iterator[None]:
    """While inside, a signal only sets the flag: the code inside checks it (``check``)
    often enough to stop within a few seconds. Enter and leave it in the main thread."""
    global _watchers
    _watchers += 1
    try:
        yield
    finally:
        _watchers -= 1


def handle(signum: int, frame: FrameType | None) -> None:
    """The handler of SIGINT and SIGTERM (``install``)."""
    first = not _requested.is_set()
    _requested.set()
    if first and (_watchers > 0 or _in_trio()):
        return  # raising here could land in trio's own code: the search raises it
    raise KeyboardInterrupt


def install() -> None:
    """Make SIGTERM, and SIGINT unless it is ignored, stop the run through the flag."""
    signal.signal(signal.SIGTERM, handle)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, handle)


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """``install`` for the duration of one command; then the handlers it replaced are
    put back and the flag cleared (a command run in-process, by a test or a library, leaves
    nothing behind for the next one)."""
    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    install()
    try:
        yield
    finally:
        for number, handler in before.items():
            if handler is not None:
                signal.signal(number, handler)
        clear()


def _in_trio() -> bool:
    try:
        import trio

        trio.lowlevel.current_trio_token()
    except (ImportError, RuntimeError):
        return False
    return True


def is_stop(exc: BaseException) -> bool:
    """Ctrl-C or SIGTERM, raised alone or (by trio, from a task of a nursery) in a group."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    return isinstance(exc, BaseExceptionGroup) and exc.subgroup(KeyboardInterrupt) is not None
