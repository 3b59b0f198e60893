"""After the search: a finding's minimal example made smaller still (fewer requests,
fewer yields) and confirmed by replays, or, from the stress mode, replayed under control."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace

from fuzzer.execute.runner import Controlled, Dispatch
from fuzzer.findings import Finding, Reproduced, classify
from fuzzer.judge.oracle import Oracle, Verdict
from fuzzer.model import Execution, Scenario
from fuzzer.search import interrupt
from fuzzer.search.conjecture import Budget
from fuzzer.search.faults import fewer_faults
from fuzzer.search.plan.schedules import from_trace
from fuzzer.search.records import Detection, Tuning

__all__ = ["Finishing", "evaluate"]


def _without(finding: Finding, index: int) -> Iterator[Scenario]:
    """The finding's scenario without request ``index``: with the other requests' genes
    as they are, then, when that does not show it, with the schedule that replays the
    order the others' steps ran in (a bystander that held a lock, such as SQLite's write
    lock, made the others interleave there: their own yields must say so instead)."""
    scenario = finding.scenario
    requests = scenario.requests[:index] + scenario.requests[index + 1 :]
    schedule = scenario.schedule[:index] + scenario.schedule[index + 1 :]
    yield replace(scenario, requests=requests, schedule=schedule)
    steps = [
        replace(step, request=step.request - (step.request > index))
        for step in finding.execution.trace
        if step.request != index
    ]
    replayed = tuple(
        replace(gene, priority=derived.priority, yields=derived.yields)
        for gene, derived in zip(schedule, from_trace(steps, len(requests)), strict=True)
    )
    if replayed != schedule:
        yield replace(scenario, requests=requests, schedule=replayed)


def evaluate(
    scenario: Scenario,
    execute: Callable[[Scenario, Dispatch], Execution],
    oracle: Oracle,
    dispatch: Dispatch | None = None,
) -> tuple[Execution, Verdict, list[Finding]]:
    """Run one scenario (under control unless ``dispatch`` says otherwise), judge it, and
    classify what it shows."""
    execution = execute(scenario, dispatch or Controlled())
    verdict = oracle.judge(scenario, execution)
    return execution, verdict, classify(scenario, execution, verdict)


class Finishing:
    """The search's last steps on each finding (a part of ``engine.Search``)."""

    budget: Budget
    tuning: Tuning
    execute: Callable[[Scenario, Dispatch], Execution]
    oracle: Oracle
    controlled: Controlled
    detections: Mapping[str, Detection]
    seen_as: Mapping[str, tuple[str, ...]]  # fingerprint -> the endpoints it was first seen with

    def _same(self, finding: Finding) -> bool:
        """Whether ``finding`` is the one its fingerprint was first seen as: through
        those endpoints or some of them. A race on the rows is fingerprinted by its
        tables, so another route's race on them (two kudos where two redemptions were
        seen) has the same fingerprint; shrinking and confirming must not slip from one
        to the other. Dropping a route is shrinking (an error seen through two views,
        shrunk to one: the others are listed as its routes)."""
        first = self.seen_as.get(finding.fingerprint, finding.endpoints)
        return set(finding.endpoints) <= set(first)

    def _final_seeded(self, finding: Finding) -> Finding:
        """A finding as it was first seen, made minimal (also when Hypothesis's shrinking
        ran out of budget) and confirmed; from the stress mode, replayed under control."""
        detection = self.detections.get(finding.fingerprint)
        finding = finding.with_(found_after=detection.examples if detection else 0)
        if self.tuning.free_running:
            return self._replay_under_control(finding)
        if self.tuning.shrink:
            finding = self._fewer_yields(self._fewer_requests(finding))
            finding = fewer_faults(finding, self._reproduces, self.budget.shrinking)
        return self._confirmed(finding)

    def _fewer_requests(self, finding: Finding) -> Finding:
        """Drop every request the finding does not need (latest first), then every init
        request it does not need."""
        for index in reversed(range(len(finding.scenario.requests))):
            if len(finding.scenario.requests) <= 1 or not self.budget.shrinking():
                break
            for candidate in _without(finding, index):
                match = self._reproduces(candidate, finding.fingerprint)
                if match is not None:
                    finding = match.with_(found_after=finding.found_after)
                    break
                if not self.budget.shrinking():
                    break
        scenario = finding.scenario
        for index in reversed(range(len(scenario.init))):  # and every init request
            if not self.budget.shrinking():
                break
            candidate = replace(scenario, init=scenario.init[:index] + scenario.init[index + 1 :])
            match = self._reproduces(candidate, finding.fingerprint)
            if match is not None:
                scenario, finding = candidate, match.with_(found_after=finding.found_after)
        return finding

    def _reproduces(self, scenario: Scenario, fingerprint: str) -> Finding | None:
        interrupt.check()
        _, _, findings = evaluate(scenario, self.execute, self.oracle, self.controlled)
        return self._match(findings, fingerprint)

    def _match(self, findings: Iterable[Finding], fingerprint: str) -> Finding | None:
        """The finding of ``findings`` that is ``fingerprint`` as first seen, if any."""
        return next((f for f in findings if f.fingerprint == fingerprint and self._same(f)), None)

    def _confirmed(self, finding: Finding) -> Finding:
        """Replay the minimal example ``confirm`` times. One that never reproduces is
        unconfirmed (not a finding): it keeps what each try showed instead."""
        n = self.tuning.confirm
        if n > 0:
            tries = [self._try(finding) for _ in range(n)]
            hits = tries.count("")
            if hits < n:
                finding = finding.with_(flaky=Reproduced(hits, n))
            if hits == 0:
                finding = finding.with_(extra={**finding.extra, "tries": tries})
        return finding

    def _try(self, finding: Finding) -> str:
        """One replay of a finding's scenario: "" if it showed the finding again, else
        what it showed instead."""
        execution, verdict, findings = evaluate(
            finding.scenario, self.execute, self.oracle, self.controlled
        )
        if any(f.fingerprint == finding.fingerprint and self._same(f) for f in findings):
            return ""
        answers = ", ".join(f"{r.status}" if r is not None else "none" for r in execution.responses)
        if execution.hang is not None:
            shown = f"hung after {execution.hang.seconds:g} s"
        elif verdict.status == "unknown":
            shown = f"could not be judged: {verdict.reason.split(';')[0]}"
        elif verdict.status == "serializable":
            order = " → ".join(f"R{i + 1}" for i in verdict.order) or "(no request)"
            shown = f"rows and answers matched the serial order {order}"
        elif findings:
            shown = "; ".join(f"{f.kind} ({' + '.join(f.endpoints)}) instead" for f in findings)
        else:
            shown = f"{len(verdict.differences)} difference(s), none of them this finding"
        return f"answered {answers}; {shown}"

    def _replay_under_control(self, finding: Finding) -> Finding:
        """A free-running finding has no known schedule: derive one from the order its
        steps were seen in, and say whether it reproduces under control (best effort)."""
        scenario = replace(
            finding.scenario,
            schedule=from_trace(finding.execution.trace, len(finding.scenario.requests)),
        )
        n = max(self.tuning.confirm, 1)
        hits = sum(self._reproduces(scenario, finding.fingerprint) is not None for _ in range(n))
        replay = (
            f"reproduced {hits}/{n} under control with the schedule derived from its trace"
            if hits
            else "not reproducible: it did not reproduce under control with the schedule "
            "derived from its trace (the free-running schedule is unknown)"
        )
        finding = finding.with_(
            scenario=scenario, extra={**finding.extra, "mode": "stress", "replay": replay}
        )
        # never reproduced under control ("0/n"): unconfirmed, so no replay file or
        # regression test is written that would say "fixed" at once
        return finding.with_(flaky=Reproduced(hits, n)) if hits < n else finding

    def _fewer_yields(self, finding: Finding) -> Finding:
        """Drop every yield the finding does not need, one at a time, latest first: the
        schedule a report shows is then 1-minimal (no single yield can go)."""
        fingerprint = finding.fingerprint
        scenario = finding.scenario
        for index in reversed(range(len(scenario.schedule))):
            for step in reversed(scenario.schedule[index].yields):
                if not self.budget.shrinking():
                    return finding
                gene = scenario.schedule[index]
                fewer = replace(gene, yields=tuple(y for y in gene.yields if y != step))
                schedule = (*scenario.schedule[:index], fewer, *scenario.schedule[index + 1 :])
                candidate = replace(scenario, schedule=schedule)
                match = self._reproduces(candidate, fingerprint)
                if match is not None:
                    scenario, finding = candidate, match.with_(found_after=finding.found_after)
        return finding
