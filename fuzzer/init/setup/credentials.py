"""Identities of apps that sign in without Flask-Login: a key and a secret, sent as
HTTP Basic on every request (``request.authorization``, Flask-HTTPAuth), or posted once
to a login form that keeps the key in the session (a project and its code), or an API
key a row holds, sent as it is (``Authorization: Bearer <key>``, ``X-API-Key``).

The candidates come from the rows setup made: each row of a table with a secret-like
column gives its key (and its name-like columns) as the user, and as the secret the
column's own value when it is not a hash, the strings in the code of the setup steps
that made the rows (``generate_password_hash("demo")``), and ``fill_tables``'
password. A candidate is kept only when it is proven: a page that turns the visitor
away (401/403) answers 2xx with it."""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fuzzer.init.inputs import viewcode
from fuzzer.init.plan import Plan, Table
from fuzzer.init.pysource import literal
from fuzzer.target.apps import token_in
from fuzzer.target.rows import PASSWORD

__all__ = ["api_token", "plan_credentials", "turned_away"]

_SECRET = re.compile(r"pass|secret|code|pin$|token", re.IGNORECASE)
_NAMES = ("username", "name", "login", "email", "slug")
_TOKEN_RULE = re.compile(r"token|auth|log_?in|sign_?in|session", re.IGNORECASE)
_LOGIN_RULE = re.compile(r"log_?in|sign_?in|authenticate|session", re.IGNORECASE)
_KEY_FIELDS = ("id", "username", "email", "login", "name", "project", "project_id", "user")
_SECRET_FIELDS = ("password", "code", "secret", "passcode", "pin", "key")
_STORED_KEY = re.compile(r"key$|token", re.IGNORECASE)
_OWNER_NAMES = (*_NAMES, "handle", "nickname")
# how a stored key is sent: (header, scheme), the spec's keywords for stored_token
_KEY_HEADERS = (("Authorization", "Bearer"), ("Authorization", "Token"), ("X-API-Key", ""))


def plan_credentials(
    app: Any, plan: Plan, rows: Mapping[str, Table], constants: Sequence[str]
) -> bool:
    """Identities proven to work, added to the plan; False when none was found."""
    probes = list(turned_away(app, rows))
    if not probes:
        return False
    found = False
    for table, row in _accounts(rows):
        made = [way(app, plan, probes, table, row, constants) for way in (_plan_basic, _plan_form)]
        if not any(made):  # an API token, for an account neither way signs in
            made.append(_plan_token(app, plan, probes, table, row, constants))
        found = found or any(made)
    if not found:  # an API key kept in a row, sent as it is
        found = any([_plan_stored(app, plan, probes, rows, *key) for key in _stored_keys(rows)])
    if found:
        plan.identities.append('Identity("anonymous")')
    return found


def _plan_basic(
    app: Any,
    plan: Plan,
    probes: Sequence[str],
    table: Table,
    row: tuple[Any, ...],
    constants: Sequence[str],
) -> bool:
    """An identity that sends the row's key and secret as HTTP Basic."""
    for user, secret in _pairs(table, row, constants):
        header = {"Authorization": _basic(user, secret)}
        page = _answers(app, probes, table, row, header)
        if page:
            name = _identity_name(user, plan)
            plan.identities.append(
                f"Identity({literal(name)}, headers=basic_auth({literal(user)}, {literal(secret)}))"
            )
            plan.users.append(name)
            plan.identity_notes.append(
                f"{name}: HTTP Basic {user}:{secret}, proven by GET {page} (2xx; "
                "401/403 without it)"
            )
            return True
    return False


def _plan_form(
    app: Any,
    plan: Plan,
    probes: Sequence[str],
    table: Table,
    row: tuple[Any, ...],
    constants: Sequence[str],
) -> bool:
    """An identity that posts the row's key and secret to a login form once."""
    for user, secret in _pairs(table, row, constants):
        login = _session_login(app, probes, table, row, user, secret)
        if login is not None:
            path, form, page = login
            name = _identity_name(f"{user}-web", plan)
            plan.identities.append(
                f"Identity({literal(name)}, login=Login({literal(path)}, form={literal(form)}))"
            )
            plan.users.append(name)
            plan.identity_notes.append(
                f"{name}: the login form at {path}, which keeps {user!r} in the session, "
                f"proven by GET {page} (2xx after it; 401/403 before)"
            )
            return True
    return False


def _plan_token(
    app: Any,
    plan: Plan,
    probes: Sequence[str],
    table: Table,
    row: tuple[Any, ...],
    constants: Sequence[str],
) -> bool:
    """An identity whose API token the app's token endpoint issues for the row's key
    and secret, proven by a page that turns the visitor away."""
    for user, secret in _pairs(table, row, constants):
        issued = _token_login(app, probes, table, row, user, secret)
        if issued is not None:
            call, how, page = issued
            name = _identity_name(user, plan)
            plan.identities.append(f"Identity({literal(name)}, headers={call})")
            plan.users.append(name)
            plan.identity_notes.append(
                f"{name}: an API token from {how}, proven by GET {page} (2xx with it; "
                "401/403 without)"
            )
            return True
    return False


def _plan_stored(
    app: Any,
    plan: Plan,
    probes: Sequence[str],
    rows: Mapping[str, Table],
    name: str,
    table: Table,
    row: tuple[Any, ...],
    column: str,
) -> bool:
    """An identity that sends the API key a row holds (a personal access key the seed
    drew), read again after each setup: ``stored_token("api_keys.key", 1)``."""
    value = row[table.columns.index(column)]
    key = row[table.columns.index(table.primary_key[0])]
    for header, scheme in _KEY_HEADERS:
        sent = {header: f"{scheme} {value}" if scheme else value}
        page = _answers(app, probes, table, row, sent)
        if page:
            who = _identity_name(_owner(rows, table, row) or f"{name.rstrip('s')}{key}", plan)
            extra = "".join(
                f", {word}={literal(given)}"
                for word, given, usual in (
                    ("header", header, "Authorization"),
                    ("scheme", scheme, "Bearer"),
                )
                if given != usual
            )
            call = f"stored_token({literal(f'{name}.{column}')}, {literal(key)}{extra})"
            plan.identities.append(f"Identity({literal(who)}, headers={call})")
            plan.users.append(who)
            plan.identity_notes.append(
                f"{who}: the key in {name}.{column} of row {key!r}, as {header}: "
                f"{scheme + ' ' if scheme else ''}<key>, proven by GET {page} (2xx with it; "
                "401/403 without)"
            )
            return True
    return False


def _stored_keys(
    rows: Mapping[str, Table],
) -> Iterator[tuple[str, Table, tuple[Any, ...], str]]:
    """The first two rows of each table with a column named like a key or a token that
    holds a string long enough to be one, and not a hash."""
    for qualified, table in rows.items():
        if not table.primary_key:
            continue
        for column in (c for c in table.columns if _STORED_KEY.search(c)):
            for row in table.rows[:2]:
                value = row[table.columns.index(column)]
                if isinstance(value, str) and len(value) >= 8 and "$" not in value:
                    yield qualified.rsplit(".", 1)[-1], table, row, column


def _owner(rows: Mapping[str, Table], table: Table, row: tuple[Any, ...]) -> str:
    """A name for the row's owner: its own name-like column, else that of the row its
    ``<table>_id`` column names (``api_keys.member_id`` → ``members.handle``)."""
    named = _name_of(table, row)
    if named:
        return named
    for position, column in enumerate(table.columns):
        if not column.endswith("_id"):
            continue
        for name, other in rows.items():
            if name.rsplit(".", 1)[-1].rstrip("s") != column[:-3] or not other.primary_key:
                continue
            pk = other.columns.index(other.primary_key[0])
            owner = next((r for r in other.rows if r[pk] == row[position]), None)
            if owner is not None:
                return _name_of(other, owner)
    return ""


def _name_of(table: Table, row: tuple[Any, ...]) -> str:
    for column in _OWNER_NAMES:
        if column in table.columns and row[table.columns.index(column)]:
            return str(row[table.columns.index(column)])
    return ""


def _identity_name(name: str, plan: Plan) -> str:
    name = re.sub(r"[^\w.@-]", "_", name) or "someone"
    while name in plan.users:
        name += "_"
    return name


def _accounts(rows: Mapping[str, Table]) -> Iterator[tuple[Table, tuple[Any, ...]]]:
    for table in rows.values():
        if table.primary_key and any(_SECRET.search(c) for c in table.columns):
            yield from ((table, row) for row in table.rows[:2])


def _pairs(
    table: Table, row: tuple[Any, ...], constants: Sequence[str]
) -> Iterator[tuple[str, str]]:
    users = [str(row[table.columns.index(table.primary_key[0])])]
    users += [str(row[table.columns.index(c)]) for c in _NAMES if c in table.columns]
    secrets = []
    for position, column in enumerate(table.columns):
        value = row[position]
        if _SECRET.search(column) and isinstance(value, str) and not _hashed(value):
            secrets.append(value)
    secrets += [*constants, PASSWORD]
    seen: set[tuple[str, str]] = set()
    for user in users:
        for secret in secrets:
            if (user, secret) not in seen and user and secret:
                seen.add((user, secret))
                yield user, secret


def _hashed(value: str) -> bool:
    return "$" in value or len(value) >= 40


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def turned_away(app: Any, rows: Mapping[str, Table]) -> Iterator[str]:
    """GET rules that answer the visitor 401 or 403, each as a path template whose
    variables are named like a table's key."""
    client = app.test_client()
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in (rule.methods or ()) or rule.endpoint.endswith("static"):
            continue
        if len(rule.arguments) > 1:
            continue
        path = re.sub(r"<(?:[^:>]*:)?[^>]*>", "{}", rule.rule)
        if rule.arguments:
            value = _any_key(rows, next(iter(rule.arguments)))
            if value is None:
                continue
            trial = path.format(value)
        else:
            trial = path
        with contextlib.suppress(Exception):
            if client.get(trial).status_code in (401, 403):
                yield path


def _any_key(rows: Mapping[str, Table], variable: str) -> Any:
    stem = variable[:-3] if variable.endswith("_id") else variable
    for name, table in rows.items():
        if table.rows and table.primary_key and name.rsplit(".", 1)[-1].rstrip("s") == stem:
            return table.rows[0][table.columns.index(table.primary_key[0])]
    return None


def _fill(path: str, table: Table, row: tuple[Any, ...]) -> str:
    return path.format(row[table.columns.index(table.primary_key[0])]) if "{}" in path else path


def _answers(
    app: Any, probes: Sequence[str], table: Table, row: tuple[Any, ...], headers: Any
) -> str:
    client = app.test_client()
    for path in probes:
        page = _fill(path, table, row)
        with contextlib.suppress(Exception):
            if 200 <= client.get(page, headers=headers).status_code < 300:
                return page
    return ""


def _session_login(
    app: Any, probes: Sequence[str], table: Table, row: tuple[Any, ...], user: str, secret: str
) -> tuple[str, dict[str, str], str] | None:
    """A POST rule named like a login whose form fields take a key and a secret, after
    which a page that turned the visitor away answers 2xx."""
    for rule in app.url_map.iter_rules():
        if "POST" not in (rule.methods or ()) or rule.arguments:
            continue
        if not _LOGIN_RULE.search(rule.rule + " " + rule.endpoint):
            continue
        fields = _login_fields(app.view_functions.get(rule.endpoint))
        if fields is None:
            continue
        form = {fields[0]: user, fields[1]: secret}
        client = app.test_client()
        with contextlib.suppress(Exception):
            if client.post(rule.rule, data=form).status_code >= 400:
                continue
            for path in probes:
                page = _fill(path, table, row)
                if 200 <= client.get(page).status_code < 300:
                    return rule.rule, form, page
    return None


def api_token(
    app: Any,
    probes: Sequence[str],
    table: Table,
    row: tuple[Any, ...],
    constants: Sequence[str],
) -> tuple[str, str] | None:
    """``(bearer_token(...) source, how)`` for the row's user, when the app's token
    endpoint issues one a page that turns the visitor away (``probes``) accepts."""
    for user, secret in _pairs(table, row, constants):
        issued = _token_login(app, probes, table, row, user, secret)
        if issued is not None:
            return issued[0], issued[1]
    return None


def _token_login(
    app: Any, probes: Sequence[str], table: Table, row: tuple[Any, ...], user: str, secret: str
) -> tuple[str, str, str] | None:
    """A POST rule named like a token endpoint that answers a token for the key and the
    secret (as HTTP Basic, else a JSON or form body of its login fields), after which a
    page that turned the visitor away answers 2xx: ``(bearer_token(...) source, how,
    page)``."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "POST" not in (rule.methods or ()) or rule.arguments:
            continue
        if not _TOKEN_RULE.search(rule.rule + " " + rule.endpoint):
            continue
        for keyword, sent in _token_requests(app.view_functions.get(rule.endpoint), user, secret):
            with contextlib.suppress(Exception):
                if keyword == "basic":
                    reply = app.test_client().post(rule.rule, headers={"Authorization": sent})
                else:
                    reply = app.test_client().post(rule.rule, **{keyword: sent})
                token = token_in(reply.get_json(silent=True)) if reply.status_code < 300 else None
                for scheme in ("Bearer", "Token") if token else ():
                    page = _answers(app, probes, table, row, {"Authorization": f"{scheme} {token}"})
                    if page:
                        given = literal((user, secret)) if keyword == "basic" else literal(sent)
                        kind = {"basic": "basic", "json": "json", "data": "form"}[keyword]
                        extra = f", scheme={literal(scheme)}" if scheme != "Bearer" else ""
                        call = f"bearer_token({literal(rule.rule)}, {kind}={given}{extra})"
                        return call, f"POST {rule.rule} ({keyword})", page
    return None


def _token_requests(view: Any, user: str, secret: str) -> Iterator[tuple[str, Any]]:
    """How a token endpoint may take credentials: HTTP Basic, then its login fields as
    JSON and as a form."""
    yield "basic", _basic(user, secret)
    fields = _login_fields(view)
    if fields is not None:
        yield "json", {fields[0]: user, fields[1]: secret}
        yield "data", {fields[0]: user, fields[1]: secret}


def _login_fields(view: Any) -> tuple[str, str] | None:
    """The form fields of a login view that take the key and the secret: its WTForms
    form's, else the names its code reads (``request.form.get("id")``)."""
    names: list[str] = []
    forms = viewcode.forms_of(view) if view is not None else []
    if forms:
        from wtforms.fields.core import UnboundField

        names = [n for n, v in vars(forms[0]).items() if isinstance(v, UnboundField)]
    else:
        for function in viewcode.unwrapped(view):
            code = getattr(function, "__code__", None)
            if code is not None:
                names += [c for c in code.co_consts if isinstance(c, str)]
    key = next((n for n in names if n.lower() in _KEY_FIELDS), None)
    secret = next((n for n in names if n.lower() in _SECRET_FIELDS), None)
    return (key, secret) if key and secret else None
