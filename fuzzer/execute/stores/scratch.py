"""A scratch Redis database (``RedisScratch``) for a target declared with
``Target(redis=True)``: a database number on 127.0.0.1:6379 that the fuzzer claims
with a marker key set only in an empty database (or one whose marker names a fuzzer
process that has died), and that it flushes only while its own marker is there.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import Any

from fuzzer.errors import DatabaseError

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
MARKER = "fuzzer:claim"  # the key that says which fuzzer process owns a database

_CLAIM = """
if redis.call('DBSIZE') == 0 then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
if ARGV[2] ~= '' and redis.call('GET', KEYS[1]) == ARGV[2] then
  redis.call('FLUSHDB')
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""
# ARGV: the claim, then (key, milliseconds to live or 0, DUMP payload) per key
_RESTORE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('the fuzzer no longer owns this database')
end
redis.call('FLUSHDB')
redis.call('SET', KEYS[1], ARGV[1])
for i = 2, #ARGV, 3 do
  redis.call('RESTORE', ARGV[i], ARGV[i + 1], ARGV[i + 2])
end
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('FLUSHDB')
  return 1
end
return 0
"""


class RedisScratch:
    """One database number of the Redis server on 127.0.0.1:6379, claimed for this run.

    The claim is a marker key, ``fuzzer:claim`` = ``<pid>:<random token>``, set by a
    Lua script only in an empty database, or in one whose marker names a process on
    this machine that no longer runs (a fuzzer that was killed): the server is on
    loopback, so its clients' pids are this machine's. Every flush checks, in the same
    script, that the marker is still ours. Database 0, where apps keep their data by
    default, is never claimed."""

    def __init__(self, client: Any, number: int, claim: str) -> None:
        self.client = client
        self.number = number
        self.claim = claim
        self.url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
        self._snapshot: list[Any] = []

    @classmethod
    def open(cls) -> RedisScratch:
        """Claim the highest free database number (15 down to 1)."""
        try:
            import redis
        except ImportError as exc:
            raise DatabaseError(
                "Target(redis=True) needs redis-py, an optional dependency that is not "
                "installed: pip install 'flask-race-fuzzer[redis]'"
            ) from exc
        claim = f"{os.getpid()}:{secrets.token_hex(8)}"
        probe = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=2)
        try:
            reply: Any = probe.config_get("databases")
            databases = int(reply.get("databases", 16))
        except redis.ConnectionError as exc:
            raise DatabaseError(
                f"Redis at {REDIS_HOST}:{REDIS_PORT} is not reachable ({exc}); a target "
                f"with Target(redis=True) needs it: start it with `redis-server --daemonize "
                f"yes --bind 127.0.0.1 --port {REDIS_PORT} --save ''`"
            ) from None
        except redis.RedisError:
            databases = 16
        finally:
            probe.close()
        for number in range(databases - 1, 0, -1):
            client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number)
            marker: Any = client.get(MARKER) or b""
            owner = marker.decode("utf-8", "replace")
            stale = owner if owner and _dead(owner) else ""
            if client.eval(_CLAIM, 1, MARKER, claim, stale):
                return cls(client, number, claim)
            client.close()
        raise DatabaseError(
            f"Redis at {REDIS_HOST}:{REDIS_PORT} has no free database for the fuzzer: "
            f"databases 1 to {databases - 1} all hold keys; raise `databases` in the "
            f"server's configuration or empty one that nothing uses"
        )

    def take_snapshot(self) -> None:
        """Every key but the marker, dumped with its remaining lifetime."""
        snapshot: list[Any] = []
        for key in self.client.scan_iter(count=1000):
            if key == MARKER.encode():
                continue
            payload = self.client.dump(key)
            if payload is None:  # expired meanwhile
                continue
            ttl = self.client.pttl(key)
            snapshot += [key, max(int(ttl), 0) if ttl and ttl > 0 else 0, payload]
        self._snapshot = snapshot

    def reset(self) -> None:
        """Flush the database and restore the snapshot, in one script that first checks
        that the marker is still ours."""
        import redis

        try:
            self.client.eval(_RESTORE, 1, MARKER, self.claim, *self._snapshot)
        except redis.ResponseError as exc:
            raise DatabaseError(
                f"Redis database {self.number} lost the fuzzer's claim ({exc}): did the "
                f"app run FLUSHDB or FLUSHALL? The fuzzer flushes only a database it owns"
            ) from None

    def release(self) -> None:
        """Flush the database (its marker too) if it is still ours, and disconnect."""
        with contextlib.suppress(Exception):
            self.client.eval(_RELEASE, 1, MARKER, self.claim)
        with contextlib.suppress(Exception):
            self.client.close()

    def owns(self, client: Any) -> bool:
        """Whether a redis-py client talks to this database."""
        kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
        return (
            kwargs.get("host") in (REDIS_HOST, "localhost", "::1")
            and int(kwargs.get("port", REDIS_PORT)) == REDIS_PORT
            and int(kwargs.get("db", 0) or 0) == self.number
        )


def _dead(owner: str) -> bool:
    """Whether the claim ``<pid>:<token>`` names a process that no longer runs."""
    try:
        pid = int(owner.split(":", 1)[0])
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False
