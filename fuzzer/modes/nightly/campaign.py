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
by a file lock (the workers of one machine); ``RedisCampaign`` (sharedstore.py, ``--shared
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
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, NoReturn

from fuzzer.errors import StoreError
from fuzzer.model import Scenario
from fuzzer.report import json as report_json
from fuzzer.search import conjecture
from fuzzer.search.conjecture import ExampleDatabase

__all__ = [
    "Campaign",
    "LocalCampaign",
    "campaign_key",
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


def campaign_key(reference: str, dialect: str, schedule: str = "conflict") -> str:
    """One campaign per target, kind of database and schedule mode; as `fuzzer run`'s
    example database key, so a run and a soak share one corpus."""
    return f"{reference}|{dialect}|{schedule}"
