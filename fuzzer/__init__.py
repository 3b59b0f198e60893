"""A concurrency fuzzer for Flask + SQLAlchemy applications.

The public API, nothing else::

    from fuzzer import Target, Endpoint, Identity, Login, Settings, checkpoint, fuzz, replay
    from fuzzer import assert_serializable

``fuzz`` is for a test suite (it fails with the report when it finds a race);
``assert_serializable`` is what a generated regression test calls. ``Settings`` holds a
run's options (budgets, seed, database, limits, where to write), whole. For specs that
drive an existing app: ``paths`` and ``values_of`` (strategies over the rows present
after setup), ``pinned_config``, ``flask_command`` and ``flask_login_session`` (build,
seed and log into a Flask app with its own code).

The names are imported when first used, so ``import fuzzer`` (the pytest plugin, in
every session of an app's suite) costs nothing until a test fuzzes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fuzzer.version import __version__

if TYPE_CHECKING:
    from fuzzer.api import assert_serializable, fuzz, replay
    from fuzzer.execute.gates import checkpoint
    from fuzzer.settings import Settings
    from fuzzer.target.apps import (
        app_request,
        basic_auth,
        bearer_token,
        flask_command,
        flask_login_session,
        pinned_config,
        stored_token,
    )
    from fuzzer.target.contract import Endpoint, Identity, Login, Target
    from fuzzer.target.domains import paths, values_of
    from fuzzer.target.fixtures import pytest_fixture
    from fuzzer.target.rows import fill_tables

_WHERE = {
    "assert_serializable": "fuzzer.api",
    "fuzz": "fuzzer.api",
    "replay": "fuzzer.api",
    "checkpoint": "fuzzer.execute.gates",
    "Settings": "fuzzer.settings",
    "app_request": "fuzzer.target.apps",
    "basic_auth": "fuzzer.target.apps",
    "bearer_token": "fuzzer.target.apps",
    "flask_command": "fuzzer.target.apps",
    "flask_login_session": "fuzzer.target.apps",
    "pinned_config": "fuzzer.target.apps",
    "stored_token": "fuzzer.target.apps",
    "Endpoint": "fuzzer.target.contract",
    "Identity": "fuzzer.target.contract",
    "Login": "fuzzer.target.contract",
    "Target": "fuzzer.target.contract",
    "pytest_fixture": "fuzzer.target.fixtures",
    "paths": "fuzzer.target.domains",
    "values_of": "fuzzer.target.domains",
    "fill_tables": "fuzzer.target.rows",
}

__all__ = [
    "Endpoint",
    "Identity",
    "Login",
    "Settings",
    "Target",
    "__version__",
    "app_request",
    "assert_serializable",
    "basic_auth",
    "bearer_token",
    "checkpoint",
    "fill_tables",
    "flask_command",
    "flask_login_session",
    "fuzz",
    "paths",
    "pinned_config",
    "pytest_fixture",
    "replay",
    "stored_token",
    "values_of",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'fuzzer' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
