"""Helpers for target specs that drive an existing Flask app the way it is deployed.

* ``pinned_config(**values)``: build the app with its own factory and config, with a
  few settings pinned (the scratch database URL, CSRF off) whatever the config says;
* ``flask_command(app, "seed")``: seed the database with the app's own CLI command;
* ``flask_login_session(user_id)``: an identity's headers that carry a Flask-Login
  session for an existing user, made with the app's own ``login_user`` and secret key
  (for when the spec cannot know a password);
* ``stored_token("api_keys.key", 1)``: an identity's headers that carry an API key a
  row of setup's holds (``Authorization: Bearer <key>``), read after setup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fuzzer.errors import TargetSetupError, describe

__all__ = [
    "app_request",
    "basic_auth",
    "bearer_token",
    "flask_command",
    "flask_login_session",
    "pinned_config",
    "stored_token",
]


@contextlib.contextmanager
def pinned_config(**values: Any) -> Iterator[None]:
    """While the block runs, every Flask app created gets these config values, and keeps
    them: whatever its factory then loads (``from_object``, ``from_mapping``,
    ``update``, item assignment) cannot change them. So an app factory that reads a
    config class or an environment builds the app on the fuzzer's scratch database::

        def app(database_url):
            with pinned_config(SQLALCHEMY_DATABASE_URI=database_url, WTF_CSRF_ENABLED=False):
                return create_app("testing")

    Extensions read their settings when the factory calls ``init_app``, so pinning
    must happen around the factory, not after it.
    """
    from flask import Config, Flask

    pins = dict(values)

    class PinnedConfig(Config):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            dict.update(self, pins)

        def __setitem__(self, key: str, value: Any) -> None:
            super().__setitem__(key, pins.get(key, value))

        def update(self, *args: Any, **kwargs: Any) -> None:
            for key, value in dict(*args, **kwargs).items():
                self[key] = value

        def setdefault(self, key: str, default: Any = None) -> Any:
            return super().setdefault(key, pins.get(key, default))

    previous = Flask.config_class
    Flask.config_class = PinnedConfig
    try:
        yield
    finally:
        Flask.config_class = previous


def flask_command(app: Any, *args: str) -> str:
    """Run one of the app's own CLI commands (``flask seed --users 3`` is
    ``flask_command(app, "seed", "--users", "3")``) and return what it printed. A
    command that fails raises ``TargetSetupError`` naming it, with its last words."""
    command = "flask " + " ".join(args)
    runner_of = getattr(app, "test_cli_runner", None)
    if runner_of is None:
        raise TargetSetupError(f"cannot run `{command}`: {app!r} is not a Flask app")
    result = runner_of().invoke(args=list(args))
    if result.exit_code != 0:
        said = [line for line in result.output.splitlines() if line.strip()]
        why = said[-1].strip() if said else ""
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            why = describe(result.exception)
        raise TargetSetupError(
            f"the app's command `{command}` exited with {result.exit_code}"
            + (f": {why}" if why else "")
        )
    return str(result.output)


def app_request(
    app: Any,
    method: str,
    path: str,
    *,
    as_: str | None = None,
    identities: Any = (),
    json: Any = None,
    form: Any = None,
) -> int:
    """Send one request to the app from ``setup``, through its own view, as the
    identity named ``as_`` of ``identities`` (its headers, or its login first): the rows
    only requests make (a cart before a checkout). Returns the status; one that is not
    2xx or 3xx raises ``TargetSetupError`` naming the request."""
    extension = getattr(app, "extensions", {}).get("sqlalchemy")
    if extension is not None:  # what setup wrote so far, visible to the request
        extension.session.commit()
    client = app.test_client()
    headers: dict[str, str] = {}
    identity = next((i for i in identities if i.name == as_), None)
    if as_ is not None and identity is None:
        raise TargetSetupError(f"app_request(..., as_={as_!r}): no identity of that name")
    if identity is not None and callable(identity.headers):
        headers = dict(identity.headers(app))
    elif identity is not None and identity.headers:
        headers = dict(identity.headers)
    login = getattr(identity, "login", None)
    if login is not None:
        client.open(login.path, method=login.method, json=login.json, data=login.form)
    reply = client.open(path, method=method, json=json, data=form, headers=headers)
    if not 200 <= reply.status_code < 400:
        raise TargetSetupError(
            f"setup's {method} {path} as {as_ or 'a visitor'} answered {reply.status_code}"
        )
    return int(reply.status_code)


def basic_auth(username: str, password: str) -> dict[str, str]:
    """The headers of an identity that sends HTTP Basic credentials with every request:
    ``Identity("demo", headers=basic_auth("demo", "secret"))``."""
    import base64

    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def flask_login_session(
    user_id: Any, *, token: str | Callable[[Any], Mapping[str, str]] = ""
) -> Callable[[Any], dict[str, str]]:
    """Headers for an identity that is logged in as the existing user ``user_id``: the
    app's user loader finds the user, Flask-Login's ``login_user`` fills a session, and
    the app's secret key signs it into the session cookie, as a real login would. Use
    it as ``Identity("alice", headers=flask_login_session(1))``. With ``token``, the
    name of the user's method that issues an API token (``get_token``), the headers
    also carry ``Authorization: Bearer <token>`` (what it wrote is committed); or
    ``token=bearer_token("/api/tokens", basic=(...))``: the one the app's own token
    endpoint issues."""

    def headers(app: Any) -> dict[str, str]:
        from flask import session
        from flask_login import login_user

        from fuzzer.version import USER_AGENT

        manager = getattr(app, "login_manager", None)
        loader = getattr(manager, "_user_callback", None)
        if loader is None:
            raise TargetSetupError(
                "flask_login_session needs an app with a Flask-Login LoginManager and a "
                "user_loader; log in with Login(path, form={...}) instead"
            )
        serializer_of = getattr(app.session_interface, "get_signing_serializer", None)
        context = app.test_request_context(
            "/", environ_base={"REMOTE_ADDR": "127.0.0.1"}, headers={"User-Agent": USER_AGENT}
        )
        with context:
            user = loader(str(user_id))
            if user is None:
                raise TargetSetupError(
                    f"flask_login_session({user_id!r}): the app's user loader found no user "
                    f"{user_id!r} after setup; create it in setup or pick another id"
                )
            if not login_user(user, force=True):
                raise TargetSetupError(f"flask_login_session({user_id!r}): login_user refused")
            serializer = serializer_of(app) if serializer_of is not None else None
            if serializer is None:
                raise TargetSetupError(
                    "flask_login_session needs Flask's signed cookie sessions and a "
                    "SECRET_KEY; log in with Login(path, form={...}) instead"
                )
            cookie = serializer.dumps(dict(session))
            result = {"Cookie": f"{app.config['SESSION_COOKIE_NAME']}={cookie}"}
            if isinstance(token, str) and token:
                result["Authorization"] = f"Bearer {_issue(app, user, token, user_id)}"
        if callable(token):  # the app's token endpoint: bearer_token(...)
            result.update(token(app))
        return result

    headers.__qualname__ = f"flask_login_session({user_id!r})"
    return headers


def _issue(app: Any, user: Any, method: str, user_id: Any) -> str:
    issue = getattr(user, method, None)
    if not callable(issue):
        raise TargetSetupError(
            f"flask_login_session({user_id!r}, token={method!r}): the user has no method "
            f"{method!r}; name the one that issues its API token"
        )
    value = issue()
    extension = getattr(app, "extensions", {}).get("sqlalchemy")
    if extension is not None:  # a token kept in the user's row
        extension.session.commit()
    return value.decode() if isinstance(value, bytes) else str(value)


_TOKEN_KEYS = ("token", "access_token", "auth_token", "api_token", "jwt", "api_key", "key")


def bearer_token(
    path: str,
    *,
    basic: tuple[str, str] | None = None,
    json: Any = None,
    form: Any = None,
    scheme: str = "Bearer",
) -> Callable[[Any], dict[str, str]]:
    """Headers for an identity that carries an API token the app's own token endpoint
    issues: ``POST path`` with credentials (HTTP Basic ``basic=(user, password)``, or a
    ``json`` or ``form`` body) answers ``{"token": …}`` (or ``access_token``, …), and
    every request of the identity sends ``Authorization: Bearer <token>``. Use it as
    ``Identity("ann", headers=bearer_token("/api/tokens", basic=("ann", "pw")))``; it
    runs once per fresh database, after setup, so the token is part of the initial
    state."""

    def headers(app: Any) -> dict[str, str]:
        extension = getattr(app, "extensions", {}).get("sqlalchemy")
        if extension is not None:  # what setup wrote so far, visible to the request
            extension.session.commit()
        sent = basic_auth(*basic) if basic is not None else {}
        reply = app.test_client().post(path, headers=sent, json=json, data=form)
        if not 200 <= reply.status_code < 300:
            raise TargetSetupError(
                f"bearer_token({path!r}): POST {path} answered {reply.status_code}, not a token"
            )
        token = token_in(reply.get_json(silent=True))
        if token is None:
            raise TargetSetupError(
                f"bearer_token({path!r}): POST {path} answered no token (a JSON key named "
                f"one of {', '.join(_TOKEN_KEYS)})"
            )
        return {"Authorization": f"{scheme} {token}"}

    headers.__qualname__ = f"bearer_token({path!r})"
    return headers


def stored_token(
    column: str, key: Any, *, header: str = "Authorization", scheme: str = "Bearer"
) -> Callable[[Any], dict[str, str]]:
    """Headers for an identity whose API key is a row's value: ``column`` is
    ``table.column``, the row the one whose primary key is ``key``, read once per fresh
    database after setup (a key setup draws at random differs on each), and every
    request of the identity sends ``Authorization: Bearer <value>`` (``scheme=""`` sends
    the bare value, ``header="X-API-Key"`` another header). Use it as
    ``Identity("ann", headers=stored_token("api_keys.key", 1))``."""
    table_name, _, column_name = column.rpartition(".")

    def headers(app: Any) -> dict[str, str]:
        from sqlalchemy import select

        extension = getattr(app, "extensions", {}).get("sqlalchemy")
        metadatas = getattr(extension, "metadatas", None) or {
            None: getattr(getattr(extension, "Model", None), "metadata", None)
        }
        table = next(
            (m.tables[table_name] for m in metadatas.values() if m and table_name in m.tables),
            None,
        )
        if (
            extension is None
            or table is None
            or column_name not in table.c
            or not table.primary_key.columns
        ):
            raise TargetSetupError(
                f"stored_token({column!r}): the app's Flask-SQLAlchemy models have no table "
                f"{table_name!r} with a column {column_name!r} and a primary key"
            )
        where = next(iter(table.primary_key.columns)) == key
        value = extension.session.execute(select(table.c[column_name]).where(where)).scalar()
        if not value:
            raise TargetSetupError(
                f"stored_token({column!r}, {key!r}): setup made no such row, or its "
                f"{column_name} is empty"
            )
        return {header: f"{scheme} {value}" if scheme else str(value)}

    headers.__qualname__ = f"stored_token({column!r}, {key!r})"
    return headers


def token_in(body: Any) -> str | None:
    """The token a JSON answer holds: under a key named like one, at the top or one
    level down (``{"data": {"token": …}}``)."""
    if not isinstance(body, dict):
        return None
    for key in _TOKEN_KEYS:
        if isinstance(body.get(key), str) and body[key]:
            return str(body[key])
    inner = (token_in(value) for value in body.values() if isinstance(value, dict))
    return next((token for token in inner if token is not None), None)
