"""The app's own test fixtures, run in setup: ``pytest_fixture(app, "pkg.tests.conftest:users")``.

A fixture is a function of its conftest (``@pytest.fixture``) whose parameters are
other fixtures. The ones that would build an app or a database of their own are the
fuzzer's instead: ``app`` (and ``flask_app``, ``application``) is the app the fuzzer
built, ``db`` (``_db``, ``database``) its Flask-SQLAlchemy extension, ``session``
(``db_session``) that extension's session, ``client`` a test client. Any other
parameter is a fixture of the same module, run first; a generator fixture's value is
what it yields, and its teardown (which drops tables or deletes rows) never runs."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from fuzzer import compat
from fuzzer.errors import TargetSetupError, describe

__all__ = ["PROVIDED", "fixture_function", "pytest_fixture"]

#: The fixture names the fuzzer answers itself, by what each gives.
PROVIDED: Mapping[str, str] = {
    "app": "app",
    "flask_app": "app",
    "application": "app",
    "db": "db",
    "_db": "db",
    "database": "db",
    "session": "session",
    "db_session": "session",
    "dbsession": "session",
    "client": "client",
    "test_client": "client",
}

_KEPT: list[Any] = []  # generator fixtures: never closed, so their teardown never runs


def pytest_fixture(app: Any, where: str) -> Any:
    """Run the test fixture ``module:name`` (inside the app's context, as setup runs),
    with the fixtures it asks for, and commit what it added; returns its value."""
    module_name, _, name = where.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise TargetSetupError(
            f"pytest_fixture({where!r}): importing it raised {describe(exc)}"
        ) from exc
    value = _run(app, vars(module), name, {}, ())
    extension = compat.flask_sqlalchemy(app)
    if extension is not None:
        extension.session.commit()
    return value


def fixture_function(value: Any) -> Callable[..., Any] | None:
    """The function a ``@pytest.fixture`` decorates (pytest 8.4+ and before), else None."""
    unwrap = getattr(value, "_get_wrapped_function", None)
    if callable(unwrap) and hasattr(value, "_fixture_function_marker"):
        return unwrap()
    wrapped = getattr(value, "__pytest_wrapped__", None)
    if wrapped is not None and hasattr(value, "_pytestfixturefunction"):
        return getattr(wrapped, "obj", None)
    return None


def fixtures_of(namespace: Mapping[str, Any]) -> dict[str, Callable[..., Any]]:
    """The fixtures a module defines, by the name tests ask for them."""
    found: dict[str, Callable[..., Any]] = {}
    for attribute, value in namespace.items():
        function = fixture_function(value)
        if function is not None:
            marker = getattr(value, "_fixture_function_marker", None) or getattr(
                value, "_pytestfixturefunction", None
            )
            found[getattr(marker, "name", None) or attribute] = function
    return found


def _run(
    app: Any, namespace: Mapping[str, Any], name: str, done: dict[str, Any], chain: tuple[str, ...]
) -> Any:
    import inspect

    if name in done:
        return done[name]
    if name in PROVIDED:
        return _provided(app, PROVIDED[name])
    function = fixtures_of(namespace).get(name)
    if function is None or name in chain:
        asked = f", which {chain[-1]} asks for," if chain else ""
        raise TargetSetupError(
            f"pytest_fixture: the fixture {name!r}{asked} is not one of the module's, nor one "
            f"the fuzzer gives ({', '.join(sorted(PROVIDED))})"
        )
    arguments = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.default is parameter.empty:
            arguments[parameter.name] = _run(app, namespace, parameter.name, done, (*chain, name))
    value = function(**arguments)
    if inspect.isgenerator(value):
        _KEPT.append(value)
        value = next(value)
    done[name] = value
    return value


def _provided(app: Any, what: str) -> Any:
    extension = compat.flask_sqlalchemy(app)
    if what == "app":
        return app
    if what == "client":
        return app.test_client()
    if extension is None:
        raise TargetSetupError(f"pytest_fixture: the fixture {what!r} needs Flask-SQLAlchemy")
    return extension if what == "db" else extension.session
