"""The kinds of finding, the ``Finding`` record and its fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..model import Execution, Scenario
from ..oracle import Verdict
from .explain import Explanation

KINDS = (
    "concurrency-error",
    "lost-update",
    "duplicate-insert",
    "limit-overrun",
    "write-skew",
    "stale-read",
    "hang",
    "leaked-transaction",
    "wrong-engine",
    "serial-failure",
)
RACES = frozenset(KINDS[:6])
TITLES = {
    "concurrency-error": "Error only under concurrency",
    "lost-update": "Lost update",
    "duplicate-insert": "Duplicate insert",
    "limit-overrun": "Limit overrun",
    "write-skew": "Write skew",
    "stale-read": "Stale read",
    "hang": "The execution has hung",
    "leaked-transaction": "Transaction left open",
    "wrong-engine": "Statement on the wrong engine",
    "serial-failure": "Fails even when run alone",
}


@dataclass(frozen=True)
class Finding:
    kind: str
    endpoints: tuple[str, ...]  # the endpoints involved, sorted
    exception: str  # the exception type, for errors
    scenario: Scenario
    execution: Execution
    verdict: Verdict | None
    explanation: Explanation
    involved: tuple[int, ...] = ()  # the requests involved
    flaky: str = ""  # "k/N" when the minimal example did not always reproduce
    found_after: int = 0  # examples run before it was first seen
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.kind, self.endpoints, self.exception)

    @property
    def is_race(self) -> bool:
        return self.kind in RACES

    def with_(self, **changes: Any) -> Finding:
        return replace(self, **changes)


def fingerprint(kind: str, endpoints: Sequence[str], exception: str = "") -> str:
    """Kind + endpoints + exception type: the same bug found twice is one finding."""
    text = json.dumps([kind, sorted(set(endpoints)), exception])
    return f"{kind}:{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def priority(finding: Finding) -> int:
    return KINDS.index(finding.kind)
