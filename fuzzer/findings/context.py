"""One execution, its verdict and its trace read as table accesses: what every rule
of classification reads, and the row helpers they share."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fuzzer.findings.explain import Explanation, _order, label
from fuzzer.findings.finding import Finding
from fuzzer.findings.stamps import shared
from fuzzer.judge.oracle import Difference, Verdict
from fuzzer.judge.verdict import is_new_label
from fuzzer.model import Execution, Scenario, Step
from fuzzer.sql import Access


@dataclass(frozen=True)
class _Event:
    position: int  # in the trace, from 0
    step: Step
    access: Access

    @property
    def request(self) -> int:
        return self.step.request

    @property
    def tables(self) -> frozenset[str]:
        """Every table the statement touches, read or written."""
        return self.access.reads | ({self.access.write} if self.access.write else set())


class _Context:
    """One execution, its verdict, and its trace read as table accesses."""

    def __init__(self, scenario: Scenario, execution: Execution, verdict: Verdict) -> None:
        self.scenario = scenario
        self.execution = execution
        self.verdict = verdict
        self.trace = execution.trace
        self.lets = tuple((label(i), r.describe()) for i, r in enumerate(scenario.requests))
        self.events: list[_Event] = []
        for position, step in enumerate(execution.trace):
            if step.kind in ("sql", "commit", "rollback"):
                self.events.append(_Event(position, step, step.access))
        # the stamps every request made (last_seen in a before_request hook): no conflict
        requests = range(len(scenario.requests))
        self.stamps = shared([[s for s in self.trace if s.request == i] for i in requests])
        # request -> positions of its COMMITs that did not fail, and the last of them
        self.published: dict[int, list[int]] = {}
        for e in self.events:
            if e.access.verb == "COMMIT" and not e.step.error:
                self.published.setdefault(e.request, []).append(e.position)
        self.commits = {r: positions[-1] for r, positions in self.published.items()}
        # trace position -> where the transaction of that statement began: what a read
        # sees is at best that old (a REPEATABLE READ snapshot is taken there)
        self._began: dict[int, int] = {}
        open_since: dict[tuple[int, int], int] = {}
        for e in self.events:
            where = (e.request, e.step.connection)
            if e.step.connection == 0:  # a cache or Redis command: no transaction
                continue
            if e.access.verb in ("COMMIT", "ROLLBACK"):
                open_since.pop(where, None)
                continue
            self._began[e.position] = open_since.setdefault(where, e.position)
        # a 5xx that a serial run gives too is a serial failure, never evidence of a race
        self.serial_errors = {
            i
            for i, r in enumerate(execution.responses)
            if r is not None
            and r.status >= 500
            and (i, r.exception_type or r.status)
            in {(j, f.exception_type or f.status) for j, f in verdict.serial_failures}
        }
        self.differences = tuple(
            d
            for d in verdict.differences
            if not (d.where == "response" and d.request in self.serial_errors)
        )

    def of(self, request: int) -> list[_Event]:
        return [e for e in self.events if e.request == request]

    def began(self, read: _Event) -> int:
        """Where the transaction of ``read`` began: the oldest state it may have seen."""
        return self._began.get(read.position, read.position)

    def saw_before(self, read: _Event, commit: int) -> bool:
        """Whether ``read`` may have seen the state before ``commit``: it ran before it,
        or in a transaction begun before it (a snapshot from then)."""
        return self.began(read) < commit

    def when(self, read: _Event, commit: int) -> str:
        """ "at step 7 (…)", and the older snapshot if that is what makes it stale."""
        where = self.step(read.position)
        if read.position > commit:
            return f"at {where}, in a transaction begun at step {self.began(read) + 1}"
        return f"at {where}"

    def took_effect_after(self, e: _Event, position: int, holder: int) -> bool:
        """Whether a statement took effect after trace position ``position``, a COMMIT of
        request ``holder``: it ran after it, or it was granted before it but waited in the
        database for a lock until that COMMIT (the holder's first one after it) released
        it, and then succeeded."""
        if e.position > position:
            return True
        if not e.step.waited or e.step.error:
            return False
        release = next(
            (
                end.position
                for end in self.of(holder)
                if end.position > e.position and end.access.verb in ("COMMIT", "ROLLBACK")
            ),
            None,
        )
        return release == position

    def visible(self, write: _Event) -> int | None:
        """The position of the commit that published ``write`` (a request may commit
        several times), or None if it never was."""
        return next((p for p in self.published.get(write.request, ()) if p > write.position), None)

    def written(self, request: int, stamps: bool = True) -> set[str]:
        """Tables the request wrote and committed (without ``stamps``: by a statement
        other than a stamp every request made)."""
        commit = self.commits.get(request)
        if commit is None:
            return set()
        return {
            e.access.write
            for e in self.of(request)
            if e.access.write
            and e.position < commit
            and not e.step.error
            and (stamps or e.step.text not in self.stamps)
        }

    def step(self, position: int) -> str:
        """ "step 7 (UPDATE pages SET …)": a trace position, as the timeline numbers it."""
        what = " ".join(self.trace[position].text.split())
        if len(what) > 70:
            what = what[:69] + "…"
        return f"step {position + 1} ({what})" if what else f"step {position + 1}"

    def closest(self) -> str:
        return f"the closest serial order is {_order(self.verdict.order)}"

    def finding(
        self,
        kind: str,
        involved: Iterable[int],
        facts: Sequence[str],
        however: str,
        *,
        exception: str = "",
        difference: Difference | None = None,
        conflicts: Iterable[int] = (),
        place: str = "",
    ) -> Finding:
        requests = self.scenario.requests
        chosen = tuple(sorted({i for i in involved if 0 <= i < len(requests)}))
        return Finding(
            kind=kind,
            endpoints=tuple(sorted({requests[i].endpoint for i in chosen})),
            exception=exception,
            scenario=self.scenario,
            execution=self.execution,
            verdict=self.verdict,
            explanation=Explanation(
                let=self.lets,
                facts=tuple(facts),
                however=however,
                order=self.verdict.order,
                difference=difference,
                conflicts=tuple(sorted(set(conflicts))),
            ),
            involved=chosen,
            place=place,
        )

    def narrowed(self, differences: Sequence[Difference]) -> _Context:
        """The same execution, judged on these differences only (one table's)."""
        other = copy.copy(self)
        other.differences = tuple(differences)
        return other

    def around(self, reader: int, writer: int, tables: set[str]) -> tuple[str, list[int]]:
        """How ``reader`` used ``tables`` around ``writer``'s commit, as a fact, and the
        positions it cites ("" when the reader did not touch them)."""
        commit = self.commits.get(writer)
        if commit is None:
            return "", []
        used = [e for e in self.of(reader) if e.tables & tables and e.access.verb != "COMMIT"]
        before = next((e for e in used if e.position < commit), None)
        after = next((e for e in used if e.position > commit), None)

        def did(e: _Event) -> str:
            verb = "wrote" if e.access.write else "read"
            return f"{verb} {', '.join(sorted(e.tables & tables))}"

        committed = f"{label(writer)} committed at step {commit + 1}"
        if before is not None and after is not None:
            again = " again" if did(before) == did(after) else ""
            text = (
                f"{label(reader)} {did(before)} at step {before.position + 1}, before "
                f"{committed}, and {did(after)}{again} at step {after.position + 1}, after it;"
            )
            return text, [before.position, commit, after.position]
        if before is not None:
            where = self.step(before.position)
            text = f"{label(reader)} {did(before)} at {where}, before {committed};"
            return text, [before.position, commit]
        if after is not None:
            text = (
                f"{label(reader)} {did(after)} at {self.step(after.position)}, after {committed};"
            )
            return text, [commit, after.position]
        return "", []


def _bare(table: str) -> str:
    """ "shop.products" -> "products": traces name tables without their database."""
    return table.rsplit(".", 1)[-1]


def _is_new_key(key: Any) -> bool:
    """A key the oracle renamed (``NewKey``): a row inserted during the execution."""
    values = key if isinstance(key, list) else [key]
    return any(is_new_label(v) for v in values)


def _same_row(statement_key: tuple[Any, ...] | None, cell_key: Any) -> bool:
    if statement_key is None:
        return True  # the statement's row is not known: the table is the evidence
    wanted = cell_key if isinstance(cell_key, list) else [cell_key]
    return len(statement_key) >= len(wanted) and all(
        _same(a, b) for a, b in zip(statement_key, wanted, strict=False)
    )


def _first_difference(c: _Context, where: Sequence[str]) -> Difference | None:
    return next((d for d in c.differences if d.where in where), None)


def _same(a: Any, b: Any) -> bool:
    return a == b or str(a) == str(b)
