"""The fuzzer's instrumentation of the target's process, and targets loaded with it.

``install()`` registers the SQL gates and the ``time.sleep`` patch (``gates``) and patches
the cache backends and redis-py (``caches``), once per process. ``load_target`` installs
it before importing the target's module, so a module that binds ``time.sleep`` at import
binds the patched one.
"""

from __future__ import annotations

from fuzzer.execute import caches, gates
from fuzzer.target.contract import Target, import_target


def install() -> None:
    """Gates, the sleep patch and the cache and Redis patches, once per process."""
    gates.install()
    caches.instrument()  # Flask-Caching's backends and redis-py, when installed


def load_target(reference: str) -> Target:
    """Install the instrumentation, then import and validate ``package.module:attribute``."""
    install()
    return import_target(reference)
