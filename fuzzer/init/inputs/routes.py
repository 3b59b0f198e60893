"""One route per URL rule and method of the app, with who may send it and the body its
view takes."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from fuzzer.init.inputs import bodies, openapi, viewcode
from fuzzer.init.inputs.probing import probe_body, prober
from fuzzer.init.inputs.values import (
    VARIABLE,
    choice_sources,
    form_columns,
    path_source,
    schema_value,
    value_source,
)
from fuzzer.init.plan import Plan, Route, Table
from fuzzer.init.pysource import Dict, literal

_SKIPPED_METHODS = {"HEAD", "OPTIONS"}


# -- routes ----------------------------------------------------------------------------------


def openapi_document(app: Any, plan: Plan) -> Mapping[str, Any] | None:
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


def routes(
    app: Any, plan: Plan, rows: Mapping[str, Table], document: Mapping[str, Any] | None
) -> Iterator[Route]:
    operations = openapi.openapi_operations(document) if document else {}
    login_users = plan.users
    probe = prober(app, plan, rows)
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
            route.path = path_source(rule.rule, rows, route, probe)
            function = app.view_functions.get(rule.endpoint)
            view = viewcode.view_for(function, method)
            route.view = viewcode.source_file(view) if view is not None else ""
            route.login_required = any(
                f is not None and login_required_view(f) for f in (function, view)
            )
            route.signs_out = view is not None and signs_out(view)
            if route.login_required and login_users:
                route.checks.append("login required: sent as the signed-in identities")
            elif login_users and view is not None and sends_users_away(view):
                route.anonymous_only = True
                route.checks.append("it sends signed-in users away: sent by the visitor")
            if method in ("POST", "PUT", "PATCH", "DELETE"):
                numbers = _plan_body(route, view, operations, document, rows, app)
                probe_body(route, probe, numbers)
            yield route


def _plan_body(
    route: Route,
    view: Any,
    operations: Mapping[tuple[str, str], Mapping[str, Any]],
    document: Mapping[str, Any] | None,
    rows: Mapping[str, Table],
    app: Any,
) -> set[str]:
    """The body of a change's view, into ``route``; the names of its number fields."""
    pattern = VARIABLE.sub("{}", route.rule)
    operation = operations.get((route.method, pattern))
    if operation is not None and document is not None:
        found = openapi.request_schema(document, operation)
        if found is not None:
            kind, schema = found
            body = openapi.json_schema_body(document, schema)
            route.body_kind, route.body = kind, body.node
            route.checks += ["body from the OpenAPI request schema", *body.checks]
            return set()
    forms = viewcode.forms_of(view) if view is not None else []
    if forms:
        columns = form_columns(forms[0], rows)
        choices, said = choice_sources(app, forms[0], rows)
        body = bodies.form_body(forms[0], {**columns, **choices})
        route.body_kind, route.body = "form", body.node
        route.checks += [f"form fields from {forms[0].__name__}", *said, *body.checks]
        return bodies.number_fields(forms[0])
    declared = viewcode.schema_fields(view) if view is not None else None
    if declared:
        items = tuple((literal(f), schema_value(f, kind, rows)) for f, kind in declared.items())
        route.body_kind, route.body = "json", Dict(items)
        route.checks.append("CHECK: JSON fields from the view's marshmallow schema")
        return {f for f, d in declared.items() if d.kind in ("int", "float") and not d.choices}
    if view is not None and viewcode.view_reads_json(view):
        fields = viewcode.json_fields(view)
        if fields:
            items = tuple((literal(f), value_source(f, rows, n)) for f, n in fields.items())
            route.body_kind, route.body = "json", Dict(items)
            route.checks.append("CHECK: JSON fields the view's code reads")
            return {f for f, number in fields.items() if number}
        route.body_kind, route.body = "json", "{}"
        route.checks.append("PLACEHOLDER: the JSON body this view reads; fill in its fields")
    return set()


def signs_out(view: Any) -> bool:
    """The view logs its user out (``logout_user``) or revokes its token."""
    return any(
        "logout_user" in names or any("revoke" in n for n in names)
        for names in (
            set(viewcode.code_names(f.__code__))
            for f in viewcode.unwrapped(view)
            if getattr(f, "__code__", None) is not None
        )
    )


def sends_users_away(view: Any) -> bool:
    """``if current_user.is_authenticated: return redirect(...)`` (a sign-up or login
    view): its code asks whether the user is signed in, and is not behind a login."""
    return any(
        "is_authenticated" in viewcode.code_names(f.__code__)
        for f in viewcode.unwrapped(view)
        if getattr(f, "__code__", None) is not None
    )


def login_required_view(view: Any) -> bool:
    """Behind Flask-Login's ``login_required`` or Flask-HTTPAuth's (their wrappers' code
    lives in those packages), a decorator of the app's own that reads the
    ``Authorization`` header (a token check), or a helper of its own it calls that reads
    ``request.authorization``."""
    functions = list(viewcode.unwrapped(view))
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
    return any(_checks_credentials(f) for f in viewcode.own_helpers(functions[-1]))


def _checks_credentials(function: Any) -> bool:
    """A helper of the app's own that reads ``request.authorization`` (HTTP Basic)."""
    code = getattr(function, "__code__", None)
    return code is not None and "authorization" in code.co_names
