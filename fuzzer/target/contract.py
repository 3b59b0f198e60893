"""The target contract: what a user writes, how it is loaded, and how it is checked.

A target names a WSGI app factory, a setup function, and the endpoints to fuzz::

    profile = Target(
        name="profile",
        app=create_app,            # database URL (or {name: URL}) -> WSGI app
        setup=setup,               # app -> None: create tables, insert the initial rows
        endpoints=[Endpoint("PUT", "/user/name", json=st.fixed_dictionaries(...))],
    )

and is loaded by reference: ``targets.profile:buggy``.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis.strategies import SearchStrategy

from fuzzer import compat
from fuzzer.errors import InvalidTarget
from fuzzer.kinds import KINDS

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
DEFAULT_CONFLICT_STATUSES = frozenset({409, 423})
EXPECTATION_DATABASES = ("sqlite", "mariadb", "mysql", "postgres")
EXPECTATION_LEVELS = ("", "read-uncommitted", "read-committed", "repeatable-read", "serializable")
DEFAULT_LEVELS = {
    "mariadb": "repeatable-read",
    "mysql": "repeatable-read",
    "postgres": "read-committed",
}  # what each server runs at unless told


class Endpoint:
    """One kind of request. ``path``, ``json``, ``form``, ``params`` and ``headers`` are
    each a plain value or a Hypothesis strategy that draws one. ``form`` is a
    form-encoded body (an HTML form's fields); a request has a JSON body or a form, not
    both.

    ``as_`` restricts which declared identities may send it (default: all of them).
    """

    def __init__(
        self,
        method: str,
        path: str | SearchStrategy[str],
        *,
        json: Any = None,
        form: Mapping[str, Any] | SearchStrategy[Mapping[str, Any]] | None = None,
        params: Mapping[str, Any] | SearchStrategy[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | SearchStrategy[Mapping[str, str]] | None = None,
        name: str | None = None,
        as_: Collection[str] | None = None,
    ) -> None:
        self.method = method.upper() if isinstance(method, str) else method
        self.path = path
        self.json = json
        self.form = form
        self.params = params
        self.headers = headers
        self.identities = tuple(as_) if as_ is not None else None
        self.name = name or _default_name(self.method, path)
        self.named = name is not None  # an automatic name is made unique within its target
        self._automatic = self.name

    def __repr__(self) -> str:
        return f"Endpoint({self.name!r})"


def _default_name(method: Any, path: Any) -> str:
    if isinstance(path, str):
        return f"{method} {path}"
    rule = getattr(path, "rule", None)  # fuzzer.paths("/post/<int:post_id>", ...)
    if isinstance(rule, str):
        return f"{method} {rule}"
    elements = getattr(path, "elements", None)  # sampled_from(...)
    if elements and all(isinstance(e, str) for e in elements):
        values = list(elements)
        prefix = _common_prefix(values)
        rests = [v[len(prefix) :] for v in values]
        suffix = _common_prefix([r[::-1] for r in rests], separator="")[::-1]
        suffix = suffix[suffix.find("/") :] if "/" in suffix else ""
        return f"{method} {prefix}*{suffix}"
    return f"{method} {path!r}"[:60]


def unique_names(endpoints: Sequence[Endpoint]) -> None:
    """Give endpoints named automatically a name no other endpoint of the list has: the
    second ``GET /articles/*`` becomes ``GET /articles/* (2)``, in the order they are
    declared, so the names are the same on every run. Names given with ``name=`` are kept."""
    taken = {e.name for e in endpoints if isinstance(e, Endpoint) and e.named}
    for endpoint in endpoints:
        if not isinstance(endpoint, Endpoint) or endpoint.named:
            continue
        base, n = endpoint._automatic, 1
        name = base
        while name in taken:
            n += 1
            name = f"{base} ({n})"
        endpoint.name = name
        taken.add(name)


def _common_prefix(values: list[str], separator: str = "/") -> str:
    first, last = min(values), max(values)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    prefix = first[:n]
    if not separator:
        return prefix
    return prefix[: prefix.rfind(separator) + 1] if separator in prefix else prefix


@dataclass(frozen=True)
class Login:
    """How an identity logs in: one request to the app's own login view, form-encoded
    (``form=``, an HTML login form) or JSON (``json=``). Whatever cookies it sets are
    sent with every request of the identity."""

    path: str
    form: Mapping[str, Any] | None = None
    json: Any = None
    method: str = "POST"
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Identity:
    """A user the requests can act as.

    ``login`` is a request sent once per fresh database (after ``setup``, before the
    snapshot, so its side effects are part of the initial state); the cookies it sets
    are kept for this identity. ``headers`` are sent with every request of this
    identity; a callable receives the app and returns them (for a token the app
    issues, or ``fuzzer.flask_login_session(user_id)``). With neither, the identity is
    anonymous.
    """

    name: str
    login: Login | Endpoint | None = None  # an Endpoint with plain values works too
    headers: Mapping[str, str] | Callable[[Any], Mapping[str, str]] | None = None


@dataclass(frozen=True)
class Target:
    """An application to fuzz and how to drive it. See DESIGN.md §3."""

    name: str
    app: Callable[..., Any]  # (database URL) -> WSGI app; (URL, Redis URL) with redis
    setup: Callable[[Any], None] | None
    endpoints: Sequence[Endpoint]
    databases: tuple[str, ...] = ()  # named databases: the factory then gets {name: URL}
    identities: Sequence[Identity] = ()
    observers: Sequence[Endpoint] = ()  # read-only requests run serially after each execution
    min_requests: int = 2
    max_requests: int = 3
    max_init_requests: int = 1
    conflict_statuses: frozenset[int] = DEFAULT_CONFLICT_STATUSES
    ignore_columns: frozenset[str] = frozenset()  # "column" or "table.column"
    ignore_fields: frozenset[str] = frozenset()  # response JSON keys, at any depth
    # random values that must agree: "field = table.column" (a response's JSON key and a
    # column of the final rows); obvious ones are inferred (DESIGN.md §3)
    relations: frozenset[str] = frozenset()
    expected_findings: frozenset[str] = frozenset()  # the finding kinds this target must produce
    # where they differ by database: "mariadb", "postgres/serializable", … -> kinds
    expected_on: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # what it must produce besides when errors are injected (``--faults``): its retries
    expected_with_faults: frozenset[str] = frozenset()
    threads: int = 8  # worker threads of the loopback server
    # a scratch Redis database of its own: the factory then gets (database URL, Redis URL)
    redis: bool = False
    # app -> None, before every execution: put back what lives outside the databases and
    # the caches the fuzzer resets itself (caches.py), as setup left it
    reset: Callable[[Any], None] | None = None
    description: str = ""
    reference: str = field(default="", compare=False)  # set by import_target

    def __post_init__(self) -> None:
        for group in (self.endpoints, self.observers):
            if isinstance(group, Sequence) and not isinstance(group, str | bytes):
                unique_names(group)

    @property
    def multi_database(self) -> bool:
        return bool(self.databases)

    def expected(
        self, database: str = "sqlite", isolation: str = "", faults: bool = False
    ) -> frozenset[str]:
        """The finding kinds expected on ``database`` (sqlite, mariadb, mysql, postgres)
        at ``isolation`` (read-committed, …; "" for the database's default): the most
        specific entry of ``expected_on``, else ``expected_findings``; with ``faults``
        (``--faults``), and ``expected_with_faults``."""
        level = isolation or DEFAULT_LEVELS.get(database, "")
        extra = frozenset(self.expected_with_faults) if faults else frozenset()
        for key in (f"{database}/{level}", database):
            if key in self.expected_on:
                return frozenset(self.expected_on[key]) | extra
        return self.expected_findings | extra


def import_target(reference: str) -> Target:
    """Import ``package.module:attribute`` and validate it; raise InvalidTarget otherwise.

    The fuzzer's instrumentation must be in place first (a module that binds
    ``time.sleep`` keeps the one it found): ``fuzzer.execute.instrument.load_target``
    installs it, then calls this.
    """
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise InvalidTarget(
            f"Expected a target reference like 'package.module:attribute' but got {reference!r}"
        )
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: modules in the current directory load
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise InvalidTarget(
                f"Cannot import module {module_name!r} of target {reference!r}: no module named "
                f"{exc.name!r}; check the spelling and that it is importable from this directory"
            ) from None
        raise InvalidTarget(
            f"Importing {module_name!r} for target {reference!r} failed: {exc}"
        ) from exc
    except Exception as exc:
        hint = compat.clash(exc)
        raise InvalidTarget(
            f"Importing {module_name!r} for target {reference!r} raised {type(exc).__name__}: {exc}"
            + (f"; {hint}" if hint else "")
        ) from exc
    try:
        value = getattr(module, attribute)
    except AttributeError:
        names = sorted(n for n, v in vars(module).items() if isinstance(v, Target))
        hint = f"; targets in it: {', '.join(names)}" if names else "; it defines no Target"
        raise InvalidTarget(
            f"Module {module_name!r} has no attribute {attribute!r}{hint}"
        ) from None
    if not isinstance(value, Target):
        raise InvalidTarget(
            f"{reference} is a {type(value).__name__}, expected a fuzzer.Target; "
            f"define it as Target(name=..., app=..., setup=..., endpoints=[...])"
        )
    validate(value, reference)
    return _with_reference(value, reference)


def _with_reference(target: Target, reference: str) -> Target:
    object.__setattr__(target, "reference", reference)
    return target


Fail = Callable[[str], None]


def validate(target: Target, where: str = "") -> None:
    """Check every field of a target; raise InvalidTarget naming the first mistake."""
    at = f"{where or target.name}: " if (where or getattr(target, "name", None)) else ""

    def fail(message: str) -> None:
        raise InvalidTarget(at + message)

    for check in _CHECKS:
        check(target, fail)


def _check_callables(target: Target, fail: Fail) -> None:
    if not isinstance(target.name, str) or not target.name:
        fail(f"Target.name must be a non-empty string, got {target.name!r}")
    if not callable(target.app):
        fail(f"Target.app must be a callable that returns a WSGI app, got {target.app!r}")
    if target.setup is not None and not callable(target.setup):
        fail(f"Target.setup must be a callable taking the app (or None), got {target.setup!r}")


def _check_endpoints(target: Target, fail: Fail) -> None:
    if isinstance(target.endpoints, str | bytes) or not isinstance(target.endpoints, Sequence):
        fail(f"Target.endpoints must be a list of Endpoint, got {target.endpoints!r}")
    if not target.endpoints:
        fail("Target.endpoints is empty; give at least one Endpoint to fuzz")
    for label, group in (("endpoints", target.endpoints), ("observers", target.observers)):
        for i, endpoint in enumerate(group):
            _validate_endpoint(endpoint, f"Target.{label}[{i}]", fail)
    names = [e.name for e in target.endpoints]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        fail(f"endpoint names must be unique, {duplicates[0]!r} is used twice; pass name=...")


def _check_databases(target: Target, fail: Fail) -> None:
    if not isinstance(target.databases, tuple) or not all(
        isinstance(d, str) and d.isidentifier() for d in target.databases
    ):
        fail(f"Target.databases must be a tuple of identifiers, got {target.databases!r}")


def _check_identities(target: Target, fail: Fail) -> None:
    if isinstance(target.identities, str | bytes) or not isinstance(target.identities, Sequence):
        fail(f"Target.identities must be a list of Identity, got {target.identities!r}")
    for i, identity in enumerate(target.identities):
        _validate_identity(identity, f"Target.identities[{i}]", fail)
    identity_names = [i.name for i in target.identities]
    twice = sorted({n for n in identity_names if identity_names.count(n) > 1})
    if twice:
        fail(f"identity names must be unique, {twice[0]!r} is used twice")
    for endpoint in (*target.endpoints, *target.observers):
        for name in endpoint.identities or ():
            if name not in identity_names:
                declared = ", ".join(map(repr, identity_names)) or "none"
                fail(
                    f"endpoint {endpoint.name!r} names identity {name!r} in as_=, which is not "
                    f"declared in Target.identities (declared: {declared})"
                )


def _check_request_counts(target: Target, fail: Fail) -> None:
    if not (isinstance(target.min_requests, int) and target.min_requests >= 1):
        fail(f"Target.min_requests must be an int >= 1, got {target.min_requests!r}")
    if not (isinstance(target.max_requests, int) and target.min_requests <= target.max_requests):
        fail(
            f"Target.max_requests must be an int >= min_requests ({target.min_requests}), "
            f"got {target.max_requests!r}"
        )
    if target.max_requests >= target.threads:
        fail(
            f"Target.threads ({target.threads}) must exceed max_requests "
            f"({target.max_requests}): every concurrent request holds a worker thread"
        )


def _check_expected_kinds(target: Target, fail: Fail) -> None:
    for where, kinds in (
        ("expected_findings", target.expected_findings),
        ("expected_with_faults", target.expected_with_faults),
        *((f"expected_on[{k!r}]", v) for k, v in target.expected_on.items()),
    ):
        unknown = sorted(set(kinds) - set(KINDS))
        if isinstance(kinds, str) or unknown:
            fail(
                f"Target.{where} must be a set of finding kinds ({', '.join(KINDS)}), got {kinds!r}"
            )


def _check_relations(target: Target, fail: Fail) -> None:
    for relation in target.relations if not isinstance(target.relations, str) else [0]:
        key, equals, cell = str(relation).partition("=")
        if not (equals and key.strip() and "." in cell and all(cell.strip().split("."))):
            fail(
                f"Target.relations must be a set of 'field = table.column' strings (a response "
                f"JSON key and a column of the final rows that must agree), got {relation!r}"
            )


def _check_conflict_statuses(target: Target, fail: Fail) -> None:
    if not all(isinstance(s, int) and 100 <= s <= 599 for s in target.conflict_statuses):
        fail(f"Target.conflict_statuses must be HTTP statuses, got {target.conflict_statuses!r}")


def _check_expectation_keys(target: Target, fail: Fail) -> None:
    for key in target.expected_on:
        database, _, level = str(key).partition("/")
        if database not in EXPECTATION_DATABASES or level not in EXPECTATION_LEVELS:
            fail(
                f"Target.expected_on key {key!r} must be a database "
                f"({', '.join(EXPECTATION_DATABASES)}), optionally followed by "
                f"/level ({', '.join(lvl for lvl in EXPECTATION_LEVELS if lvl)})"
            )


def _check_stores(target: Target, fail: Fail) -> None:
    if not isinstance(target.redis, bool):
        fail(f"Target.redis must be True or False, got {target.redis!r}")
    if target.reset is not None and not callable(target.reset):
        fail(f"Target.reset must be a callable taking the app (or None), got {target.reset!r}")


def _check_factory(target: Target, fail: Fail) -> None:
    url = "a mapping of database name to URL" if target.databases else "the database URL"
    if target.redis and not _takes_two(target.app):
        fail(
            f"Target.app must take two arguments with Target.redis: {url}, and the URL of "
            f"the scratch Redis database the fuzzer owns"
        )
    if not target.redis and _factory_arity(target.app) != 1:
        fail(
            "Target.app must take exactly one argument (the database URL, or a mapping of "
            "database name to URL when Target.databases is set)"
        )


# in this order: the first mistake is the one named
_CHECKS: tuple[Callable[[Target, Fail], None], ...] = (
    _check_callables,
    _check_endpoints,
    _check_databases,
    _check_identities,
    _check_request_counts,
    _check_expected_kinds,
    _check_relations,
    _check_conflict_statuses,
    _check_expectation_keys,
    _check_stores,
    _check_factory,
)


def _validate_endpoint(endpoint: Any, where: str, fail: Fail) -> None:
    if not isinstance(endpoint, Endpoint):
        fail(f"{where} must be an Endpoint, got {type(endpoint).__name__}: {endpoint!r}")
    if endpoint.method not in METHODS:
        fail(
            f"{where}: method must be one of {', '.join(sorted(METHODS))}, got {endpoint.method!r}"
        )
    path = endpoint.path
    if isinstance(path, str):
        if not path.startswith("/"):
            fail(f"{where}: path must start with '/', got {path!r}")
    elif not isinstance(path, SearchStrategy):
        fail(f"{where}: path must be a string or a Hypothesis strategy, got {path!r}")
    for name in ("form", "params", "headers"):
        value = getattr(endpoint, name)
        if value is not None and not isinstance(value, Mapping | SearchStrategy):
            fail(f"{where}: {name} must be a mapping or a strategy, got {value!r}")
    if endpoint.json is not None and endpoint.form is not None:
        fail(f"{where}: give json= or form=, not both (a request has one body)")
    if endpoint.identities is not None and (
        isinstance(endpoint.identities, str) or not endpoint.identities
    ):
        fail(f"{where}: as_ must be a non-empty list of identity names")


def _validate_identity(identity: Any, where: str, fail: Fail) -> None:
    if not isinstance(identity, Identity):
        fail(f"{where} must be an Identity, got {type(identity).__name__}: {identity!r}")
    if not isinstance(identity.name, str) or not identity.name:
        fail(f"{where}: Identity.name must be a non-empty string, got {identity.name!r}")
    where = f"identity {identity.name!r}"
    login = identity.login
    if login is not None:
        if isinstance(login, Endpoint):
            parts = (login.path, login.json, login.form, login.params, login.headers)
            if any(isinstance(part, SearchStrategy) for part in parts):
                fail(f"{where}: its login request must be plain values, not strategies")
        elif not isinstance(login, Login):
            fail(
                f"{where}: login must be Login(path, form={{...}}) or Login(path, json={{...}}), "
                f"got {login!r}"
            )
        if not isinstance(login.path, str) or not login.path.startswith("/"):
            fail(f"{where}: the login path must start with '/', got {login.path!r}")
        if str(login.method).upper() not in METHODS:
            fail(f"{where}: the login method must be an HTTP method, got {login.method!r}")
        if login.json is not None and login.form is not None:
            fail(f"{where}: log in with json= or form=, not both")
    headers = identity.headers
    if headers is not None and not (isinstance(headers, Mapping) or callable(headers)):
        fail(
            f"{where}: headers must be a mapping, or a callable taking the app and returning "
            f"one, got {headers!r}"
        )


def _factory_arity(factory: Callable[..., Any]) -> int:
    """How many positional arguments the factory needs (1 when it cannot tell)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return 1
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in parameters if p.default is p.empty and p.kind in positional]
    takes_one = any(p.kind in (*positional, inspect.Parameter.VAR_POSITIONAL) for p in parameters)
    if len(required) > 1:
        return len(required)
    return 1 if takes_one else 0


def _takes_two(factory: Callable[..., Any]) -> bool:
    """Whether the factory can be called with two positional arguments (True when it
    cannot tell)."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in parameters if p.default is p.empty and p.kind in positional]
    varargs = any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in parameters)
    return len(required) <= 2 and (varargs or sum(p.kind in positional for p in parameters) >= 2)
