"""``fuzzer init``: write a starting target spec for an existing Flask app, from the app.

Given its factory (``package.module:create_app``, or a call with config arguments,
``package.module:create_app("testing")``), it builds the app on a scratch SQLite file
with a few settings pinned, runs the setup it proposes (the app's own ``init-db`` and
``seed`` commands, or ``create_all``) twice, and reads:

* every URL rule of the ``url_map`` with its methods; each path variable becomes a
  small domain: the values a matching column holds after setup (``values_of``), or
  a short list when it cannot tell;
* the body of each view that takes one: its Flask-WTF form's fields, the request
  schema of the OpenAPI document the app publishes, or a marked placeholder;
* the users to act as (Flask-Login: signed in as the first users setup creates);
* the columns whose values differ between the two setups (salted hashes, tokens,
  timestamps), to ignore.

The spec it writes runs as is; its comments say what to check. The factory reference
is parsed in factory.py, bodies are read in bodies.py, and specfile.py writes the plan
out as Python.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import bodies, compat
from .errors import FuzzerError, InvalidTarget, TargetSetupError, describe
from .factory import Factory, is_app, load_factory
from .pysource import Call, Dict, Keyword, Node, literal
from .specfile import render

__all__ = ["Plan", "Written", "check_written", "inspect_app", "write_spec"]

_VARIABLE = re.compile(r"<(?:([a-zA-Z_][a-zA-Z0-9_]*)(\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")
_INIT_COMMAND = re.compile(r"^(init|create)[-_]?(db|database|tables?)$|^initdb$")
_SEED_COMMAND = re.compile(r"seed|fixture|populate|sample[-_]?data|demo[-_]?data|fake")
_GENERIC_MODULES = {"app", "application", "main", "wsgi", "factory", "__init__", "server", "web"}
_SKIPPED_METHODS = {"HEAD", "OPTIONS"}


# -- what the app tells ------------------------------------------------------------------


@dataclass
class Route:
    method: str
    rule: str
    endpoint: str
    path: Node  # a string literal, or paths(...)
    variables: list[str] = field(default_factory=list)  # comments on the variables
    body_kind: str = ""  # "form", "json" or ""
    body: Node = ""
    checks: list[str] = field(default_factory=list)
    login_required: bool = False
    view: str = ""


@dataclass
class Plan:
    """Everything the generated spec says."""

    factory: Factory
    name: str
    pins: dict[str, str] = field(default_factory=dict)  # config key -> value source
    pin_notes: list[str] = field(default_factory=list)
    setup: list[tuple[str, str]] = field(
        default_factory=list
    )  # ("command", name) | ("create_all", "")
    setup_notes: list[str] = field(default_factory=list)
    identities: list[str] = field(default_factory=list)  # Identity(...) sources
    identity_notes: list[str] = field(default_factory=list)
    login_example: Node | None = None  # an Identity that logs in through the login form
    users: list[str] = field(default_factory=list)  # the identity names that are logged in
    routes: list[Route] = field(default_factory=list)
    ignore_columns: list[str] = field(default_factory=list)
    openapi: str = ""  # where the OpenAPI document was found
    databases: tuple[str, ...] = ()  # with binds: "default" and each bind


def inspect_app(factory: Factory) -> Plan:
    """Build the app twice on scratch SQLite files, run the proposed setup on each, and
    read what the spec needs."""
    plan = Plan(factory, _spec_name(factory))
    with tempfile.TemporaryDirectory(prefix="fuzzer-init-") as directory:
        first, rows = _build_and_setup(factory, plan, os.path.join(directory, "first"))
        again: Any = None
        try:
            again, other = _build_and_setup(
                factory, plan, os.path.join(directory, "again"), quiet=True
            )
            plan.ignore_columns = _differing_columns(rows, other) + _time_columns(first, plan)
            _plan_identities(first, plan, rows)
            document = _openapi_document(first, plan)
            for route in _routes(first, plan, rows, document):
                plan.routes.append(route)
        finally:
            _dispose(first)
            if again is not None:
                _dispose(again)
    return plan


def _spec_name(factory: Factory) -> str:
    parts = [p for p in factory.module.split(".") if p not in _GENERIC_MODULES]
    return (parts[-1] if parts else factory.module.split(".")[0]).replace("-", "_")


def _build_and_setup(
    factory: Factory, plan: Plan, stem: str, quiet: bool = False
) -> tuple[Any, dict[str, Table]]:
    """Build the app on scratch SQLite files (one per bind it has), run the setup steps
    it offers, and read the rows they made."""
    from .apps import flask_command

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
    commands = getattr(getattr(app, "cli", None), "commands", {})
    extension = compat.flask_sqlalchemy(app)
    steps: list[tuple[str, str]] = []
    init = sorted(name for name in commands if _INIT_COMMAND.search(name))
    if init:
        steps.append(("command", init[0]))
    elif extension is not None:
        steps.append(("create_all", ""))
    steps += [("command", n) for n in sorted(commands) if _SEED_COMMAND.search(n) and n not in init]
    done: list[tuple[str, str]] = []
    with app.app_context():
        for kind, name in steps:
            try:
                if kind == "create_all":
                    extension.create_all()
                else:
                    flask_command(app, name)
                done.append((kind, name))
            except Exception as exc:
                if not quiet:
                    why = str(exc) if isinstance(exc, FuzzerError) else describe(exc)
                    plan.setup_notes.append(f"`flask {name}` failed when fuzzer init ran it: {why}")
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


def _build(factory: Factory, pins: Mapping[str, Any]) -> Any:
    from .apps import pinned_config

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
    """Columns whose values differ between two runs of the same setup: random by design."""
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
            if mine != theirs:
                columns.append(f"{name}.{column}")
    return columns


def _time_columns(app: Any, plan: Plan) -> list[str]:
    """Columns of a date-time type in the app's models: requests stamp them with the clock."""
    extension = compat.flask_sqlalchemy(app)
    if extension is None:
        return []
    found = []
    for bind, metadata in compat.metadatas(extension).items():
        database = f"{bind or 'default'}." if plan.databases else ""
        for table in metadata.sorted_tables:
            for column in table.columns:
                kind = type(column.type).__name__
                if kind in ("DateTime", "TIMESTAMP", "Time") and not column.primary_key:
                    found.append(f"{database}{table.name}.{column.name}")
    return found


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
            "The app uses Flask-Login, but setup creates no users: create some in setup, "
            "then log them in, e.g.:"
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
    for row in table.rows[:2]:
        name = str(row[label]) if label is not None else f"user{row[pk]}"
        name = re.sub(r"[^\w.@-]", "_", name) or f"user{row[pk]}"
        plan.identities.append(
            f"Identity({literal(name)}, headers=flask_login_session({literal(row[pk])}))"
        )
        plan.users.append(name)
    plan.identities.append('Identity("anonymous")')
    plan.identity_notes.append(
        f"Signed in as the first rows of {table_name} with a session cookie the app itself "
        "signs (flask_login_session), and one visitor who is not signed in. To go through "
        "the login form as a person would, with a password setup gives them:"
    )


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
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        if plan.openapi and rule.rule == plan.openapi:
            continue
        view = app.view_functions.get(rule.endpoint)
        for method in sorted(set(rule.methods or ()) - _SKIPPED_METHODS):
            route = Route(method, rule.rule, rule.endpoint, "")
            route.path = _path_source(rule.rule, rows, route)
            route.view = bodies.source_file(view) if view is not None else ""
            route.login_required = view is not None and _login_required(view)
            if route.login_required and login_users:
                route.checks.append("login required: sent as the signed-in identities")
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
    if view is not None and bodies.view_reads_json(view):
        route.body_kind, route.body = "json", "{}"
        route.checks.append("PLACEHOLDER: the JSON body this view reads; fill in its fields")


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
            owners = [t for t, info in rows.items() if name in info.columns and info.rows]
            if len(owners) == 1 and _kind_fits(rows[owners[0]], name, numeric=False):
                new = bodies.WORDS[0] + ("@example.com" if "email" in name else "")
                present = Call("values_of", (literal(f"{owners[0]}.{name}"), "limit=1"))
                found[name] = Call("st.one_of", (present, Call("st.just", (literal(new),))))
    return found


def _login_required(view: Any) -> bool:
    for function in bodies._unwrapped(view):
        code = getattr(function, "__code__", None)
        if code is not None and "flask_login" in code.co_filename.replace(os.sep, "/"):
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
    wanted = {_singular(t) for t in (stem, segment) if t}
    related = [t for t in rows if _singular(t.rsplit(".", 1)[-1]) in wanted]
    for table in related:
        info = rows[table]
        candidates = [name] + (list(info.primary_key) if numeric or name == "id" else [])
        if not numeric:
            candidates += ["username", "name", "slug", "login", "handle"]
        for column in candidates:
            if column in info.columns and _kind_fits(info, column, numeric):
                return table, column
    owners = [t for t, info in rows.items() if name in info.columns]
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


def write_spec(reference: str, output: str | None = None, *, force: bool = False) -> Written:
    """Inspect the app, render its spec and write it (refusing to overwrite unless
    ``force``)."""
    factory = load_factory(reference)
    plan = inspect_app(factory)
    path = output or f"{_module_name(plan)}.py"
    if not path.endswith(".py"):
        raise InvalidTarget(f"--output must name a .py file, got {path!r}")
    if os.path.exists(path) and not force:
        raise InvalidTarget(f"{path} exists; pass --force to overwrite it, or --output another")
    module = os.path.splitext(os.path.basename(path))[0]
    if not module.isidentifier():
        raise InvalidTarget(f"{path}: the file name must be a Python module name")
    source = render(plan, module)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(source)
    except OSError as exc:
        raise FuzzerError(f"Cannot write the spec to {path}: {exc.strerror}") from exc
    return Written(path, module, plan)


def check_written(written: Written) -> dict[str, str]:
    """Load the spec just written and try it (setup, logins, each endpoint alone)."""
    from .api import check
    from .target import load_target

    directory = os.path.dirname(os.path.abspath(written.path))
    sys.path.insert(0, directory)
    try:
        sys.modules.pop(written.module, None)
        return check(load_target(f"{written.module}:target"))
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(directory)
