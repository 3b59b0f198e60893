"""Calls to a cache or to Redis, recorded as statements (fuzzer/execute/stores/caches.py):
``cache GET attempts:1`` or ``redis INCR attempts:1``. Such a command reads and writes
the "table" ``cache:attempts`` (the key up to its first colon), its key is the row; for
conflicts it touches each key (``cache:attempts:1``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from fuzzer.sql.shape import Access

STORES = ("cache ", "redis ")  # how a command's recorded text begins
#: how a memoized call's cache command begins (``memo GET``): a step to yield at, which
#: touches nothing (fuzzer/execute/stores/caches.py)
MEMO = "memo "

#: commands that only read; every other command reads and writes its keys
_READS = frozenset(
    {"GET", "HAS", "GET_MANY", "GET_DICT", "MGET", "EXISTS", "STRLEN", "GETRANGE", "TTL"}
    | {"PTTL", "TYPE", "HGET", "HMGET", "HGETALL", "HKEYS", "HVALS", "HLEN", "HEXISTS"}
    | {"LRANGE", "LLEN", "LINDEX", "SMEMBERS", "SISMEMBER", "SMISMEMBER", "SCARD"}
    | {"ZRANGE", "ZRANGEBYSCORE", "ZREVRANGE", "ZSCORE", "ZMSCORE", "ZCARD", "ZCOUNT"}
    | {"ZRANK", "ZREVRANK", "KEYS", "SCAN", "DBSIZE", "WATCH", "PING"}
)
#: commands that write without reading (a blind write: it cannot act on a stale value)
_BLIND_WRITES = frozenset(
    {"SET", "SET_MANY", "DELETE", "DELETE_MANY", "UNLINK", "CLEAR", "MSET", "DEL"}
    | {"SETEX", "PSETEX", "EXPIRE", "PEXPIRE", "FLUSHDB"}
)


def command_text(store: str, commands: list[tuple[str, list[str]]], batch: str = "") -> str:
    """``cache GET attempts:1``; a batch (a Redis pipeline) is ``redis MULTI INCR a; EXPIRE
    a``. Keys with spaces or quotes are quoted as a shell would."""
    parts = [" ".join([op.upper(), *(shlex.quote(k) for k in keys)]) for op, keys in commands]
    return " ".join(filter(None, [store, batch, "; ".join(parts)]))


@dataclass(frozen=True)
class Touch:
    """What a statement touches at the grain two requests conflict on: tables of the
    database, and each key of a cache or Redis (``cache:attempts:alice:1``; a command
    that names no key, such as CLEAR, touches ``cache:*``, every key of its store)."""

    reads: frozenset[str]
    writes: frozenset[str]


def command_touch(text: str, prefix: str = "") -> Touch:
    """What a cache or Redis command reads and writes, for conflicts: each of its keys
    (``access`` names a store's "table" by its keys' first part, which lumps every key
    of an app whose keys share one prefix, ``app:…``, into one table: then every cache
    read would conflict with every cache write)."""
    store, _, rest = text.partition(" ")
    head, _, tail = rest.partition(" ")
    if head in ("MULTI", "PIPELINE"):
        rest = tail
    reads: set[str] = set()
    writes: set[str] = set()
    for op, names in _commands(rest):
        keys = {f"{prefix}{store}:{name}" for name in names} or {f"{prefix}{store}:*"}
        if op not in _BLIND_WRITES:
            reads |= keys
        if op not in _READS:
            writes |= keys
    return Touch(frozenset(reads), frozenset(writes))


def overlap(a: frozenset[str] | set[str], b: frozenset[str] | set[str]) -> bool:
    """Whether two sets of tables and keys share one; ``<store>:*`` is every key of
    its store."""
    if a & b:
        return True
    return _covers(a, b) or _covers(b, a)


def _covers(wild: frozenset[str] | set[str], other: frozenset[str] | set[str]) -> bool:
    """Whether a ``<store>:*`` of ``wild`` covers a key of ``other``."""
    stores = [t[:-1] for t in wild if t.endswith(":*")]
    return any(t.startswith(s) for s in stores for t in other)


def _commands(rest: str) -> list[tuple[str, list[str]]]:
    """The commands of a recorded batch: (verb, keys) each."""
    result = []
    for part in rest.split("; "):
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        if words:
            result.append((words[0].upper(), words[1:]))
    return result


def command_access(text: str, prefix: str = "") -> Access:
    """What a recorded cache or Redis command touches: the tables ``<store>:<key prefix>``
    of its keys (``cache:*`` when it names none), the first key as the row."""
    store, _, rest = text.partition(" ")
    head, _, tail = rest.partition(" ")
    if head in ("MULTI", "PIPELINE"):
        rest = tail
    reads: set[str] = set()
    write = None
    verbs, keys = [], []
    for op, names in _commands(rest):
        verbs.append(op)
        tables = [f"{prefix}{store}:{name.split(':', 1)[0]}" for name in names] or [
            f"{prefix}{store}:*"
        ]
        if op not in _BLIND_WRITES:
            reads.update(tables)
        if op not in _READS and write is None:
            write = tables[0]
        keys += names
    verb = verbs[0] if len(verbs) == 1 else head
    key = (keys[0],) if keys and write is not None else None
    filters = (("key", keys[0]),) if keys else ()
    return Access(frozenset(reads), write, verb, key, (), (), filters)
