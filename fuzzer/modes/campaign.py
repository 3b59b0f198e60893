"""A soak campaign's state, kept between soaks and shared by the workers that run it.

A campaign is one target on one kind of database with one schedule mode. Its state:

- the **seed rotation**: each round of each worker claims the next seed, so no two
  rounds search the same seed and the next soak goes on with new ones;
- the **findings reported** (fingerprint → minimal scenario and schedule): the first
  worker to confirm a finding claims it and writes it, the others ignore it, and a
  later soak replays them first;
- the **work units** done (the systematic opening's chunks, by content): a worker
  takes a unit under a lease and marks it done when it got through it; a unit whose
  worker died is taken up again when its lease runs out;
- the **workers** and what each contributed (examples, rounds, findings);
- Hypothesis's **example database**, so any worker replays any worker's failures.

Two stores keep it. ``LocalCampaign`` is a JSON file under ``.fuzzer/soak/`` guarded
by a file lock (the workers of one machine); ``RedisCampaign`` (``--shared
redis://HOST:PORT/DB``) puts everything in Redis so soaks on several machines join
one campaign. Neither ever holds a database URL, so no password reaches the store:
workers only use their own loopback scratch databases.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import random
import re
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, NoReturn
from urllib.parse import SplitResult, urlsplit

from fuzzer.errors import FuzzerError, StoreError
from fuzzer.model import Scenario
from fuzzer.report import json as report_json
from fuzzer.search import conjecture
from fuzzer.search.conjecture import ExampleDatabase

__all__ = [
    "Campaign",
    "LocalCampaign",
    "RedisCampaign",
    "check_shared",
    "open_campaign",
    "worker_name",
]

LEASE = 30.0  # seconds a unit stays with a worker that stopped renewing it (died)


def worker_name(index: int = 0) -> str:
    """Who a worker is, for the store: host, process and its index on that host."""
    return f"{socket.gethostname()}:{os.getpid()}:w{index}"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class Campaign(ABC):
    """What every store offers; all operations are atomic across processes."""

    key: str

    # -- the seed rotation ---------------------------------------------------------------
    @abstractmethod
    def start_rotation(self, seed: int) -> None:
        """Make ``seed`` the next seed claimed (``--seed``)."""

    @abstractmethod
    def claim_seed(self) -> int:
        """The next seed of the rotation, never handed out twice."""

    # -- findings ------------------------------------------------------------------------
    @abstractmethod
    def report(self, fingerprint: str, scenario: dict[str, Any], meta: dict[str, Any]) -> bool:
        """Claim a confirmed finding: True for the first worker to report it."""

    @abstractmethod
    def forget(self, fingerprint: str) -> None:
        """A known finding no longer reproduces: let the search report it again."""

    @abstractmethod
    def reported(self) -> dict[str, dict[str, Any]]:
        """Every finding of the campaign: fingerprint → who reported it, kind, endpoints."""

    @abstractmethod
    def _scenarios(self) -> dict[str, Any]: ...

    def known(self) -> list[tuple[str, Scenario]]:
        """The reported findings' scenarios, to replay first."""
        known = []
        for fingerprint, scenario in sorted(self._scenarios().items()):
            try:
                known.append((fingerprint, Scenario.from_json(scenario)))
            except (KeyError, TypeError, ValueError):
                continue  # written by another version: the example database still has it
        return known

    # -- units of work -------------------------------------------------------------------
    @abstractmethod
    def claim(self, unit: str, worker: str, lease: float = LEASE) -> bool:
        """Take ``unit`` unless it is done or leased by another worker whose lease holds."""

    @abstractmethod
    def finish(self, unit: str) -> None:
        """``unit`` is done for the whole campaign."""

    @abstractmethod
    def release(self, unit: str) -> None:
        """Give ``unit`` back undone (the round ended before it got through it)."""

    @abstractmethod
    def done(self) -> set[str]: ...

    # -- workers -------------------------------------------------------------------------
    @abstractmethod
    def contribute(self, worker: str, **counts: int) -> None:
        """Add to what ``worker`` contributed (examples, rounds, findings)."""

    @abstractmethod
    def contributions(self) -> dict[str, dict[str, int]]: ...

    @abstractmethod
    def example_database(self, path: str | None) -> ExampleDatabase | None:
        """Hypothesis's example database of this campaign."""

    @property
    @abstractmethod
    def where(self) -> str:
        """Where the state lives, for a person."""

    @abstractmethod
    def check(self) -> None:
        """Read the whole state once: a damaged store stops the soak before it starts
        (StoreError), with what was damaged moved aside."""


class LocalCampaign(Campaign):
    """The campaign in one JSON file, read and written under an exclusive file lock."""

    def __init__(self, directory: str, key: str) -> None:
        self.key = key
        self.path = os.path.join(directory, f"{digest(key)}.json")
        self._lock_path = self.path + ".lock"

    @property
    def where(self) -> str:
        return self.path

    def check(self) -> None:
        with self._state(write=False):
            pass

    @contextlib.contextmanager
    def _state(self, write: bool = True) -> Iterator[dict[str, Any]]:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            try:
                data = self._load()
                yield data
                if write:
                    report_json.write_atomic(self.path, data)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> dict[str, Any]:
        """The state; a new one when there is no file yet. A file this version cannot read
        (truncated, not JSON, another shape) is moved aside, never overwritten, and the
        soak stops with a StoreError that says where it went."""
        data: dict[str, Any] = {
            "key": self.key,
            "next_seed": None,
            "findings": {},
            "reported": {},
            "leases": {},
            "done": [],
            "workers": {},
        }
        try:
            with open(self.path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            return data
        except (OSError, ValueError) as exc:
            raise StoreError(f"Cannot read the campaign file {self.path}: {exc}") from None
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            self._damaged(f"it is not JSON ({exc})")
        problem = _local_problem(loaded)
        if problem:
            self._damaged(problem)
        data.update(loaded)
        return data

    def _damaged(self, problem: str) -> NoReturn:
        aside = f"{self.path}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
        os.replace(self.path, aside)
        raise StoreError(
            f"The campaign file {self.path} is damaged: {problem}. It was moved to {aside} "
            f"(its findings and seeds are there to read); run the soak again to start a new "
            f"campaign"
        )

    def start_rotation(self, seed: int) -> None:
        with self._state() as data:
            data["next_seed"] = seed

    def claim_seed(self) -> int:
        with self._state() as data:
            seed = data["next_seed"]
            if not isinstance(seed, int):
                seed = random.getrandbits(31)
            data["next_seed"] = seed + 1
            return seed

    def report(self, fingerprint: str, scenario: dict[str, Any], meta: dict[str, Any]) -> bool:
        with self._state() as data:
            if fingerprint in data["findings"]:
                return False
            data["findings"][fingerprint] = scenario
            data["reported"][fingerprint] = meta
            return True

    def forget(self, fingerprint: str) -> None:
        with self._state() as data:
            data["findings"].pop(fingerprint, None)
            data["reported"].pop(fingerprint, None)

    def reported(self) -> dict[str, dict[str, Any]]:
        with self._state(write=False) as data:
            return dict(data["reported"])

    def _scenarios(self) -> dict[str, Any]:
        with self._state(write=False) as data:
            return dict(data["findings"])

    def claim(self, unit: str, worker: str, lease: float = LEASE) -> bool:
        now = time.time()
        with self._state() as data:
            if unit in data["done"]:
                return False
            held = data["leases"].get(unit)
            live = isinstance(held, dict) and float(held.get("until", 0)) > now
            if live and held.get("worker") != worker:
                return False
            data["leases"][unit] = {"worker": worker, "until": now + lease}
            return True

    def finish(self, unit: str) -> None:
        with self._state() as data:
            data["leases"].pop(unit, None)
            if unit not in data["done"]:
                data["done"].append(unit)

    def release(self, unit: str) -> None:
        with self._state() as data:
            data["leases"].pop(unit, None)

    def done(self) -> set[str]:
        with self._state(write=False) as data:
            return set(data["done"])

    def contribute(self, worker: str, **counts: int) -> None:
        with self._state() as data:
            mine = data["workers"].setdefault(worker, {})
            for name, value in counts.items():
                mine[name] = int(mine.get(name, 0)) + value

    def contributions(self) -> dict[str, dict[str, int]]:
        with self._state(write=False) as data:
            return {w: dict(c) for w, c in data["workers"].items()}

    def example_database(self, path: str | None) -> ExampleDatabase | None:
        return conjecture.open_database(path)


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


_SHAPE: dict[str, type | tuple[type, ...]] = {
    "key": str,
    "next_seed": (int, type(None)),
    "findings": dict,
    "reported": dict,
    "leases": dict,
    "done": list,
    "workers": dict,
}


def _local_problem(loaded: Any) -> str:
    """What is wrong with a local campaign's JSON, or ""."""
    if not isinstance(loaded, dict):
        return f"it holds {type(loaded).__name__}, not an object"
    for name, expected in _SHAPE.items():
        value = loaded.get(name, _MISSING)
        if value is _MISSING:
            continue  # written by an older version: the default
        if isinstance(value, bool) or not isinstance(value, expected):
            return f"{name!r} is {type(value).__name__}"
    nested = (
        ("findings", dict),
        ("reported", dict),
        ("leases", dict),
        ("workers", dict),
    )
    for name, expected in nested:
        for item, value in loaded.get(name, {}).items():
            if not isinstance(value, expected):
                return f"{name}[{item!r}] is {type(value).__name__}, not an object"
    if not all(isinstance(unit, str) for unit in loaded.get("done", [])):
        return "'done' holds something other than unit names"
    return ""


_MISSING = object()
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
