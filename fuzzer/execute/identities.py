"""Log the target's identities in, once per fresh database, and say how each one is sent.

An identity logs in with a request to the app's own login view (its cookies are then
sent with every request of that identity), or gets headers from the target (a mapping,
or a callable that receives the app: a token the app issues, a Flask-Login session).
This runs after ``setup`` and before the snapshot, so whatever a login writes (a
session row, a last-login time) is part of the initial state and every execution
starts logged in. The fuzzer's HTTP client keeps no cookies, so identities never leak
into each other: each request carries exactly its identity's headers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from fuzzer.errors import FuzzerError, TargetSetupError, describe
from fuzzer.target.contract import Endpoint, Identity, Login, Target

__all__ = ["log_in"]


async def log_in(
    target: Target, app: Any, client: httpx.AsyncClient, base_url: str
) -> dict[str, Mapping[str, str]]:
    """Each identity's headers, logging in those that have a login request."""
    headers: dict[str, Mapping[str, str]] = {}
    for identity in target.identities:
        sent: dict[str, str] = {}
        if identity.headers is not None:
            sent.update(_made_headers(target, identity, app))
        if identity.login is not None:
            cookie = await _login(target, identity, identity.login, app, client, base_url)
            if cookie:
                sent["Cookie"] = "; ".join(p for p in (sent.get("Cookie"), cookie) if p)
        headers[identity.name] = sent
    return headers


def _made_headers(target: Target, identity: Identity, app: Any) -> dict[str, str]:
    made = identity.headers
    if callable(made):
        name = getattr(made, "__qualname__", repr(made))
        context = getattr(app, "app_context", None)
        try:
            if context is not None:
                with context():
                    made = made(app)
            else:
                made = made(app)
        except FuzzerError as exc:
            raise TargetSetupError(
                f"{_ref(target)}: the headers of identity {identity.name!r} failed: {exc}"
            ) from exc
        except Exception as exc:
            raise TargetSetupError(
                f"{_ref(target)}: the headers of identity {identity.name!r}: {name}(app) raised "
                f"{describe(exc)}; it runs once after setup and returns the identity's headers"
            ) from exc
    if not isinstance(made, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in made.items()
    ):
        raise TargetSetupError(
            f"{_ref(target)}: the headers of identity {identity.name!r} must be a mapping of "
            f"strings to strings, got {made!r}"
        )
    return dict(made)


async def _login(
    target: Target,
    identity: Identity,
    login: Login | Endpoint,
    app: Any,
    client: httpx.AsyncClient,
    base_url: str,
) -> str:
    """Send the login request; return the Cookie header its cookies make."""
    assert isinstance(login.path, str)
    method = str(login.method).upper()
    step = f"the login of identity {identity.name!r} ({method} {login.path})"
    try:
        reply = await client.request(
            method,
            base_url + login.path,
            json=login.json,
            data=_plain(login.form),
            params=_plain(login.params) if isinstance(login, Endpoint) else None,
            headers=_plain(login.headers),
            timeout=30.0,
        )
    except httpx.HTTPError as exc:
        raise TargetSetupError(
            f"{_ref(target)}: {step} failed: {type(exc).__name__}: {exc}"
        ) from exc
    if reply.status_code >= 400:
        raise TargetSetupError(
            f"{_ref(target)}: {step} answered {reply.status_code}{_said(reply)}; "
            + _login_hint(reply)
        )
    jar = httpx.Cookies()
    jar.extract_cookies(reply)
    cookies = {c.name: c.value or "" for c in jar.jar}
    if not cookies:
        raise TargetSetupError(
            f"{_ref(target)}: {step} answered {reply.status_code} but set no cookie; "
            f"a login must set a session cookie (for a token, give the identity headers= "
            f"instead){_said(reply)}"
        )
    user = _flask_login_user(app, cookies)
    if user is False:
        session = _session_of(app, cookies) or {}
        flashed = _flashed(session)
        fix = "check the credentials and that setup creates this user"
        if "csrf_token" in session and not flashed:
            fix = (
                "the login form wants a CSRF token: fuzz the app with CSRF off in its "
                "config (WTF_CSRF_ENABLED = False), as its tests do"
            )
        raise TargetSetupError(
            f"{_ref(target)}: {step} answered {reply.status_code} but did not log in: the "
            f"session it set has no Flask-Login user"
            + (f" (the app said: {flashed})" if flashed else "")
            + f"; {fix}"
        )
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def _plain(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) else None


def _session_of(app: Any, cookies: Mapping[str, str]) -> dict[str, Any] | None:
    """The Flask session a login set, decoded with the app's own serializer (None when it
    cannot tell: not a Flask app, server-side sessions, no cookie of that name)."""
    interface = getattr(app, "session_interface", None)
    serializer_of = getattr(interface, "get_signing_serializer", None)
    config = getattr(app, "config", None)
    if serializer_of is None or config is None:
        return None
    value = cookies.get(config.get("SESSION_COOKIE_NAME", "session"))
    serializer = serializer_of(app)
    if value is None or serializer is None:
        return None
    try:
        session = serializer.loads(value)
    except Exception:
        return None
    return session if isinstance(session, dict) else None


def _flask_login_user(app: Any, cookies: Mapping[str, str]) -> Any:
    """The Flask-Login user id in the session a login set; False if the app uses
    Flask-Login and there is none; None when it cannot tell."""
    if getattr(app, "login_manager", None) is None:
        return None
    session = _session_of(app, cookies)
    if session is None:
        return None
    return session.get("_user_id", False)


def _flashed(session: Mapping[str, Any]) -> str:
    messages = [m[1] if isinstance(m, list | tuple) else m for m in session.get("_flashes", ())]
    return "; ".join(repr(str(m)) for m in messages[:3])


def _login_hint(reply: httpx.Response) -> str:
    text = reply.text
    if "CSRF" in text or "csrf" in text:
        return (
            "the app wants a CSRF token: fuzz it with CSRF off in its config "
            "(WTF_CSRF_ENABLED = False), as its tests do"
        )
    return "check the login path, method and credentials"


def _said(reply: httpx.Response) -> str:
    text = " ".join(re.sub(r"<[^>]*>", " ", reply.text).split())
    if not text:
        return ""
    return f" ({text[:117] + '…' if len(text) > 120 else text})"


def _ref(target: Target) -> str:
    return target.reference or target.name
