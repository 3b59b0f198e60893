"""Who the spec acts as: the users setup made, signed in the way the app signs them in."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fuzzer import compat
from fuzzer.init.inputs import viewcode
from fuzzer.init.plan import Plan, Table
from fuzzer.init.pysource import Call, Dict, Keyword, Node, literal
from fuzzer.init.setup.credentials import api_token, plan_credentials, turned_away
from fuzzer.init.setup.seeding import (
    callable_without_arguments,
    step_constants,
)

# -- identities ----------------------------------------------------------------------------


def plan_identities(app: Any, plan: Plan, rows: Mapping[str, Table]) -> None:
    manager = getattr(app, "login_manager", None)
    if manager is None and plan_credentials(app, plan, rows, step_constants(app, plan.setup)):
        plan.identity_notes.insert(
            0,
            "No Flask-Login here: fuzzer init signed in with the keys and secrets of the "
            "rows setup made, each proven by a page that turns the visitor away:",
        )
        return
    if manager is None:
        plan.identity_notes.append(
            "No Flask-Login here: if requests need a user, declare identities that log in "
            'with Login("/login", form={...}) or carry headers=... (a token), and give '
            "endpoints as_=[...]"
        )
        return
    table_name = user_table(app)
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
    probes = [] if token else list(turned_away(app, rows))
    issued = ""
    constants = step_constants(app, plan.setup)
    # the second user first: the first value of a user column (the first user) is then
    # someone else, so the simplest follow, message or transfer is between two people
    for row in [table.rows[1], table.rows[0]] if len(table.rows) > 1 else table.rows[:1]:
        name = str(row[label]) if label is not None else f"user{row[pk]}"
        name = re.sub(r"[^\w.@-]", "_", name) or f"user{row[pk]}"
        endpoint = api_token(app, probes, table, row, constants) if probes else None
        carries = extra
        if endpoint is not None:  # the API wants a token its own endpoint issues
            carries, issued = f", token={endpoint[0]}", endpoint[1]
        plan.identities.append(
            f"Identity({literal(name)}, headers=flask_login_session({literal(row[pk])}{carries}))"
        )
        plan.users.append(name)
        plan.user_keys.append(row[pk])
    if label is not None:
        key = table_name if table_name in rows else next(n for n in rows if rows[n] is table)
        plan.user_source = (str(key), table.columns[label])
    plan.identities.append('Identity("anonymous")')
    plan.identity_notes.append(
        f"Signed in as two rows of {table_name} (the second first, so that the first "
        "user a request names is someone else) with a session cookie the app itself "
        "signs (flask_login_session)"
        + (f", and an API token from the user's {token}()" if token else "")
        + (f", and an API token from {issued}" if issued else "")
        + ", and one visitor who is not signed in. To go through the login form as a "
        "person would, with a password setup gives them:"
    )


def steady_names(plan: Plan, rows: Mapping[str, Table], other: Mapping[str, Table]) -> None:
    """A seed that draws random names (Faker) names the users differently in each
    setup: the identities are then named by their key (``user2``, ``user1``)."""
    table, column = plan.user_source
    mine, theirs = rows.get(table), other.get(table)
    if not column or mine is None or theirs is None:
        return
    position = mine.columns.index(column)
    if [r[position] for r in mine.rows] == [r[position] for r in theirs.rows]:
        return
    for i, (name, key) in enumerate(zip(plan.users, plan.user_keys, strict=True)):
        steady = f"user{key}"
        plan.identities = [
            s.replace(f"Identity({literal(name)},", f"Identity({literal(steady)},")
            for s in plan.identities
        ]
        plan.users[i] = steady
    plan.identity_notes.insert(
        0,
        f"The seed draws random values: {table}.{column} differed between two runs of "
        "setup, so the identities are named by their key.",
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
            if callable(method) and callable_without_arguments(
                getattr(method, "__func__", method).__get__(object())
            ):
                return name
    return ""


def user_table(app: Any) -> str | None:
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
    forms = viewcode.forms_of(view) if view is not None else []
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
