"""The campaign in Redis (``--shared redis://HOST:PORT/DB``), its URL checked and its
failures told as StoreErrors, and ``open_campaign``: the store a soak uses, this one or
the local file (campaign.py, which says what a campaign holds).
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import time
from typing import Any, NoReturn
from urllib.parse import SplitResult, urlsplit

from fuzzer.errors import FuzzerError, StoreError
from fuzzer.modes.nightly.campaign import LEASE, Campaign, LocalCampaign, digest
from fuzzer.search import conjecture
from fuzzer.search.conjecture import ExampleDatabase

__all__ = ["RedisCampaign", "check_shared", "open_campaign", "store_failure"]


class RedisCampaign(Campaign):
    """The campaign in Redis: ``--shared redis://HOST:PORT/DB``.

    Keys live under ``fuzzer:<campaign digest>:``; seeds are claimed with INCR,
    findings with HSETNX, units with SET NX PX (a lease that runs out when its worker
    dies)."""

    def __init__(self, url: str, key: str) -> None:
        try:
            import redis
        except ImportError as exc:
            raise FuzzerError(
                "--shared needs redis-py, an optional dependency that is not installed: "
                "pip install 'flask-race-fuzzer[redis]'"
            ) from exc
        self.key = key
        self.url = url
        self._prefix = f"fuzzer:{digest(key)}:"
        self.raw = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        try:
            self.raw.ping()
        except redis.RedisError as exc:
            raise FuzzerError(
                f"cannot reach the shared store {_shown(url)} ({exc}); start Redis or "
                "correct --shared"
            ) from exc
        self.client: Any = _Checked(self)
        self.client.hsetnx(self._k("meta"), "key", key)

    def damaged(self, key: str, problem: str) -> NoReturn:
        """Move a key this version cannot read aside (never overwrite it) and stop."""
        aside = f"{_text(key)}:damaged-{time.strftime('%Y%m%d-%H%M%S')}"
        with contextlib.suppress(Exception):
            self.raw.rename(key, aside)
        raise StoreError(
            f"The shared store {_shown(self.url)} is damaged: {_text(key)} {problem}. It was "
            f"renamed {aside} (to read); run the soak again to go on without it"
        )

    def _json(self, key: str, raw: dict[Any, Any]) -> dict[str, Any]:
        out = {}
        for field, value in raw.items():
            try:
                out[_text(field)] = json.loads(value)
            except ValueError:
                self.damaged(key, f"holds a value that is not JSON under {_text(field)!r}")
            if not isinstance(out[_text(field)], dict):
                self.damaged(key, f"holds a value that is not an object under {_text(field)!r}")
        return out

    @property
    def where(self) -> str:
        return f"{_shown(self.url)} ({self._prefix}*)"

    def check(self) -> None:
        seed = self.client.get(self._k("seed"))
        if seed is not None and not _text(seed).lstrip("-").isdigit():
            self.damaged(self._k("seed"), "holds a seed that is not a number")
        self.reported()
        self._scenarios()
        self.done()
        self.contributions()

    def _k(self, name: str) -> str:
        return self._prefix + name

    def start_rotation(self, seed: int) -> None:
        self.client.set(self._k("seed"), seed)

    def claim_seed(self) -> int:
        self.client.set(self._k("seed"), random.getrandbits(31), nx=True)
        return int(self.client.incr(self._k("seed"))) - 1

    def report(self, fingerprint: str, scenario: dict[str, Any], meta: dict[str, Any]) -> bool:
        first = bool(self.client.hsetnx(self._k("findings"), fingerprint, json.dumps(scenario)))
        if first:
            self.client.hset(self._k("reported"), fingerprint, json.dumps(meta))
        return first

    def forget(self, fingerprint: str) -> None:
        self.client.hdel(self._k("findings"), fingerprint)
        self.client.hdel(self._k("reported"), fingerprint)

    def reported(self) -> dict[str, dict[str, Any]]:
        key = self._k("reported")
        return self._json(key, self.client.hgetall(key))

    def _scenarios(self) -> dict[str, Any]:
        key = self._k("findings")
        return self._json(key, self.client.hgetall(key))

    def claim(self, unit: str, worker: str, lease: float = LEASE) -> bool:
        if self.client.sismember(self._k("done"), unit):
            return False
        key = self._k(f"lease:{unit}")
        if self.client.set(key, worker, nx=True, px=int(lease * 1000)):
            return True
        holder = self.client.get(key)
        if holder is not None and _text(holder) == worker:
            self.client.pexpire(key, int(lease * 1000))
            return True
        return False

    def finish(self, unit: str) -> None:
        self.client.sadd(self._k("done"), unit)
        self.client.delete(self._k(f"lease:{unit}"))

    def release(self, unit: str) -> None:
        self.client.delete(self._k(f"lease:{unit}"))

    def done(self) -> set[str]:
        return {_text(u) for u in self.client.smembers(self._k("done"))}

    def contribute(self, worker: str, **counts: int) -> None:
        for name, value in counts.items():
            self.client.hincrby(self._k(f"worker:{worker}"), name, value)
        self.client.sadd(self._k("workers"), worker)

    def contributions(self) -> dict[str, dict[str, int]]:
        out = {}
        for worker in sorted(_text(w) for w in self.client.smembers(self._k("workers"))):
            key = self._k(f"worker:{worker}")
            raw = self.client.hgetall(key)
            if not all(_text(v).lstrip("-").isdigit() for v in raw.values()):
                self.damaged(key, "holds a count that is not a number")
            out[worker] = {_text(k): int(v) for k, v in raw.items()}
        return out

    def example_database(self, path: str | None) -> ExampleDatabase | None:
        return conjecture.redis_database(self.raw, self._k("examples:"))


class _Checked:
    """A campaign's Redis client whose failures are StoreErrors, each on one line: the
    store gone (a connection refused or lost), or a key of the wrong type or a counter
    that is not a number (moved aside, RedisCampaign.damaged)."""

    def __init__(self, campaign: RedisCampaign) -> None:
        self._campaign = campaign

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._campaign.raw, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            import redis

            try:
                return method(*args, **kwargs)
            except redis.ResponseError as exc:
                if not _DAMAGE.search(str(exc)):
                    raise StoreError(
                        f"The shared store {_shown(self._campaign.url)} refused {name}: {exc}"
                    ) from exc
                key = _text(args[0]) if args else "a key"
                self._campaign.damaged(key, f"cannot be used: {exc}")
            except redis.RedisError as exc:
                raise store_gone(self._campaign.url, exc) from exc

        return call


def store_gone(url: str, exc: BaseException) -> StoreError:
    return StoreError(
        f"The shared store {_shown(url)} went away ({exc}); what the campaign had is kept "
        f"there: start Redis again and run the soak again to go on"
    )


def store_failure(exc: BaseException, url: str | None) -> StoreError | None:
    """A failure of the shared store inside code that does not know it (Hypothesis's
    example database), as a StoreError; None for anything else."""
    try:
        import redis
    except ImportError:  # pragma: no cover - redis is a dependency
        return None
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, StoreError):
            return seen
        if isinstance(seen, redis.RedisError):
            return store_gone(url or "redis", seen)
        seen = seen.__cause__ or seen.__context__
    return None


# Redis's answers to a key of the wrong type, or a counter that is not a number
_DAMAGE = re.compile(r"WRONGTYPE|not an integer|not a valid float", re.IGNORECASE)


def open_campaign(shared: str | None, directory: str, key: str) -> Campaign:
    """The store ``--shared`` names, or the local file under ``directory``."""
    campaign: Campaign
    if not shared:
        campaign = LocalCampaign(directory, key)
    else:
        check_shared(shared)
        campaign = RedisCampaign(shared, key)
    campaign.check()
    return campaign


def check_shared(shared: str) -> None:
    """Refuse a ``--shared`` URL that is not ``redis://HOST:PORT/N`` with a numeric N.

    redis-py reads a database path that is not a number as database 0, and lets a
    ``?db=`` query override the path: a typo would put the campaign in someone else's
    database."""
    parts = urlsplit(shared)
    expected = "expected redis://HOST:PORT/N (or rediss://), N the database number"
    if parts.scheme not in ("redis", "rediss"):
        raise FuzzerError(f"--shared {_shown(shared)!r} is not a Redis URL; {expected}")
    problem = _shared_problem(parts)
    if problem:
        raise FuzzerError(f"--shared {_shown(shared)!r} {problem}; {expected}")


def _shared_problem(parts: SplitResult) -> str:
    try:
        port = parts.port
    except ValueError:
        port = None
    number = parts.path.strip("/")
    if not parts.hostname:
        return "names no host"
    if port is None:
        return "has no port, or one that is not a number"
    if parts.query:
        return "has a query, which may choose another database"
    if not number:
        return "names no database number"
    if not number.isdigit():
        return f"names the database {number!r}, which is not a number"
    return ""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _shown(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()
