"""Shared state beyond the database: caches and Redis, scheduled and reset like tables.

Two jobs here, and a third in scratch.py:

* **Scheduling.** ``instrument()`` patches Flask-Caching's backends (every subclass of
  cachelib's ``BaseCache``: SimpleCache, RedisCache, a custom one) and redis-py
  (``Redis.execute_command``, a pipeline's ``execute`` and its commands after a
  WATCH) so that, inside a fuzzed request, each call comes through
  ``gates.command``: a yield point before it, and a step in the trace written
  ``cache GET attempts:1`` or ``redis INCR attempts:1``. ``sql.command_access`` reads
  that as a read or write of the table ``cache:attempts``, so conflict points, the
  opening and the findings treat a key like a row. Outside requests (setup, reset)
  every call passes through untouched.
* **A scratch Redis database** (``RedisScratch``, scratch.py) for a target declared
  with ``Target(redis=True)``, reset with the caches.
* **Reset** (``Stores``): before every execution, what lives outside the database is
  put back as setup (and the identities' logins) left it. Flask-Caching's SimpleCache:
  a copy of its dict, with each entry's remaining lifetime; the Redis scratch
  database: ``DUMP`` of every key with its remaining lifetime, restored in one Lua
  script after ``FLUSHDB``; NullCache: nothing. Any other cache (a Flask-Caching
  backend on a server the fuzzer does not own, a dict in a module) needs
  ``Target(reset=callable(app))``, called after the automatic ones.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fuzzer.errors import TargetSetupError, describe
from fuzzer.execute import gates
from fuzzer.execute.stores.foreign import place
from fuzzer.execute.stores.scratch import RedisScratch
from fuzzer.sql import command_text

_CACHE_OPS = (
    "get",
    "has",
    "set",
    "add",
    "delete",
    "inc",
    "dec",
    "get_many",
    "set_many",
    "delete_many",
    "get_dict",
    "unlink",
    "clear",
)
_MANY = frozenset({"get_many", "delete_many", "get_dict", "unlink"})
_WRAPPED = "__fuzzer_wrapped__"
_memo = threading.local()  # .on: inside memoize's bookkeeping; .keys: its keys lately made
# the connection pools of Redis clients an app keeps but the fuzzer does not own (pool
# id -> host:port/db): a request may not use them; the first that does is refused
_FOREIGN: dict[int, str] = {}
_USED: list[str] = []


# -- scheduling ----------------------------------------------------------------------------


def instrument() -> None:
    """Patch every cache backend class and redis-py, once each (new subclasses too: call
    again after the target's modules are imported). Libraries not installed are
    skipped."""
    try:
        from cachelib.base import BaseCache
    except ImportError:
        pass
    else:
        with contextlib.suppress(ImportError):
            import flask_caching.backends  # noqa: F401  (defines Flask-Caching's subclasses)
        for cls in _subclasses(BaseCache):
            for op in _CACHE_OPS:
                method = cls.__dict__.get(op)
                if callable(method) and not getattr(method, _WRAPPED, False):
                    _patch(cls, op, _cache_method(op, method))
    with contextlib.suppress(ImportError):
        from flask_caching import Cache

        maker = Cache.__dict__.get("_memoize_make_cache_key")
        if maker is not None and not getattr(maker, _WRAPPED, False):
            _patch(Cache, "_memoize_make_cache_key", _memo_key_maker(maker))
            for name in ("_memoize_version", "delete_memoized", "delete_memoized_verhash"):
                if name in Cache.__dict__:  # the version key, read and bumped at run time
                    _patch(Cache, name, _as_memo(Cache.__dict__[name]))
    try:
        from redis.client import Pipeline, Redis
    except ImportError:
        return
    for cls, name, wrap in (
        (Redis, "execute_command", _redis_command),
        (Pipeline, "immediate_execute_command", _redis_command),
        (Pipeline, "execute", _redis_batch),
    ):
        method = cls.__dict__[name]
        if not getattr(method, _WRAPPED, False):
            _patch(cls, name, wrap(method))


_patched: list[tuple[type, str, Any]] = []  # (class, attribute, what it was) to undo


def _patch(cls: type, name: str, wrapper: Any) -> None:
    _patched.append((cls, name, cls.__dict__[name]))
    setattr(cls, name, wrapper)


def uninstrument() -> None:
    """Put back every method ``instrument`` patched (the end of a Session)."""
    while _patched:
        cls, name, method = _patched.pop()
        setattr(cls, name, method)


def _subclasses(cls: type) -> Iterator[type]:
    yield cls
    sub: type
    for sub in cls.__subclasses__():
        yield from _subclasses(sub)


def _cache_method(op: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not gates.in_request():
            return method(self, *args, **kwargs)
        params: Any = None
        if op in _MANY:
            keys = list(args)
        elif op == "set_many":
            mapping = args[0] if args else kwargs.get("mapping", {})
            keys, params = list(mapping), dict(mapping)
        elif op == "clear":
            keys = []
        else:
            key = args[0] if args else kwargs.get("key")
            keys = [key]
            rest = args[1:2] or [kwargs[k] for k in ("value", "delta") if k in kwargs]
            params = tuple(rest) or None
        if getattr(_memo, "on", False) or (keys and all(k in _memo_keys() for k in keys)):
            # the keys end with a version drawn at random
            text, params = command_text("memo", [(op, [])]), None
        else:
            text = command_text("cache", [(op, [_name(k) for k in keys])])
        return gates.command(text, params, lambda: method(self, *args, **kwargs))

    setattr(wrapper, _WRAPPED, True)
    return wrapper


def _memo_key_maker(method: Callable[..., Any]) -> Callable[..., Any]:
    """``Cache._memoize_make_cache_key``, which a memoized function asks for its cache key
    on every call: the key it makes is remembered (per thread), so the lookup and the
    fill that follow with that key are memo calls, and its version bookkeeping runs as
    memo calls. A memoized function's result is a cache of what it computes: two
    requests that both miss and both fill it write the same value, and that is no race.
    Such calls are recorded as ``memo GET``, the operation without its keys (they end
    with a version drawn at random after every reset), steps to yield at but no access
    to conflict on (sql.touch), so neither the schedules nor the explanations take them
    for the race (issue 19). What the function itself asks of the cache is the app's.
    Patched on the class and looked up on every call: functions memoized before the
    instrumentation are told apart too."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        make = _as_memo(method(self, *args, **kwargs))

        @functools.wraps(make)
        def make_cache_key(*f_args: Any, **f_kwargs: Any) -> Any:
            key = make(*f_args, **f_kwargs)
            _memo_keys().append(key)
            return key

        return make_cache_key

    setattr(wrapper, _WRAPPED, True)
    return wrapper


def _memo_keys() -> deque[Any]:
    """The memo keys lately made on this thread."""
    keys: deque[Any] | None = getattr(_memo, "keys", None)
    if keys is None:
        keys = _memo.keys = deque(maxlen=64)
    return keys


def _as_memo(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` whose backend calls are memo calls."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        before = getattr(_memo, "on", False)
        _memo.on = True
        try:
            return function(*args, **kwargs)
        finally:
            _memo.on = before

    setattr(wrapper, _WRAPPED, True)
    return wrapper


def _redis_command(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **options: Any) -> Any:
        if not gates.in_request() or not args:
            return method(self, *args, **options)
        _refuse_foreign(self)
        keys, rest = _redis_keys(args)
        text = command_text("redis", [(str(args[0]), keys)])
        return gates.command(text, rest or None, lambda: method(self, *args, **options))

    setattr(wrapper, _WRAPPED, True)
    return wrapper


def _redis_batch(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        stack = getattr(self, "command_stack", None)
        if not gates.in_request() or not stack:
            return method(self, *args, **kwargs)
        _refuse_foreign(self)
        commands = [(str(c[0]), _redis_keys(c)[0]) for c, _ in stack if c]
        batch = "MULTI" if self.transaction or self.explicit_transaction else "PIPELINE"
        text = command_text("redis", commands, batch)
        return gates.command(text, None, lambda: method(self, *args, **kwargs))

    setattr(wrapper, _WRAPPED, True)
    return wrapper


def _refuse_foreign(client: Any) -> None:
    """A request that uses a Redis client the fuzzer does not own: refused before it
    reaches that server, and remembered, so the run stops with why."""
    where = _FOREIGN.get(id(getattr(client, "connection_pool", None)))
    if where is not None:
        _USED.append(where)
        raise TargetSetupError(f"a request used the app's Redis client for {where}")


_NO_KEYS = frozenset(
    {"PING", "DBSIZE", "FLUSHDB", "FLUSHALL", "INFO", "MULTI", "EXEC", "DISCARD", "UNWATCH"}
    | {"SELECT", "KEYS", "SCAN", "TIME", "ECHO", "HELLO", "AUTH", "SCRIPT", "CLIENT"}
    | {"CONFIG", "RANDOMKEY", "SWAPDB", "WAIT", "SAVE", "LASTSAVE", "ROLE", "COMMAND"}
)
_ALL_KEYS = frozenset(
    {"MGET", "DEL", "UNLINK", "EXISTS", "TOUCH", "WATCH", "SINTER", "SUNION", "SDIFF"}
    | {"PFCOUNT", "PFMERGE", "SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"}
)


def _redis_keys(args: tuple[Any, ...]) -> tuple[list[str], tuple[Any, ...]]:
    """The keys a command names, and its other arguments."""
    name = str(args[0]).upper()
    rest = args[1:]
    if " " in name or name in _NO_KEYS:
        return [], rest
    if name in _ALL_KEYS:
        return [_name(k) for k in rest], ()
    if name in ("MSET", "MSETNX"):
        return [_name(k) for k in rest[::2]], tuple(rest[1::2])
    if name in ("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO") and len(rest) >= 2:
        try:
            n = int(rest[1])
        except (TypeError, ValueError):
            n = 0
        return [_name(k) for k in rest[2 : 2 + n]], tuple(rest[2 + n :])
    return [_name(k) for k in rest[:1]], tuple(rest[1:])


def _name(key: Any) -> str:
    if isinstance(key, bytes | bytearray | memoryview):
        return bytes(key).decode("utf-8", "replace")
    return str(key)


# -- reset between executions ---------------------------------------------------------------


class Stores:
    """What the app keeps outside its databases, put back before every execution."""

    def __init__(
        self,
        app: Any,
        *,
        redis: RedisScratch | None = None,
        reset: Callable[[Any], None] | None = None,
        where: str = "",
    ) -> None:
        instrument()  # backends the target's own modules define
        self.app = app
        self.redis = redis
        self.hook = reset
        self.where = where
        self.simple: list[Any] = []  # SimpleCache backends (their dict is copied)
        self._copies: list[dict[str, tuple[float, Any]]] = []
        for backend in flask_caches(app):
            kind = _kind(backend, redis)
            if kind == "simple":
                self.simple.append(backend)
            elif kind == "unknown" and reset is None:
                raise TargetSetupError(
                    f"{where}: the app's Flask-Caching backend {type(backend).__name__} "
                    f"keeps state the fuzzer cannot reset between executions ("
                    f"{_why(backend)}); use SimpleCache, or a RedisCache on the scratch "
                    f"database of Target(redis=True), or pass Target(reset=...) that puts "
                    f"it back as setup left it"
                )

        # a client the fuzzer does not own is fuzzed as long as no request uses it (an
        # app that keeps one it never calls: REDIS_ENABLED = False); the first request
        # that does is refused, and the run stops at the next reset
        self.foreign: list[str] = []
        _USED.clear()
        _FOREIGN.clear()  # keyed by id(): a pool of an earlier session may share one
        for client in redis_clients(app):
            if (redis is None or not redis.owns(client)) and reset is None:
                where_to = place(client.connection_pool)
                _FOREIGN[id(client.connection_pool)] = where_to
                self.foreign.append(where_to)

    @property
    def active(self) -> bool:
        return bool(self.simple or self.redis or self.hook or self.foreign)

    def take_snapshot(self) -> None:
        now = time.time()
        self._copies = []
        for backend in self.simple:
            with _locked(backend):
                self._copies.append(
                    {
                        key: (expires - now if expires else 0.0, value)
                        for key, (expires, value) in backend._cache.items()
                        if expires == 0 or expires > now
                    }
                )
        if self.redis is not None:
            self.redis.take_snapshot()

    def check(self) -> None:
        """Stop the run if a request used a Redis client the fuzzer does not own."""
        if _USED:
            raise TargetSetupError(
                f"{self.where}: a request used the app's Redis client for {_USED[0]}, which "
                f"the fuzzer does not own and cannot reset between executions; declare "
                f"Target(redis=True) and build it from the URL the factory then receives, "
                f"or pass Target(reset=...) that puts its state back as setup left it"
            )

    def reset(self) -> None:
        self.check()
        now = time.time()
        for backend, copy in zip(self.simple, self._copies, strict=True):
            with _locked(backend):
                backend._cache.clear()
                backend._cache.update(
                    {
                        key: (int(now + left) if left else 0, value)
                        for key, (left, value) in copy.items()
                    }
                )
        if self.redis is not None:
            self.redis.reset()
        if self.hook is not None:
            name = getattr(self.hook, "__qualname__", repr(self.hook))
            context = getattr(self.app, "app_context", None)
            try:
                with context() if context is not None else contextlib.nullcontext():
                    self.hook(self.app)
            except Exception as exc:
                raise TargetSetupError(
                    f"{self.where}: reset {name}(app) raised {describe(exc)}; it runs before "
                    f"every execution to put the state the database does not hold back as "
                    f"setup left it"
                ) from exc


def _kind(backend: Any, redis: RedisScratch | None) -> str:
    """simple (a dict the fuzzer copies), none (keeps nothing), redis (on the scratch
    database: restored with it), unknown."""
    try:
        from cachelib import NullCache, RedisCache, SimpleCache
    except ImportError:  # pragma: no cover - Flask-Caching requires cachelib
        return "unknown"
    if isinstance(backend, SimpleCache):
        return "simple"
    if isinstance(backend, NullCache):
        return "none"
    if isinstance(backend, RedisCache) and redis is not None:
        clients = {id(c): c for c in (backend._write_client, backend._read_client)}
        if all(redis.owns(c) for c in clients.values()):
            return "redis"
    return "unknown"


def _why(backend: Any) -> str:
    try:
        from cachelib import RedisCache
    except ImportError:  # pragma: no cover
        return "an unknown backend"
    if isinstance(backend, RedisCache):
        return "a Redis database other than the scratch one the fuzzer owns"
    return "an unknown backend"


def flask_caches(app: Any) -> list[Any]:
    """The Flask-Caching backends of every Flask app in a WSGI app (a dispatcher's
    mounts, middleware's ``app``/``wsgi_app`` included)."""
    backends: dict[int, Any] = {}
    for flask_app in flask_apps(app):
        extension = getattr(flask_app, "extensions", {}).get("cache")
        if isinstance(extension, Mapping):
            for backend in extension.values():
                backends.setdefault(id(backend), backend)
    return list(backends.values())


def redis_clients(app: Any) -> list[Any]:
    """The redis-py clients the Flask apps keep in ``app.extensions`` (Flask-Redis's
    included)."""
    try:
        from redis import Redis
    except ImportError:
        return []
    clients: dict[int, Any] = {}
    for flask_app in flask_apps(app):
        for value in getattr(flask_app, "extensions", {}).values():
            for candidate in (value, getattr(value, "_redis_client", None)):
                if isinstance(candidate, Redis):
                    clients.setdefault(id(candidate), candidate)
    return list(clients.values())


def flask_apps(app: Any, depth: int = 6) -> list[Any]:
    """The Flask apps inside a WSGI app, looked for through a dispatcher's ``mounts`` and
    middleware's ``app``, ``wsgi_app`` and ``application`` attributes."""
    try:
        from flask import Flask
    except ImportError:  # pragma: no cover - flask is a dependency
        return []
    found: dict[int, Any] = {}
    seen: set[int] = set()

    def visit(obj: Any, left: int) -> None:
        if obj is None or id(obj) in seen or left < 0:
            return
        seen.add(id(obj))
        if isinstance(obj, Flask):
            found.setdefault(id(obj), obj)
        attributes = getattr(obj, "__dict__", {})
        for name in ("app", "wsgi_app", "application"):
            inner = attributes.get(name)
            if inner is not None:
                visit(getattr(inner, "__self__", inner), left - 1)
        mounts = attributes.get("mounts")
        if isinstance(mounts, Mapping):
            for inner in mounts.values():
                visit(inner, left - 1)

    visit(app, depth)
    return list(found.values())


def _locked(backend: Any) -> Any:
    """A SimpleCache's lock; cachelib before 0.10 has none (its dict is copied and put
    back between executions, while no request runs)."""
    lock = getattr(backend, "_lock", None)
    return lock if lock is not None else contextlib.nullcontext()
