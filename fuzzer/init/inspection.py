"""Building the app in fresh processes, twice, and reading from it everything the spec needs."""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

from flask import Flask

from fuzzer.errors import FuzzerError, TargetSetupError
from fuzzer.execute.stores.caches import redis_clients
from fuzzer.init.factory import Factory, load_factory
from fuzzer.init.inputs.routes import openapi_document, routes
from fuzzer.init.inputs.varies import differing_columns, time_columns
from fuzzer.init.plan import Plan
from fuzzer.init.setup.helpers import helper_steps
from fuzzer.init.setup.identities import plan_identities, steady_names, user_table
from fuzzer.init.setup.seeding import Given, build_app, dispose, read_all_rows, setup_steps
from fuzzer.init.setup.trials import Step, choose_setup, run_setup


def inspect_app(factory: Factory) -> Plan:
    """Build the app twice on scratch SQLite files, run the setup on each, and read what
    the spec needs. Each build happens in a fresh Python process: many apps can build
    only one app per process (a blueprint whose routes are added in the factory, an
    extension bound at import), so an app that needs pins is built again in another
    one, and the process that runs the check builds it once more."""
    with tempfile.TemporaryDirectory(prefix="fuzzer-init-") as directory:
        found = _inspect_elsewhere(factory, os.path.join(directory, "first"), None, None)
        if found[0] == "pins":  # built without the pins it needs
            found = _inspect_elsewhere(factory, os.path.join(directory, "pinned"), found[1], None)
        _, (plan, rows, given) = found
        again = _inspect_elsewhere(factory, os.path.join(directory, "again"), given, plan.setup)
        _, (_, other, _) = again
    plan.factory = factory
    steady_names(plan, rows, other)
    differing = differing_columns(rows, other)
    plan.ignore_columns = differing + [c for c in plan.ignore_columns if c not in differing]
    return plan


_CHILD = "from fuzzer.init.inspection import child; child()"


def _inspect_elsewhere(
    factory: Factory, stem: str, given: Given | None, setup: list[Step] | None
) -> tuple[str, Any]:
    """``_inspect_here`` in a fresh Python process, with this one's import path."""
    import pickle
    import subprocess

    arguments, taken = f"{stem}.in", f"{stem}.out"
    with open(arguments, "wb") as handle:
        pickle.dump((factory.reference, stem, given, setup, list(sys.path)), handle)
    path = os.pathsep.join(p or os.getcwd() for p in sys.path)  # this fuzzer, this app
    process = subprocess.run(
        [sys.executable, "-c", _CHILD, arguments, taken],
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
    return kind, value


def child() -> None:
    """The entry point of ``_inspect_elsewhere``'s process: arguments in one pickle file,
    the result (or the error) written to another."""
    import pickle
    import traceback

    arguments, taken = sys.argv[1], sys.argv[2]
    with open(arguments, "rb") as handle:
        reference, stem, given, setup, path = pickle.load(handle)
    sys.path[:] = path
    try:
        payload = pickle.dumps(_inspect_here(reference, stem, given, setup))
    except FuzzerError as exc:
        payload = pickle.dumps(("error", exc))
    except Exception:
        payload = pickle.dumps(("bug", traceback.format_exc(limit=-3).strip()))
    with open(taken, "wb") as handle:
        handle.write(payload)


def _inspect_here(
    reference: str, stem: str, given: Given | None, setup: list[Step] | None
) -> tuple[str, Any]:
    """Build the app once and set it up: with ``setup`` given, run those steps and read
    the rows; else choose the setup by trying the candidates, and read the routes,
    identities and bodies too. ``("pins", given)`` when the app needs pins it was not
    built with."""
    factory = load_factory(reference)
    plan = Plan(factory, spec_name(factory))
    built = build_app(factory, plan, stem, given)
    if not isinstance(built[0], Flask):
        return "pins", built
    app, urls, _ = built
    pins = given if given is not None else ((), {}, [])
    try:
        if setup is not None:
            run_setup(app, setup)
            return "ok", (None, read_all_rows(urls), pins)
        candidates = setup_steps(app, factory)
        if candidates:  # after the tables: the app's own test fixtures and helpers
            candidates += [
                step for step in helper_steps(factory, plan.setup_notes) if step not in candidates
            ]
        if not candidates:
            plan.setup_notes.append(
                "fuzzer init found no way to create the tables (no Flask-SQLAlchemy, no init-db "
                "command): create them and insert the first rows here"
            )
        rows = choose_setup(app, plan, urls, candidates, user_table(app)) if candidates else {}
        plan.ignore_columns = time_columns(app, plan, rows)
        plan_identities(app, plan, rows)
        document = openapi_document(app, plan)
        plan.routes = list(routes(app, plan, rows, document))
        for client in redis_clients(app):
            kwargs = client.connection_pool.connection_kwargs
            plan.setup_notes.append(
                f"The app keeps a Redis client for {kwargs.get('host')}:{kwargs.get('port')}/"
                f"{kwargs.get('db', 0)}, which the fuzzer does not own: it is fuzzed as long "
                "as no request uses it (a request that does stops the run; then declare "
                "Target(redis=True) and build the client from the URL the factory receives)"
            )
    finally:
        dispose(app)
    plan.factory = None  # type: ignore[assignment]  # the parent has its own
    return "ok", (plan, rows, pins)


_GENERIC_MODULES = {"app", "application", "main", "wsgi", "factory", "__init__", "server", "web"}


def spec_name(factory: Factory) -> str:
    parts = [p for p in factory.module.split(".") if p not in _GENERIC_MODULES]
    return (parts[-1] if parts else factory.module.split(".")[0]).replace("-", "_")
