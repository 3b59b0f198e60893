"""The ``Finding`` record and its fingerprint (the kinds are in ``fuzzer.kinds``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fuzzer.findings.explain import Explanation
from fuzzer.findings.relations import relation, repeated
from fuzzer.judge.oracle import Verdict
from fuzzer.kinds import KINDS, RACES, TITLES
from fuzzer.model import Execution, Scenario


@dataclass(frozen=True)
class Reproduced:
    """How often a finding's example showed it again: ``hits`` of ``tries`` (read "2/3")."""

    hits: int
    tries: int

    def __post_init__(self) -> None:
        if not 0 <= self.hits <= self.tries or self.tries < 1:
            raise ValueError(f"{self.hits} of {self.tries} tries")

    def __str__(self) -> str:
        return f"{self.hits}/{self.tries}"

    @property
    def never(self) -> bool:
        return self.hits == 0

    @classmethod
    def unless_always(cls, hits: int, tries: int) -> Reproduced | None:
        """``hits`` of ``tries``, or None when every try showed it (not flaky)."""
        return None if hits == tries else cls(hits, tries)


def flaky_text(finding: Finding) -> str:
    """What the reports write for ``Finding.flaky``: "k/N", or "" when it always
    reproduced."""
    return str(finding.flaky) if finding.flaky is not None else ""


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
    flaky: Reproduced | None = None  # when the minimal example did not always reproduce
    found_after: int = 0  # examples run before it was first seen
    # the cells or rows it is about ("accounts.balance", "unlocks"): for a race on the
    # rows, with the kind, what tells one root cause from another, whatever the route
    place: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    @property
    def fingerprint(self) -> str:
        # whether the requests act as one user or two changes what an overrun, a duplicate
        # or a skew means (an oversell to two customers, or one customer's double click);
        # a lost update or an error is the same bug either way
        identities = rows = ""
        if self.kind in ("limit-overrun", "duplicate-insert", "write-skew"):
            identities = relation(self.scenario.requests, self.involved)
        if self.kind == "limit-overrun" and self.verdict is not None:
            # one thing done twice, or different things past a limit: two fixes
            rows = repeated(self.verdict.differences, self.execution.tables, self.place)
        return fingerprint(self.kind, self.endpoints, self.exception, self.place, identities, rows)

    @property
    def routes(self) -> tuple[str, ...]:
        """Every route seen reaching it, sorted: its endpoints, and for an error reached
        through several views the others the search saw (``extra["routes"]``)."""
        return tuple(sorted({*self.endpoints, *self.extra.get("routes", ())}))

    @property
    def is_race(self) -> bool:
        return self.kind in RACES

    @property
    def unconfirmed(self) -> bool:
        """Its minimal example never reproduced in its confirmations ("0/3"): noise
        (nondeterminism, load) until shown otherwise, not a finding."""
        return self.flaky is not None and self.flaky.never

    @property
    def response_only(self) -> bool:
        """A race where only responses differ: the final rows match a serial order."""
        verdict = self.verdict
        if self.kind not in RACES - {"concurrency-error"} or verdict is None:
            return False
        return all(d.where in ("response", "observer") for d in verdict.differences)

    def with_(self, **changes: Any) -> Finding:
        return replace(self, **changes)


def fingerprint(
    kind: str,
    endpoints: Sequence[str],
    exception: str = "",
    place: str = "",
    identities: str = "",
    rows: str = "",
) -> str:
    """Kind + endpoints + exception type: the same bug found twice is one finding. A race
    on the rows is named by its place instead of its endpoints (kind + the cells it is
    about): the same race through two routes is one finding, a duplicate row and an
    overdraft are two. Whether the involved requests act as the same identity or as
    different ones (fuzzer/findings/relations.py) is part of it, so shrinking cannot trade a race
    of two users for a benign one of one user. So is, for an overrun, whether its extra
    rows repeat rows the requests made or differ from them (``relations.repeated``: a
    double unlock and an overdraft)."""
    extra = [identities] if identities else []
    if rows:
        extra.append(rows)
    if place:
        text = json.dumps([kind, place, exception, *extra])
    else:
        text = json.dumps([kind, sorted(set(endpoints)), exception, *extra])
    return f"{kind}:{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def priority(finding: Finding) -> int:
    return KINDS.index(finding.kind)


#: ``--fail-on`` groups: "all" fails on every confirmed finding (the default), "rows" on
#: every one but those where only responses differ; kind names may be listed instead.
FAIL_ON_GROUPS = ("all", "rows")


def parse_fail_on(text: str) -> frozenset[str]:
    """``"all"``, ``"rows"`` or a comma-separated list of kinds; ValueError naming the
    bad word otherwise."""
    words = frozenset(w.strip() for w in text.split(",") if w.strip())
    bad = sorted(w for w in words if w not in FAIL_ON_GROUPS and w not in KINDS)
    if bad or not words:
        raise ValueError(
            f"expected 'all', 'rows' or a comma-separated list of kinds "
            f"({', '.join(KINDS)}) but got {text!r}"
        )
    return words


def fails_run(finding: Finding, fail_on: frozenset[str] = frozenset({"all"})) -> bool:
    """Whether a confirmed finding makes the run exit 1 under ``--fail-on``."""
    if finding.unconfirmed:
        return False
    if "all" in fail_on or finding.kind in fail_on:
        return True
    return "rows" in fail_on and not finding.response_only
