"""Building the app on scratch SQLite files with the pins the spec needs, and choosing
and running its setup: the app's own commands and seed functions, else ``create_all``."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from fuzzer import compat
from fuzzer.errors import FuzzerError, TargetSetupError, describe
from fuzzer.init import bodies
from fuzzer.init.factory import Factory, is_app
from fuzzer.init.plan import Plan, Table
from fuzzer.init.pysource import literal

_INIT_COMMAND = re.compile(r"^(init|create)[-_]?(db|database|tables?)$|^initdb$")
_SEED_COMMAND = re.compile(r"seed|fixture|populate|(sample|demo|test|fake|dev)[-_]?data|fake|roles")


def build_and_setup(
    factory: Factory, plan: Plan, stem: str, quiet: bool = False
) -> tuple[Any, dict[str, Table]]:
    """Build the app on scratch SQLite files (one per bind it has), run the setup steps
    it offers, and read the rows they made."""
    from fuzzer.target.apps import flask_command

    urls = {"default": f"sqlite:///{stem}.db"}
    pins: dict[str, Any] = {"SQLALCHEMY_DATABASE_URI": urls["default"]}
    app = build(factory, pins)
    binds = app.config.get("SQLALCHEMY_BINDS") or {}
    if binds:  # never let setup reach a database the config names
        urls.update({str(name): f"sqlite:///{stem}-{name}.db" for name in binds})
        pins["SQLALCHEMY_BINDS"] = {name: urls[str(name)] for name in binds}
    pins.update(_needed_pins(app, plan, quiet))
    if len(pins) > 1:  # rebuild with every pin, as the spec will
        dispose(app)
        app = build(factory, pins)
    extension = compat.flask_sqlalchemy(app)
    steps = setup_steps(app, factory)
    done: list[tuple[str, str]] = []
    with app.app_context():
        for kind, name in steps:
            try:
                if kind == "create_all":
                    extension.create_all()
                elif kind == "call":
                    _function(name)()
                else:
                    flask_command(app, *name.split())
                done.append((kind, name))
            except Exception as exc:
                with contextlib.suppress(Exception):
                    extension.session.rollback()
                if not quiet:
                    why = str(exc) if isinstance(exc, FuzzerError) else describe(exc)
                    what = f"{name}()" if kind == "call" else f"`flask {name}`"
                    plan.setup_notes.append(f"{what} failed when fuzzer init ran it: {why}")
    if not quiet:
        plan.setup = done
        plan.pins = _pin_sources(pins, named=bool(binds))
        plan.databases = tuple(urls) if binds else ()
        if not done:
            plan.setup_notes.append(
                "fuzzer init found no way to create the tables (no Flask-SQLAlchemy, no init-db "
                "command): create them and insert the first rows here"
            )
    rows: dict[str, Table] = {}
    for name, url in urls.items():
        for table, info in read_rows(url).items():
            rows[f"{name}.{table}" if binds else table] = info
    return app, rows


def setup_steps(app: Any, factory: Factory) -> list[tuple[str, str]]:
    """What setup runs: the app's command that creates the tables (else ``create_all``),
    then its seed-like commands (in CLI groups too) and module functions (``seed()``,
    ``create_test_data()``), those that create users first."""
    commands = dict(_cli_commands(getattr(app, "cli", None)))
    steps: list[tuple[str, str]] = []
    init = sorted(name for name in commands if _INIT_COMMAND.search(name.rsplit(" ", 1)[-1]))
    if init:
        steps.append(("command", init[0]))
    elif compat.flask_sqlalchemy(app) is not None:
        steps.append(("create_all", ""))
    seeds: list[tuple[int, str, str, str]] = []
    for name, command in commands.items():
        last = name.rsplit(" ", 1)[-1]
        if _SEED_COMMAND.search(last) and name not in init:
            callback = getattr(command, "callback", None)
            seeds.append((_seed_rank(last, callback), name, "command", name))
    called: set[str] = set()  # what the commands' code calls: no need to call it again
    for command in commands.values():
        for inner in bodies._unwrapped(getattr(command, "callback", None)):
            code = getattr(inner, "__code__", None)
            called |= set(bodies._names(code)) if code is not None else set()
    for where, function in _seed_functions(app, factory):
        if function.__name__ not in called:
            seeds.append((_seed_rank(function.__name__, function), where, "call", where))
    return steps + [(kind, name) for _, _, kind, name in sorted(seeds)]


def _cli_commands(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """The app's CLI commands as ``"name"`` or ``"group sub"``, through nested groups."""
    for name, command in sorted((getattr(group, "commands", None) or {}).items()):
        if prefix == "" and name in ("run", "shell", "routes"):
            continue
        if getattr(command, "commands", None) is not None:
            yield from _cli_commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def _seed_rank(name: str, function: Any) -> int:
    """Lower first: what creates users (its code names a user model or a password), then
    roles, then anything else that seeds."""
    names: set[str] = set()
    for inner in bodies._unwrapped(function) if function is not None else ():
        code = getattr(inner, "__code__", None)
        if code is not None:
            names |= {n.lower() for n in bodies._names(code)}
            names |= {str(c).lower() for c in code.co_consts if isinstance(c, str)}
    if {"user", "users", "set_password", "password", "password_hash"} & names:
        return 0
    if "role" in name or {"role", "roles", "insert_roles"} & names:
        return 1
    return 2


_SEED_FUNCTION = re.compile(
    r"^(seed\w*|populate\w*|create_(test|sample|demo|fake|dev)_data|insert_roles|"
    r"create_roles|load_fixtures|fake_data|sample_data|test_data)$"
)


def _seed_functions(app: Any, factory: Factory) -> Iterator[tuple[str, Any]]:
    """Module functions of the app's package named like a seed, callable without
    arguments: ``("package.module:create_test_data", function)``."""
    package = factory.module.split(".")[0]
    seen: set[int] = set()
    for module_name, module in sorted(sys.modules.items()):
        if module is None or not (module_name == package or module_name.startswith(package + ".")):
            continue
        for name, value in sorted(vars(module).items()):
            if (
                not _SEED_FUNCTION.match(name)
                or not callable(value)
                or isinstance(value, type)
                or getattr(value, "__module__", None) != module_name
                or id(value) in seen
                or not callable_without_arguments(value)
            ):
                continue
            seen.add(id(value))
            yield f"{module_name}:{name}", value


def callable_without_arguments(function: Any) -> bool:
    import inspect

    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return False
    return all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in signature.parameters.values()
    )


def _function(where: str) -> Any:
    import importlib

    module, _, name = where.partition(":")
    return getattr(importlib.import_module(module), name)


def build(factory: Factory, pins: Mapping[str, Any]) -> Any:
    from fuzzer.target.apps import pinned_config

    try:
        with pinned_config(**pins):
            app = factory.build()
    except FuzzerError:
        raise
    except Exception as exc:
        raise TargetSetupError(
            f"{factory.reference}: the app factory raised {describe(exc)} while fuzzer init "
            f"built it on a scratch SQLite database"
        ) from exc
    if not is_app(app):
        raise TargetSetupError(
            f"{factory.reference} returned {type(app).__name__}, expected a Flask app"
        )
    return app


def _needed_pins(app: Any, plan: Plan, quiet: bool) -> dict[str, Any]:
    pins: dict[str, Any] = {}
    config = app.config
    notes = []
    if "flask_wtf" in sys.modules and config.get("WTF_CSRF_ENABLED", True):
        pins["WTF_CSRF_ENABLED"] = False
        notes.append("CSRF off: the fuzzer posts forms without fetching a token first")
    if config.get("SERVER_NAME"):
        pins["SERVER_NAME"] = None
        notes.append("no SERVER_NAME: the fuzzer serves the app on 127.0.0.1 and a port of its own")
    if not config.get("SECRET_KEY") and (
        getattr(app, "login_manager", None) is not None or "flask_wtf" in sys.modules
    ):
        pins["SECRET_KEY"] = "fuzz"
        notes.append("a SECRET_KEY: sessions (and logins) need one")
    if config.get("SQLALCHEMY_BINDS"):
        notes.append("each of its binds on a scratch database of its own (Target.databases)")
    if not quiet:
        plan.pin_notes = notes
    return pins


def _pin_sources(pins: Mapping[str, Any], named: bool) -> dict[str, str]:
    """The pins as source: the database URLs come from the factory's argument (a URL, or
    with binds a mapping of database name to URL)."""
    sources = {}
    for key, value in pins.items():
        if key == "SQLALCHEMY_DATABASE_URI":
            sources[key] = 'database_url["default"]' if named else "database_url"
        elif key == "SQLALCHEMY_BINDS":
            binds = ", ".join(f"{literal(n)}: database_url[{literal(n)}]" for n in value)
            sources[key] = "{" + binds + "}"
        else:
            sources[key] = literal(value)
    return sources


def read_rows(url: str) -> dict[str, Table]:
    from sqlalchemy import MetaData

    engine = compat.create_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(bind=engine)
        tables = {}
        with engine.connect() as conn:
            for table in metadata.sorted_tables:
                pk = tuple(c.name for c in table.primary_key.columns)
                order = [table.c[c] for c in pk] or list(table.c)
                rows = [tuple(r) for r in conn.execute(table.select().order_by(*order))]
                types = tuple(type(c.type).__name__ for c in table.columns)
                tables[table.name] = Table(tuple(table.c.keys()), pk, types, rows)
        return tables
    finally:
        engine.dispose()


def dispose(app: Any) -> None:
    if compat.flask_sqlalchemy(app) is not None:
        with app.app_context(), contextlib.suppress(Exception):
            for engine in compat.sqlalchemy_engines(app).values():
                engine.dispose()
