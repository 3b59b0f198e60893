"""The fuzzer's instrumentation of the target's process, and targets loaded with it.

The SQL gates and the ``time.sleep`` patch (``gates``) and the patches of the cache
backends and redis-py (``caches``) are in place while a ``Session`` is open
(``instrumented()``, counted: the last session to end undoes them), or for the rest of
the process after ``install()`` (a generated regression test, a tool that loads
targets itself). ``load_target`` imports the target's module instrumented, so a module
that binds ``time.sleep`` at import binds the patched one (which sleeps for real outside
a fuzzed request).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from fuzzer.execute import gates
from fuzzer.execute.stores import caches, foreign
from fuzzer.target.contract import Target, import_target

_lock = threading.Lock()
_holders = 0  # the ``instrumented()`` blocks running
_permanent = False  # ``install()`` was called: instrumented until the process ends


def install() -> None:
    """Gates, the sleep patch and the cache and Redis patches, for the rest of the process."""
    global _permanent
    with _lock:
        _permanent = True
        _apply()


@contextlib.contextmanager
def instrumented() -> Iterator[None]:
    """The instrumentation for the length of the block (new cache subclasses too)."""
    global _holders
    with _lock:
        _holders += 1
        _apply()
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and not _permanent:
                _remove()


def active() -> bool:
    return gates.installed()


def _apply() -> None:
    gates.install()
    caches.instrument()  # Flask-Caching's backends and redis-py, when installed


def _remove() -> None:
    gates.uninstall()
    caches.uninstrument()
    foreign.uninstall()  # installed on first use by a session (the Redis pools it records)


def load_target(reference: str) -> Target:
    """Import and validate ``package.module:attribute`` with the instrumentation in place."""
    with instrumented():
        return import_target(reference)
