"""``fuzzer init``: write a starting target spec for an existing Flask app, from the app.

Given its factory (``package.module:create_app``, or a call with config arguments,
``package.module:create_app("testing")``), it builds the app on a scratch SQLite file
with a few settings pinned, in a fresh process each time (some factories run once per
process), runs the setup it proposes (the app's own ``init-db`` and seed commands or
functions, or ``create_all``) twice, and reads:

* every URL rule of the ``url_map`` with its methods; each path variable becomes a
  small domain: the values a matching column holds after setup (``values_of``), or
  a short list when it cannot tell;
* the body of each view that takes one: its Flask-WTF form's fields, the request
  schema of the OpenAPI document the app publishes, its marshmallow schema, the JSON
  keys its code reads, or a marked placeholder;
* the users to act as (Flask-Login: signed in as two of the users setup creates);
* the columns whose values differ between the two setups and look random (salted
  hashes, tokens), and those that hold the time, to ignore.

Then it tries the spec it wrote: each endpoint's requests sent alone, twice; what
differs between the two serial runs is ignored too, and the spec keeps the endpoints
whose requests wrote. The factory reference is parsed in factory.py, bodies are read
in bodies.py, and specfile.py writes the plan out as Python.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fuzzer import compat
from fuzzer.errors import FuzzerError, InvalidTarget, TargetSetupError, describe
from fuzzer.init import bodies
from fuzzer.init.factory import Factory, is_app, load_factory
from fuzzer.init.plan import Plan, Route
from fuzzer.init.pysource import Call, Dict, Keyword, Node, literal
from fuzzer.init.specfile import render

__all__ = ["Plan", "Written", "inspect_app", "write_spec"]

_VARIABLE = re.compile(r"<(?:([a-zA-Z_][a-zA-Z0-9_]*)(\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")
_INIT_COMMAND = re.compile(r"^(init|create)[-_]?(db|database|tables?)$|^initdb$")
_SEED_COMMAND = re.compile(r"seed|fixture|populate|(sample|demo|test|fake|dev)[-_]?data|fake|roles")
_GENERIC_MODULES = {"app", "application", "main", "wsgi", "factory", "__init__", "server", "web"}
_SKIPPED_METHODS = {"HEAD", "OPTIONS"}


# -- what the app tells ------------------------------------------------------------------


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
    differing = _differing_columns(rows, other)
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
    child = subprocess.run(
        [sys.executable, "-c", "from fuzzer.init.spec import _child; _child()", given, taken],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": path},
    )
    if not os.path.exists(taken):
        said = [line for line in child.stderr.splitlines() if line.strip()]
        raise TargetSetupError(
            f"{factory.reference}: building the app in a fresh process for fuzzer init "
            f"failed (exit {child.returncode})" + (f": {said[-1].strip()}" if said else "")
        )
    with open(taken, "rb") as handle:
        kind, value = pickle.load(handle)
    if kind == "error":
        raise value
    if kind == "bug":
        raise RuntimeError(f"fuzzer init, inspecting the app in a fresh process: {value}")
    plan, rows = value
    return plan, rows


def _child() -> None:
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
    plan = Plan(factory, _spec_name(factory))
    app, rows = _build_and_setup(factory, plan, stem, quiet=not primary)
    try:
        if not primary:
            return None, rows
        plan.ignore_columns = _time_columns(app, plan, rows)
        _plan_identities(app, plan, rows)
        document = _openapi_document(app, plan)
        plan.routes = list(_routes(app, plan, rows, document))
    finally:
        _dispose(app)
    plan.factory = None  # type: ignore[assignment]  # the parent has its own
    return plan, rows


def _spec_name(factory: Factory) -> str:
    parts = [p for p in factory.module.split(".") if p not in _GENERIC_MODULES]
    return (parts[-1] if parts else factory.module.split(".")[0]).replace("-", "_")


def _build_and_setup(
    factory: Factory, plan: Plan, stem: str, quiet: bool = False
) -> tuple[Any, dict[str, Table]]:
    """Build the app on scratch SQLite files (one per bind it has), run the setup steps
    it offers, and read the rows they made."""
    from fuzzer.target.apps import flask_command

    urls = {"default": f"sqlite:///{stem}.db"}
    pins: dict[str, Any] = {"SQLALCHEMY_DATABASE_URI": urls["default"]}
    app = _build(factory, pins)
    binds = app.config.get("SQLALCHEMY_BINDS") or {}
    if binds:  # never let setup reach a database the config names
        urls.update({str(name): f"sqlite:///{stem}-{name}.db" for name in binds})
        pins["SQLALCHEMY_BINDS"] = {name: urls[str(name)] for name in binds}
    pins.update(_needed_pins(app, plan, quiet))
    if len(pins) > 1:  # rebuild with every pin, as the spec will
        _dispose(app)
        app = _build(factory, pins)
    extension = compat.flask_sqlalchemy(app)
    steps = _setup_steps(app, factory)
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
        for table, info in _read_rows(url).items():
            rows[f"{name}.{table}" if binds else table] = info
    return app, rows


def _setup_steps(app: Any, factory: Factory) -> list[tuple[str, str]]:
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
                or not _callable_without_arguments(value)
            ):
                continue
            seen.add(id(value))
            yield f"{module_name}:{name}", value


def _callable_without_arguments(function: Any) -> bool:
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


def _build(factory: Factory, pins: Mapping[str, Any]) -> Any:
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


@dataclass
class Table:
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]
    types: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def _read_rows(url: str) -> dict[str, Table]:
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


def _differing_columns(first: Mapping[str, Table], again: Mapping[str, Table]) -> list[str]:
    """Columns whose values differ between two runs of the same setup and look random by
    design (a salted hash, a token: long strings without spaces). A seed that draws
    random data (Faker) makes every column differ; its quantities, names and foreign
    keys are what the requests act on, and stay compared."""
    columns = []
    for name, table in first.items():
        other = again.get(name)
        if other is None or other.columns != table.columns:
            continue
        for position, column in enumerate(table.columns):
            if column in table.primary_key:
                continue
            mine = [row[position] for row in table.rows]
            theirs = [row[position] for row in other.rows]
            changed = [a for a, b in zip(mine, theirs, strict=False) if a != b]
            if mine != theirs and all(_random_looking(v) for v in changed):
                columns.append(f"{name}.{column}")
    return columns


def _random_looking(value: Any) -> bool:
    if isinstance(value, bytes):
        return len(value) >= 16
    return isinstance(value, str) and len(value) >= 16 and " " not in value


def _time_columns(app: Any, plan: Plan, rows: Mapping[str, Table]) -> list[str]:
    """Columns the clock fills: a date-time type in the app's models, or a number whose
    default is ``time.time`` or whose values after setup are seconds since 1970 near
    now (``token_expiration = time() + 3600``)."""
    extension = compat.flask_sqlalchemy(app)
    if extension is None:
        return []
    found = []
    for bind, metadata in compat.metadatas(extension).items():
        database = f"{bind or 'default'}." if plan.databases else ""
        for table in metadata.sorted_tables:
            info = rows.get(f"{database}{table.name}")
            for column in table.columns:
                kind = type(column.type).__name__
                if column.primary_key:
                    continue
                if kind in ("DateTime", "TIMESTAMP", "Time") or _clock_number(column, info):
                    found.append(f"{database}{table.name}.{column.name}")
    return found


def _clock_number(column: Any, info: Table | None) -> bool:
    import time

    kind = type(column.type).__name__
    if kind not in ("Float", "REAL", "Numeric", "DOUBLE", "Double", "Integer", "BigInteger"):
        return False
    default = getattr(getattr(column, "default", None), "arg", None)
    if default is time.time or getattr(default, "__wrapped__", None) is time.time:
        return True
    if info is None or column.name not in info.columns:
        return False
    values = [row[info.columns.index(column.name)] for row in info.rows]
    values = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    now = time.time()
    timely = re.search(r"time|_at$|_on$|expir|seen|created|updated|date|stamp", column.name)
    if timely and kind not in ("Integer", "BigInteger"):
        return True  # a float named like a time: time() when the row is written
    return (
        bool(values)
        and (kind not in ("Integer", "BigInteger") or bool(timely))
        and all(abs(v - now) < 10 * 365 * 86400 for v in values)
    )


def _dispose(app: Any) -> None:
    if compat.flask_sqlalchemy(app) is not None:
        with app.app_context(), contextlib.suppress(Exception):
            for engine in compat.sqlalchemy_engines(app).values():
                engine.dispose()


# -- identities ----------------------------------------------------------------------------


def _plan_identities(app: Any, plan: Plan, rows: Mapping[str, Table]) -> None:
    manager = getattr(app, "login_manager", None)
    if manager is None:
        plan.identity_notes.append(
            "No Flask-Login here: if requests need a user, declare identities that log in "
            'with Login("/login", form={...}) or carry headers=... (a token), and give '
            "endpoints as_=[...]"
        )
        return
    table_name = _user_table(app)
    table = next((info for name, info in rows.items() if name.endswith(f".{table_name}")), None)
    table = rows.get(table_name or "", table)
    plan.login_example = _login_example(app, manager)
    if table is None or not table.rows or not table.primary_key:
        plan.identity_notes.append(
            "The app uses Flask-Login, but setup creates no users (no seed command or "
            "function that fuzzer init found made any): requests to views behind "
            "login_required answer 302 (to the login page) or 401/403 and run no SQL. "
            "Create users in setup, then log them in, e.g.:"
        )
        return
    pk = table.columns.index(table.primary_key[0])
    label = next(
        (
            table.columns.index(c)
            for c in ("username", "name", "login", "email", "handle")
            if c in table.columns
        ),
        None,
    )
    token = _token_method(app, table_name)
    extra = f", token={literal(token)}" if token else ""
    # the second user first: the first value of a user column (the first user) is then
    # someone else, so the simplest follow, message or transfer is between two people
    for row in [table.rows[1], table.rows[0]] if len(table.rows) > 1 else table.rows[:1]:
        name = str(row[label]) if label is not None else f"user{row[pk]}"
        name = re.sub(r"[^\w.@-]", "_", name) or f"user{row[pk]}"
        plan.identities.append(
            f"Identity({literal(name)}, headers=flask_login_session({literal(row[pk])}{extra}))"
        )
        plan.users.append(name)
    plan.identities.append('Identity("anonymous")')
    plan.identity_notes.append(
        f"Signed in as two rows of {table_name} (the second first, so that the first "
        "user a request names is someone else) with a session cookie the app itself "
        "signs (flask_login_session)"
        + (f", and an API token from the user's {token}()" if token else "")
        + ", and one visitor who is not signed in. To go through the login form as a "
        "person would, with a password setup gives them:"
    )


_TOKEN_METHODS = ("get_token", "generate_auth_token", "get_auth_token", "generate_token")


def _token_method(app: Any, table_name: str | None) -> str:
    """The user model's method that issues an API token, callable without arguments."""
    extension = compat.flask_sqlalchemy(app)
    registry = getattr(getattr(extension, "Model", None), "registry", None)
    for mapper in getattr(registry, "mappers", ()):
        if str(mapper.local_table.name) != table_name:
            continue
        for name in _TOKEN_METHODS:
            method = getattr(mapper.class_, name, None)
            if callable(method) and _callable_without_arguments(
                getattr(method, "__func__", method).__get__(object())
            ):
                return name
    return ""


def _user_table(app: Any) -> str | None:
    model = getattr(compat.flask_sqlalchemy(app), "Model", None)
    registry = getattr(model, "registry", None)
    for mapper in getattr(registry, "mappers", ()):
        cls = mapper.class_
        if hasattr(cls, "get_id") and hasattr(cls, "is_authenticated"):
            return str(mapper.local_table.name)
    return None


def _login_example(app: Any, manager: Any) -> Node | None:
    """``Identity(..., login=Login(path, form={...}))`` for the app's login view."""
    view_name = getattr(manager, "login_view", None)
    rule = next((r for r in app.url_map.iter_rules() if r.endpoint == view_name), None)
    if rule is None:
        return None
    view = app.view_functions.get(view_name)
    forms = bodies.forms_of(view) if view is not None else []
    fields: list[tuple[Node, Node]] = []
    if forms:
        from wtforms.fields.core import UnboundField

        for klass in reversed(forms[0].__mro__):
            for name, value in vars(klass).items():
                kind = getattr(getattr(value, "field_class", None), "__name__", "")
                if isinstance(value, UnboundField) and kind in (
                    "StringField",
                    "EmailField",
                    "PasswordField",
                ):
                    secret = literal("PASSWORD" if kind == "PasswordField" else "USERNAME")
                    fields.append((literal(name), secret))
    login = Call("Login", (literal(rule.rule), Keyword("form", Dict(tuple(fields)))))
    return Call("Identity", (literal("someone"), Keyword("login", login)))


# -- routes ----------------------------------------------------------------------------------


def _openapi_document(app: Any, plan: Plan) -> Mapping[str, Any] | None:
    client = app.test_client()
    for rule in app.url_map.iter_rules():
        if rule.arguments or not re.search(r"(openapi|swagger|apispec)[^/]*\.json$", rule.rule):
            continue
        with contextlib.suppress(Exception):
            reply = client.get(rule.rule)
            document = json.loads(reply.data)
            if isinstance(document, dict) and ("openapi" in document or "swagger" in document):
                plan.openapi = rule.rule
                return document
    return None


def _routes(
    app: Any, plan: Plan, rows: Mapping[str, Table], document: Mapping[str, Any] | None
) -> Iterator[Route]:
    operations = bodies.openapi_operations(document) if document else {}
    login_users = plan.users
    seen: set[tuple[str, str]] = set()
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        if plan.openapi and rule.rule == plan.openapi:
            continue
        for method in sorted(set(rule.methods or ()) - _SKIPPED_METHODS):
            # one rule per view and method (``/`` and ``/index``), and per rule and
            # method: Werkzeug routes a request to the first rule that matches
            if (rule.endpoint, method) in seen or (rule.rule, method) in seen:
                continue
            seen |= {(rule.endpoint, method), (rule.rule, method)}
            route = Route(method, rule.rule, rule.endpoint, "")
            route.path = _path_source(rule.rule, rows, route)
            function = app.view_functions.get(rule.endpoint)
            view = bodies.view_for(function, method)
            route.view = bodies.source_file(view) if view is not None else ""
            route.login_required = any(
                f is not None and _login_required(f) for f in (function, view)
            )
            route.signs_out = view is not None and _signs_out(view)
            if route.login_required and login_users:
                route.checks.append("login required: sent as the signed-in identities")
            elif login_users and view is not None and _sends_users_away(view):
                route.anonymous_only = True
                route.checks.append("it sends signed-in users away: sent by the visitor")
            if method in ("POST", "PUT", "PATCH", "DELETE"):
                _plan_body(route, view, operations, document, rows)
            yield route


def _plan_body(
    route: Route,
    view: Any,
    operations: Mapping[tuple[str, str], Mapping[str, Any]],
    document: Mapping[str, Any] | None,
    rows: Mapping[str, Table],
) -> None:
    pattern = _VARIABLE.sub("{}", route.rule)
    operation = operations.get((route.method, pattern))
    if operation is not None and document is not None:
        found = bodies.request_schema(document, operation)
        if found is not None:
            kind, schema = found
            body = bodies.json_schema_body(document, schema)
            route.body_kind, route.body = kind, body.node
            route.checks += ["body from the OpenAPI request schema", *body.checks]
            return
    forms = bodies.forms_of(view) if view is not None else []
    if forms:
        columns = _form_columns(forms[0], rows)
        body = bodies.form_body(forms[0], columns)
        route.body_kind, route.body = "form", body.node
        route.checks += [f"form fields from {forms[0].__name__}", *body.checks]
        return
    declared = bodies.schema_fields(view) if view is not None else None
    if declared:
        items = tuple((literal(f), _schema_value(f, kind, rows)) for f, kind in declared.items())
        route.body_kind, route.body = "json", Dict(items)
        route.checks.append("CHECK: JSON fields from the view's marshmallow schema")
        return
    if view is not None and bodies.view_reads_json(view):
        fields = bodies.json_fields(view)
        if fields:
            items = tuple((literal(f), _value_source(f, rows, n)) for f, n in fields.items())
            route.body_kind, route.body = "json", Dict(items)
            route.checks.append("CHECK: JSON fields the view's code reads")
            return
        route.body_kind, route.body = "json", "{}"
        route.checks.append("PLACEHOLDER: the JSON body this view reads; fill in its fields")


_NUMBERS = re.compile(
    r"^(count|amount|quantity|qty|number|value|price|delta|votes?|score|rating|points|"
    r"stock|balance|total|age|size|step|n|limit)$"
)


def _value_source(name: str, rows: Mapping[str, Table], numeric: bool = False) -> Node:
    """A JSON field's values from its name: a column of that name (one value present
    after setup, or a new one), a password, an id of the table it names, else words."""
    lowered = name.lower()
    if "password" in lowered:
        return literal("Secret-pass-1")
    column = _named_column(name, rows, numeric=False)
    if column is not None:
        new = bodies.WORDS[0] + ("@example.com" if "email" in lowered else "")
        present = Call("values_of", (literal(column), "limit=1"))
        return Call("st.one_of", (Call("st.just", (literal(new),)), present))
    if lowered == "id" or lowered.endswith("_id"):
        found = _matching_column(name, "", rows, numeric=True)
        if found is not None:
            return Call("values_of", (literal(f"{found[0]}.{found[1]}"), "otherwise=[1, 2]"))
        return Call("st.sampled_from", ("[1, 2]",))
    if "email" in lowered:
        return Call("st.sampled_from", (literal([w + "@example.com" for w in bodies.WORDS]),))
    if numeric or _NUMBERS.match(lowered):
        return Call("st.integers", ("1", "3"))
    return Call("st.sampled_from", (literal(list(bodies.WORDS)),))


def _schema_value(name: str, kind: str, rows: Mapping[str, Table]) -> Node:
    if kind == "bool":
        return "st.booleans()"
    if kind == "email" and "email" not in name.lower():
        return Call("st.sampled_from", (literal([w + "@example.com" for w in bodies.WORDS]),))
    return _value_source(name, rows, numeric=kind in ("int", "float"))


def _named_column(name: str, rows: Mapping[str, Table], numeric: bool) -> str | None:
    """``table.name`` when exactly one table has a column of that name with a value
    after setup."""
    owners = [t for t, info in rows.items() if name in info.columns and _has_value(info, name)]
    if len(owners) == 1 and _kind_fits(rows[owners[0]], name, numeric):
        return f"{owners[0]}.{name}"
    return None


def _has_value(table: Table, column: str) -> bool:
    position = table.columns.index(column)
    return any(row[position] is not None for row in table.rows)


def _form_columns(form: type, rows: Mapping[str, Table]) -> dict[str, Node]:
    """Text fields named like a column of exactly one table (a username, a tag name): one
    value present after setup, or one new value. Taken and new names take different
    paths through a view (an error, or an insert), and races hide in both."""
    from wtforms.fields.core import UnboundField

    found: dict[str, Node] = {}
    for klass in form.__mro__:
        for name, value in vars(klass).items():
            if not isinstance(value, UnboundField) or value.field_class.__name__ not in (
                "StringField",
                "EmailField",
                "TextAreaField",
            ):
                continue
            column = _named_column(name, rows, numeric=False)
            if column is not None:
                new = bodies.WORDS[0] + ("@example.com" if "email" in name else "")
                present = Call("values_of", (literal(column), "limit=1"))
                found[name] = Call("st.one_of", (Call("st.just", (literal(new),)), present))
    return found


def _signs_out(view: Any) -> bool:
    """The view logs its user out (``logout_user``) or revokes its token."""
    return any(
        "logout_user" in names or any("revoke" in n for n in names)
        for names in (
            set(bodies._names(f.__code__))
            for f in bodies._unwrapped(view)
            if getattr(f, "__code__", None) is not None
        )
    )


def _sends_users_away(view: Any) -> bool:
    """``if current_user.is_authenticated: return redirect(...)`` (a sign-up or login
    view): its code asks whether the user is signed in, and is not behind a login."""
    return any(
        "is_authenticated" in bodies._names(f.__code__)
        for f in bodies._unwrapped(view)
        if getattr(f, "__code__", None) is not None
    )


def _login_required(view: Any) -> bool:
    """Behind Flask-Login's ``login_required`` or Flask-HTTPAuth's (their wrappers' code
    lives in those packages), or a decorator of the app's own that reads the
    ``Authorization`` header (a token check)."""
    functions = list(bodies._unwrapped(view))
    for position, function in enumerate(functions):
        code = getattr(function, "__code__", None)
        if code is None:
            continue
        where = code.co_filename.replace(os.sep, "/")
        if "flask_login" in where or "flask_httpauth" in where:
            return True
        wrapper = position < len(functions) - 1
        if wrapper and "Authorization" in code.co_consts:
            return True
    return False


def _path_source(rule: str, rows: Mapping[str, Table], route: Route) -> Node:
    matches = list(_VARIABLE.finditer(rule))
    if not matches:
        return literal(rule)
    arguments: list[Node] = [literal(rule)]
    for match in matches:
        converter, args, name = match.group(1) or "string", match.group(2) or "", match.group(3)
        segment = rule[: match.start()].rstrip("/").rsplit("/", 1)[-1]
        source, comment = _variable_source(converter, args, name, segment, rows)
        arguments.append(Keyword(name, source))
        route.variables.append(f"<{name}>: {comment}")
    return Call("paths", tuple(arguments))


def _variable_source(
    converter: str, args: str, name: str, segment: str, rows: Mapping[str, Table]
) -> tuple[Node, str]:
    if converter == "any":
        choices = [c.strip().strip("'\"") for c in args.strip("()").split(",") if c.strip()]
        return Call("st.sampled_from", (literal(choices[:3]),)), "the rule's own choices"
    numeric = converter in ("int", "float")
    column = _matching_column(name, segment, rows, numeric)
    fallback: list[Any]
    if converter == "int":
        fallback = [1, 2]
    elif converter == "float":
        fallback = [1.0, 2.0]
    elif converter == "uuid":
        fallback = ["00000000-0000-4000-8000-000000000001"]
    else:
        fallback = list(bodies.WORDS)
    if column is None:
        return (
            Call("st.sampled_from", (literal(fallback),)),
            "CHECK: no column to draw it from; a short list",
        )
    table, col = column
    present = len({row[rows[table].columns.index(col)] for row in rows[table].rows})
    source = Call("values_of", (literal(f"{table}.{col}"), Keyword("otherwise", literal(fallback))))
    return source, f"the values of {table}.{col} after setup ({present} now)"


def _matching_column(
    name: str, segment: str, rows: Mapping[str, Table], numeric: bool
) -> tuple[str, str] | None:
    """The column a path variable names: ``post_id`` or ``/post/<int:id>`` -> posts.id,
    ``/user/<username>`` -> users.username, ``<slug>`` -> the one table with a slug."""
    stem = name[:-3] if name.endswith("_id") else ""
    # <photo_id> names photos wherever it stands (/delete/tag/<photo_id>/<tag_id>); the
    # segment before it names the table of a plain <id> or <username>
    related = [t for t in rows if stem and _singular(t.rsplit(".", 1)[-1]) == _singular(stem)]
    if not related and segment:
        related = [t for t in rows if _singular(t.rsplit(".", 1)[-1]) == _singular(segment)]
    for table in related:
        info = rows[table]
        candidates = [name] + (list(info.primary_key) if numeric or name == "id" else [])
        if not numeric:
            candidates += ["username", "name", "slug", "login", "handle"]
        for column in candidates:
            if column in info.columns and _kind_fits(info, column, numeric):
                return table, column
    owners = [t for t, info in rows.items() if name in info.columns and _has_value(info, name)]
    if len(owners) == 1 and _kind_fits(rows[owners[0]], name, numeric):
        return owners[0], name
    return None


def _kind_fits(table: Table, column: str, numeric: bool) -> bool:
    kind = table.types[table.columns.index(column)].upper()
    is_number = any(k in kind for k in ("INT", "NUMERIC", "FLOAT", "REAL", "DECIMAL"))
    return is_number == numeric


def _singular(word: str) -> str:
    word = word.lower().replace("-", "_")
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ses", "xes")):
        return word[:-2]
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def _module_name(plan: Plan) -> str:
    return f"fuzz_{plan.name}"


@dataclass(frozen=True)
class Written:
    path: str
    module: str  # what `fuzzer run` loads: module:target
    plan: Plan
    survey: Mapping[str, str] = field(default_factory=dict)  # endpoint -> what it did


def write_spec(
    reference: str,
    output: str | None = None,
    *,
    force: bool = False,
    check: bool = True,
    all_endpoints: bool = False,
) -> Written:
    """Inspect the app, render its spec and write it (refusing to overwrite unless
    ``force``). With ``check``, load the spec and send each endpoint's requests alone,
    twice (what differs between the two serial runs is ignored), then write it again
    keeping the endpoints that change state (all of them with ``all_endpoints``)."""
    factory = load_factory(reference)
    path = output or ""
    if path and not path.endswith(".py"):
        raise InvalidTarget(f"--output must name a .py file, got {path!r}")
    if path and os.path.exists(path) and not force:
        raise InvalidTarget(f"{path} exists; pass --force to overwrite it, or --output another")
    plan = inspect_app(factory)
    plan.all_endpoints = all_endpoints
    path = path or f"{_module_name(plan)}.py"
    if os.path.exists(path) and not force:
        raise InvalidTarget(f"{path} exists; pass --force to overwrite it, or --output another")
    module = os.path.splitext(os.path.basename(path))[0]
    if not module.isidentifier():
        raise InvalidTarget(f"{path}: the file name must be a Python module name")
    if not check:
        _write(path, render(plan, module))
        return Written(path, module, plan)
    plan.all_endpoints = True  # the check sends every endpoint, then the spec keeps some
    _write(path, render(plan, module))
    lines = _check(Written(path, module, plan))
    plan.all_endpoints = all_endpoints
    turned_away = [n for n, line in lines.items() if line.split(";")[0] in ("302", "401", "403")]
    if turned_away and not plan.users:
        plan.identity_notes.insert(
            0,
            f"{len(turned_away)} of {len(lines)} endpoints answered 302, 401 or 403 "
            f"when fuzzer init sent them ({', '.join(turned_away[:3])}"
            + (", …" if len(turned_away) > 3 else "")
            + "): with no signed-in identity they are turned away before they do anything. "
            "Declare identities that log in and give those endpoints as_=[...].",
        )
    _write(path, render(plan, module))
    return Written(path, module, plan, lines)


def _write(path: str, source: str) -> None:
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(source)
    except OSError as exc:
        raise FuzzerError(f"Cannot write the spec to {path}: {exc.strerror}") from exc


def _check(written: Written) -> dict[str, str]:
    """Load the spec just written and try it in this process (setup, logins, each
    endpoint's requests alone, twice): what its requests wrote and what differed between
    the two serial runs go into the plan. One line per endpoint says what it did."""
    from fuzzer.execute.instrument import load_target
    from fuzzer.execute.runner import Serial
    from fuzzer.model import Execution, Scenario
    from fuzzer.modes.session import Session
    from fuzzer.search.survey import check_reachable, survey
    from fuzzer.search.survey import describe as describe_survey

    directory = os.path.dirname(os.path.abspath(written.path))
    sys.path.insert(0, directory)
    try:
        sys.modules.pop(written.module, None)
        target = load_target(f"{written.module}:target")
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(directory)
    runs: list[dict[tuple[str, ...], Execution]] = [{}, {}]

    def work(s: Session) -> dict[str, str]:
        def recorded(into: dict[tuple[str, ...], Execution]) -> Any:
            def alone(scenario: Scenario) -> Execution:
                execution = s.execute(scenario, Serial(tuple(range(len(scenario.requests)))))
                into.setdefault(tuple(r.describe() for r in scenario.requests), execution)
                return execution

            return alone

        surveyed = survey(target, recorded(runs[0]))
        check_reachable(target, surveyed, recorded(runs[0]), s.app)
        # the requests of the endpoints that wrote again, from the same snapshot: what
        # differs between two serial runs of one request is random or the clock
        writers = [e for e in target.endpoints if e.name in _writing_endpoints(surveyed)]
        if writers:
            survey(replace(target, endpoints=writers), recorded(runs[1]))
        columns = {name: info for name, info in s.databases.tables.items()}
        _serial_differences(written.plan, runs, columns)
        written.plan.writers = _writing_endpoints(surveyed)
        return dict(describe_survey(surveyed))

    return Session(target).run(work)


def _writing_endpoints(surveyed: Any) -> frozenset[str]:
    return frozenset(e.endpoint for e in surveyed.endpoints if e.writes)


def _serial_differences(
    plan: Plan, runs: Sequence[Mapping[Any, Any]], tables: Mapping[str, Any]
) -> None:
    """Columns and response fields that differ between two serial runs of the same
    request from the same snapshot (a random token, the clock): not compared."""
    first, again = runs
    columns: list[str] = []
    fields: list[str] = []
    for key, one in first.items():
        other = again.get(key)
        if other is None:
            continue
        for name, rows in one.tables.items():
            info = tables.get(name)
            theirs = other.tables.get(name, ())
            if info is None or len(rows) != len(theirs):
                continue
            for a, b in zip(rows, theirs, strict=False):
                for position, column in enumerate(info.columns):
                    if column in info.primary_key or a[position] == b[position]:
                        continue
                    label = f"{name}.{column}"
                    if label not in columns and label not in plan.ignore_columns:
                        columns.append(label)
        for a, b in zip(one.responses, other.responses, strict=False):
            if a is not None and b is not None:
                _differing_fields(a.body, b.body, fields)
    plan.ignore_columns += columns
    plan.ignore_fields += [f for f in fields if f not in plan.ignore_fields]


def _differing_fields(a: Any, b: Any, into: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a.keys() & b.keys():
            if isinstance(a[key], dict | list):
                _differing_fields(a[key], b[key], into)
            elif a[key] != b[key] and key not in into:
                into.append(str(key))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for x, y in zip(a, b, strict=False):
            _differing_fields(x, y, into)
