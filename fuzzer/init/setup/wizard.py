"""A setup wizard completed as a person would on first start: when the app's pages
all redirect to one path named like setup (``/setup``, ``/install``, ``/wizard``), its
form is posted once with plain values (a site name, an admin email, ``Secret-pass-1``),
and kept as a setup step when the pages stop redirecting there."""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from fuzzer.init.inputs import viewcode
from fuzzer.target.rows import PASSWORD

__all__ = ["complete_wizard", "sign_up"]

_WIZARD = re.compile(r"setup|install|wizard|onboard|first[-_]?run", re.IGNORECASE)
_SIGN_UP = re.compile(r"regist|sign_?up|join|create_?account|new_?user", re.IGNORECASE)


def complete_wizard(app: Any) -> tuple[str, dict[str, Any]] | None:
    """``(path, form)`` of the wizard posted, when there was one and posting it made
    the pages stop redirecting there; else None (nothing is changed then)."""
    path = _wizard_path(app)
    if path is None:
        return None
    form = _form_values(app, path)
    client = app.test_client()
    with contextlib.suppress(Exception):
        reply = client.post(path, data=form)
        if reply.status_code < 400 and _wizard_path(app) is None:
            return path, form
    return None


def sign_up(app: Any, count: Any) -> tuple[str, dict[str, Any]] | None:
    """A user made through the app's own sign-up form, as a visitor would: ``(path,
    form)`` of the first POST rule named like a sign-up whose form, posted once with a
    new name (``user2``, ``user2@example.com``, ``Secret-pass-1``), made ``count()``
    (the rows of the user table) grow; else None."""
    rules = sorted(
        (r for r in app.url_map.iter_rules() if "POST" in (r.methods or ()) and not r.arguments),
        key=lambda r: r.rule,
    )
    for rule in rules:
        if not _SIGN_UP.search(f"{rule.rule} {rule.endpoint}"):
            continue
        form = _form_values(app, rule.rule, "user2")
        before = count()
        with contextlib.suppress(Exception):
            reply = app.test_client().post(rule.rule, data=form)
            if reply.status_code < 400 and count() > before:
                return rule.rule, form
    return None


def _wizard_path(app: Any) -> str | None:
    client = app.test_client()
    targets: Counter[str] = Counter()
    pages = [
        r.rule
        for r in app.url_map.iter_rules()
        if "GET" in (r.methods or ()) and not r.arguments and not r.endpoint.endswith("static")
    ][:12]
    for page in pages:
        with contextlib.suppress(Exception):
            reply = client.get(page)
            if 300 <= reply.status_code < 400 and reply.location:
                targets[urlsplit(reply.location).path] += 1
    if not targets:
        return None
    path, count = targets.most_common(1)[0]
    return path if count >= 2 and _WIZARD.search(path) else None


def _form_values(app: Any, path: str, who: str = "admin") -> dict[str, Any]:
    """Plain values for the form fields of the view at ``path``, for the user ``who``:
    from its WTForms form, else the names its code reads from ``request.form``."""
    adapter = app.url_map.bind("localhost")
    with contextlib.suppress(Exception):
        endpoint, _ = adapter.match(path, method="POST")
        view = app.view_functions.get(endpoint)
        forms = viewcode.forms_of(view) if view is not None else []
        if forms:
            return _from_form(app, forms[0], who)
        names: list[str] = []
        for function in viewcode.unwrapped(view):
            code = getattr(function, "__code__", None)
            if code is not None:
                names += [c for c in code.co_consts if isinstance(c, str) and c.isidentifier()]
        return {n: _value(n, "", who) for n in dict.fromkeys(names)}
    return {}


def _from_form(app: Any, form: type, who: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    with app.test_request_context("/", method="POST"):
        made = form(meta={"csrf": False})
        for field in made:
            kind = type(field).__name__
            if kind in ("SubmitField", "CSRFTokenField") or field.name == "csrf_token":
                continue
            choices = getattr(field, "choices", None)
            if choices:
                first = choices[0]
                values[field.name] = first[0] if isinstance(first, list | tuple) else first
            else:
                values[field.name] = _value(field.name, kind, who)
    return json.loads(json.dumps(values, default=str))


def _value(name: str, kind: str, who: str) -> Any:
    lowered = name.lower()
    if "password" in lowered or kind == "PasswordField":
        return PASSWORD
    if "email" in lowered or kind == "EmailField":
        return f"{who}@example.com"
    if kind == "BooleanField":
        return "y"
    if kind in ("IntegerField", "DecimalField", "FloatField"):
        return 1
    if "user" in lowered or "login" in lowered:
        return who
    return "fuzz"
