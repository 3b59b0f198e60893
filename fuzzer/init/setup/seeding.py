"""Building the app on scratch SQLite files with the pins the spec needs, and choosing
and running its setup: the app's own commands and seed functions, else ``create_all``."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fuzzer import compat
from fuzzer.errors import FuzzerError, TargetSetupError, describe
from fuzzer.init.factory import Factory, is_app
from fuzzer.init.inputs import viewcode
from fuzzer.init.plan import Plan, Table
from fuzzer.init.pysource import literal

_INIT_COMMAND = re.compile(r"^(init|create)[-_]?(db|database|tables?)$|^initdb$")
_SEED_COMMAND = re.compile(r"seed|fixture|populate|(sample|demo|test|fake|dev)[-_]?data|fake|roles")


Given = tuple[tuple[str, ...], dict[str, Any], list[str]]  # bind names, pins, their notes


def build_app(
    factory: Factory, plan: Plan, stem: str, given: Given | None
) -> tuple[Any, dict[str, str], dict[str, Any]] | Given:
    """Build the app on scratch SQLite files (one per bind it has) with the pins
    ``given``: ``(app, database URLs, pins)``. Built for the first time (``given`` is
    None), an app that needs pins it was not built with (CSRF off, a bind of its own)
    is not built again here: the pins are returned, and the caller builds it with them
    in a fresh process (a factory may run only once per process)."""
    binds, flags, notes = given if given is not None else ((), {}, [])
    urls = {"default": f"sqlite:///{stem}.db"}
    urls.update({name: f"sqlite:///{stem}-{name}.db" for name in binds})
    pins: dict[str, Any] = {"SQLALCHEMY_DATABASE_URI": urls["default"], **flags}
    if binds:  # never let setup reach a database the config names
        pins["SQLALCHEMY_BINDS"] = {name: urls[name] for name in binds}
    app = build(factory, pins)
    if given is None:
        found = tuple(str(name) for name in app.config.get("SQLALCHEMY_BINDS") or {})
        notes = []
        flags = _needed_pins(app, notes)
        if found or flags:
            dispose(app)
            return found, flags, notes
    plan.pin_notes = list(notes)
    plan.pins = _pin_sources(pins, named=bool(binds))
    plan.databases = tuple(urls) if binds else ()
    return app, urls, pins


def run_step(app: Any, kind: str, name: str) -> None:
    """One setup step, inside the app's context: ``create_all``, a CLI command, a
    module function or rows made from the models."""
    from fuzzer.target.apps import app_request, flask_command
    from fuzzer.target.fixtures import pytest_fixture
    from fuzzer.target.rows import fill_tables

    if kind == "create_all":
        compat.flask_sqlalchemy(app).create_all()
    elif kind in ("call", "helper"):  # a seed function, or one of the tests' helpers
        _function(name)()
    elif kind == "fixture":  # one of the app's own test fixtures
        pytest_fixture(app, name)
    elif kind == "fill":  # every empty table, or the one named topped up to two rows
        fill_tables(app, tables=[name] if name else None)
    elif kind == "request":  # a form posted once: {"path": ..., "form": {...}}
        sent = json.loads(name)
        app_request(app, "POST", sent["path"], form=sent["form"])
    else:
        flask_command(app, *name.split())


def read_all_rows(urls: Mapping[str, str]) -> dict[str, Table]:
    """The rows of every scratch database, by table (``bind.table`` with binds)."""
    rows: dict[str, Table] = {}
    for name, url in urls.items():
        for table, info in read_rows(url).items():
            rows[f"{name}.{table}" if len(urls) > 1 else table] = info
    return rows


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
        if name in init or not _may_seed(name, command):
            continue
        callback = getattr(command, "callback", None)
        rank = _seed_rank(last, callback) + (0 if _SEED_COMMAND.search(last) else 3)
        seeds.append((rank, name, "command", name))
    called: set[str] = set()  # what the commands' code calls: no need to call it again
    for command in commands.values():
        for inner in viewcode.unwrapped(getattr(command, "callback", None)):
            code = getattr(inner, "__code__", None)
            called |= set(viewcode.code_names(code)) if code is not None else set()
    for where, function in _seed_functions(app, factory):
        if function.__name__ not in called:
            seeds.append((_seed_rank(function.__name__, function), where, "call", where))
    return steps + [(kind, name) for _, _, kind, name in sorted(seeds)]


# commands that serve, watch, send, migrate, translate or build: not a seed, and some
# never return or write files in the project
_NOT_A_SEED = re.compile(
    r"^(db|rq|celery|babel|assets|translate|digest)\b|run|serve|shell|worker|schedul|watch|"
    r"send|mail|deploy|compile|drop|delete|reset|clear|purge|destroy|remove|backup|export|dump"
)


def _may_seed(name: str, command: Any) -> bool:
    """A command fuzzer init may try as a seed: one that takes no required argument
    and whose name does not say it serves, sends or destroys."""
    if _NOT_A_SEED.search(name):
        return False
    for param in getattr(command, "params", ()):
        default = getattr(param, "default", None)
        unset = default is None or "UNSET" in repr(default)  # click 8.2+: a sentinel
        if getattr(param, "required", False) and unset:
            return False
        if getattr(param, "prompt", None):
            return False
    return True


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
    for inner in viewcode.unwrapped(function) if function is not None else ():
        code = getattr(inner, "__code__", None)
        if code is not None:
            names |= {n.lower() for n in viewcode.code_names(code)}
            names |= {str(c).lower() for c in code.co_consts if isinstance(c, str)}
    if {"user", "users", "set_password", "password", "password_hash"} & names:
        return 0
    if "role" in name or {"role", "roles", "insert_roles"} & names:
        return 1
    return 2


_SEED_FUNCTION = re.compile(
    r"^(seed\w*|populate\w*|create_(test|sample|demo|fake|dev)_data|insert_roles|"
    r"create_roles|load_fixtures|fake\w*|lorem\w*|sample_data|test_data|create_demo\w*|"
    r"create_\w*_(data|fixtures)|generate_(fake|sample|demo|test)\w*)$"
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
            if isinstance(value, type) and getattr(value, "__module__", None) == module_name:
                yield from _seed_methods(module_name, value, seen)
                continue
            if (
                not _SEED_FUNCTION.match(name)
                or not callable(value)
                or getattr(value, "__module__", None) != module_name
                or id(value) in seen
                or not callable_without_arguments(value)
            ):
                continue
            seen.add(id(value))
            yield f"{module_name}:{name}", value


def _seed_methods(module_name: str, cls: type, seen: set[int]) -> Iterator[tuple[str, Any]]:
    """Classmethods and staticmethods of a class of the app's named like a seed
    (``Project.create_demo_project()``): ``("package.module:Project.create_demo_project",
    method)``."""
    for name, raw in sorted(vars(cls).items()):
        if not isinstance(raw, classmethod | staticmethod) or not _SEED_FUNCTION.match(name):
            continue
        method = getattr(cls, name)
        if id(raw) in seen or not callable_without_arguments(method):
            continue
        seen.add(id(raw))
        yield f"{module_name}:{cls.__name__}.{name}", method


def step_constants(app: Any, steps: Sequence[tuple[str, str]]) -> list[str]:
    """The short strings in the code of the setup steps (a seed's
    ``generate_password_hash("demo")``): candidates for the secrets it set."""
    commands = dict(_cli_commands(getattr(app, "cli", None)))
    found: list[str] = []
    for kind, name in steps:
        function = _function(name) if kind in ("call", "helper") else None
        if kind == "command":
            function = getattr(commands.get(name), "callback", None)
        for inner in viewcode.unwrapped(function) if function is not None else ():
            code = getattr(inner, "__code__", None)
            for value in _strings(code) if code is not None else ():
                if 3 <= len(value) <= 40 and " " not in value and value not in found:
                    found.append(value)
    return found


def _strings(code: Any) -> Iterator[str]:
    for constant in code.co_consts:
        if isinstance(constant, str):
            yield constant
        elif hasattr(constant, "co_consts"):
            yield from _strings(constant)


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
    """``package.module:function`` or ``package.module:Class.method``."""
    import importlib

    module, _, name = where.partition(":")
    found: Any = importlib.import_module(module)
    for part in name.split("."):
        found = getattr(found, part)
    return found


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


def _needed_pins(app: Any, notes: list[str]) -> dict[str, Any]:
    pins: dict[str, Any] = {}
    config = app.config
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
                tables[table.name] = Table(
                    tuple(table.c.keys()), pk, types, rows, unique=_unique(table)
                )
        for table in metadata.sorted_tables:  # what foreign keys point to
            for key in table.foreign_keys:
                target = tables.get(key.column.table.name)
                if target is not None:
                    target.referenced |= {key.column.name}
        return tables
    finally:
        engine.dispose()


def _unique(table: Any) -> frozenset[str]:
    """Columns no two rows share: a one-column key, unique constraint or unique index."""
    from sqlalchemy import UniqueConstraint

    groups = [list(table.primary_key.columns)]
    groups += [list(c.columns) for c in table.constraints if isinstance(c, UniqueConstraint)]
    groups += [list(i.columns) for i in table.indexes if i.unique]
    return frozenset(group[0].name for group in groups if len(group) == 1)


def dispose(app: Any) -> None:
    if compat.flask_sqlalchemy(app) is not None:
        with app.app_context(), contextlib.suppress(Exception):
            for engine in compat.sqlalchemy_engines(app).values():
                engine.dispose()
