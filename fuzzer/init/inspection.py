"""Building the app in fresh processes, twice, and reading from it everything the spec needs."""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

from fuzzer.errors import FuzzerError, TargetSetupError
from fuzzer.init.factory import Factory, load_factory
from fuzzer.init.identities import plan_identities
from fuzzer.init.plan import Plan, Table
from fuzzer.init.routes import openapi_document, routes
from fuzzer.init.seeding import (
    build_and_setup,
    dispose,
)
from fuzzer.init.varies import differing_columns, time_columns


def inspect_app(factory: Factory) -> Plan:
    """Build the app twice on scratch SQLite files, run the proposed setup on each, and
    read what the spec needs. Each build happens in a fresh Python process: many apps
    can build only one app per process (a blueprint whose routes are added in the
    factory, an extension bound at import), and the process that runs the check builds
    it once more."""
    with tempfile.TemporaryDirectory(prefix="fuzzer-init-") as directory:
        plan, rows = _inspect_elsewhere(factory, os.path.join(directory, "first"), True)
        _, other = _inspect_elsewhere(factory, os.path.join(directory, "again"), False)
    assert plan is not None
    plan.factory = factory
    differing = differing_columns(rows, other)
    plan.ignore_columns = differing + [c for c in plan.ignore_columns if c not in differing]
    return plan


def _inspect_elsewhere(
    factory: Factory, stem: str, primary: bool
) -> tuple[Plan | None, dict[str, Table]]:
    """``_inspect_here`` in a fresh Python process, with this one's import path."""
    import pickle
    import subprocess

    given, taken = f"{stem}.in", f"{stem}.out"
    with open(given, "wb") as handle:
        pickle.dump((factory.reference, stem, primary, list(sys.path)), handle)
    path = os.pathsep.join(p or os.getcwd() for p in sys.path)  # this fuzzer, this app
    process = subprocess.run(
        [sys.executable, "-c", "from fuzzer.init.inspection import child; child()", given, taken],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": path},
    )
    if not os.path.exists(taken):
        said = [line for line in process.stderr.splitlines() if line.strip()]
        raise TargetSetupError(
            f"{factory.reference}: building the app in a fresh process for fuzzer init "
            f"failed (exit {process.returncode})" + (f": {said[-1].strip()}" if said else "")
        )
    with open(taken, "rb") as handle:
        kind, value = pickle.load(handle)
    if kind == "error":
        raise value
    if kind == "bug":
        raise RuntimeError(f"fuzzer init, inspecting the app in a fresh process: {value}")
    plan, rows = value
    return plan, rows


def child() -> None:
    """The entry point of ``_inspect_elsewhere``'s process: arguments in one pickle file,
    the plan and rows (or the error) written to another."""
    import pickle
    import traceback

    given, taken = sys.argv[1], sys.argv[2]
    with open(given, "rb") as handle:
        reference, stem, primary, path = pickle.load(handle)
    sys.path[:] = path
    result: tuple[str, Any]
    try:
        result = ("ok", _inspect_here(reference, stem, primary))
        payload = pickle.dumps(result)
    except FuzzerError as exc:
        payload = pickle.dumps(("error", exc))
    except Exception:
        payload = pickle.dumps(("bug", traceback.format_exc(limit=-3).strip()))
    with open(taken, "wb") as handle:
        handle.write(payload)


def _inspect_here(reference: str, stem: str, primary: bool) -> tuple[Plan | None, dict[str, Table]]:
    """Build the app once, run the setup, read its rows; the primary build also reads the
    routes, identities and bodies."""
    factory = load_factory(reference)
    plan = Plan(factory, spec_name(factory))
    app, rows = build_and_setup(factory, plan, stem, quiet=not primary)
    try:
        if not primary:
            return None, rows
        plan.ignore_columns = time_columns(app, plan, rows)
        plan_identities(app, plan, rows)
        document = openapi_document(app, plan)
        plan.routes = list(routes(app, plan, rows, document))
    finally:
        dispose(app)
    plan.factory = None  # type: ignore[assignment]  # the parent has its own
    return plan, rows


_GENERIC_MODULES = {"app", "application", "main", "wsgi", "factory", "__init__", "server", "web"}


def spec_name(factory: Factory) -> str:
    parts = [p for p in factory.module.split(".") if p not in _GENERIC_MODULES]
    return (parts[-1] if parts else factory.module.split(".")[0]).replace("-", "_")
