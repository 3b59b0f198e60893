"""What a search of one target starts from: the target resolved from a reference and
checked, its reference for the reports, and its endpoints surveyed (``searchable``: the
scenario strategy, each endpoint's steps, the opening and the pairs' plan). ``check``
sends each endpoint's requests alone (``fuzzer init`` tries the spec it wrote this way).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hypothesis.strategies import SearchStrategy

from fuzzer.errors import InvalidTarget, TargetSetupError
from fuzzer.execute.instrument import load_target
from fuzzer.execute.runner import Serial
from fuzzer.model import Execution, Scenario, Step
from fuzzer.modes.session import Session
from fuzzer.search.events import Listener, Planned, Surveying, ignore
from fuzzer.search.exercised import unexercised
from fuzzer.search.faults import openings as fault_openings
from fuzzer.search.plan.openings import openings
from fuzzer.search.plan.pairs import Plan, plan
from fuzzer.search.plan.schedules import Mode
from fuzzer.search.survey import check_reachable, survey
from fuzzer.search.survey import describe as describe_survey
from fuzzer.target.contract import Target, validate


def resolve(target: Target | str) -> Target:
    """A Target from a reference or an object, checked. (The Session that runs it
    instruments the process for its own length: fuzzer/execute/gates.py.)"""
    if isinstance(target, str):
        return load_target(target)
    if not isinstance(target, Target):
        raise InvalidTarget(
            f"Expected a fuzzer.Target or a reference like 'package.module:attribute' but got "
            f"{type(target).__name__} {target!r}"[:300]
        )
    validate(target)
    return target


@dataclass(frozen=True)
class Searchable:
    """What a search of one target starts from, after its endpoints were surveyed."""

    strategy: SearchStrategy[Scenario]
    traces: dict[str, tuple[Step, ...]]  # each endpoint's steps alone: conflict points
    openings: tuple[Scenario, ...]  # the systematic opening before Hypothesis
    survey: Mapping[str, str]
    plan: Plan | None = None  # the bounded exhaustive search of endpoint pairs after it


def searchable(
    target: Target,
    s: Session,
    schedule: Mode,
    *,
    allow_unexercised: bool = False,
    on_event: Listener = ignore,
    faults: Sequence[str] = (),
) -> Searchable:
    """Survey each endpoint alone (and check that each can be reached and that something
    was exercised), then the scenario strategy, each endpoint's steps for conflict-guided
    schedules, the opening and the pairs' plan; ``Surveying`` and ``Planned`` events say
    how far it got. With ``faults`` (kinds of error to inject), the opening starts with the
    fault opening (fuzzer/search/faults.py)."""
    from fuzzer.strategies import scenarios

    def alone(scenario: Scenario) -> Execution:
        return s.execute(scenario, Serial(tuple(range(len(scenario.requests)))))

    started = time.monotonic()
    on_event(Surveying(len(target.endpoints)))
    surveyed = survey(target, alone)
    check_reachable(target, surveyed, alone, s.app)
    if not allow_unexercised:
        why = unexercised(surveyed, target, s.databases.initial)
        if why is not None:
            raise TargetSetupError(why)
    surveyed_after = time.monotonic() - started
    conflict = schedule == "conflict"
    opening = openings(surveyed, target) if conflict else []
    if faults and conflict:
        opening = fault_openings(surveyed, faults, opening) + opening
    prepared = Searchable(
        strategy=scenarios(
            target, schedule=schedule, prefer=surveyed.writers(), fault_kinds=faults
        ),
        traces={e.endpoint: e.trace for e in surveyed.endpoints},
        openings=tuple(opening),
        survey=describe_survey(surveyed),
        plan=plan(surveyed, target) if conflict else None,
    )
    on_event(
        Planned(
            endpoints=len(surveyed.endpoints),
            writers=sum(1 for e in surveyed.endpoints if e.writes),
            surveyed=surveyed_after,
            seconds=time.monotonic() - started - surveyed_after,
            openings=len(prepared.openings),
            plan=prepared.plan,
        )
    )
    return prepared


def check(target: Target | str, *, db: str = "sqlite") -> dict[str, str]:
    """Set the target up (databases, setup, logins) and send each endpoint's requests
    alone: one line per endpoint saying what it answered and touched. Raises the error
    that stops a run, if any (``fuzzer init`` tries the spec it wrote this way)."""
    target = resolve(target)
    with Session(target, db=db) as s:

        def alone(scenario: Scenario) -> Execution:
            return s.execute(scenario, Serial(tuple(range(len(scenario.requests)))))

        surveyed = survey(target, alone)
        check_reachable(target, surveyed, alone, s.app)
        return dict(describe_survey(surveyed))


def reference_of(target: Target) -> str:
    """``package.module:attribute`` of a Target object, so its reports can be replayed.

    Looked up where its app factory is defined first, then in every loaded module; a
    target that no module holds keeps its name (its reports then name no loadable target).
    """
    if target.reference:
        return target.reference
    import sys

    first = [
        sys.modules.get(getattr(f, "__module__", "") or "") for f in (target.app, target.setup)
    ]
    for module in [*first, *list(sys.modules.values())]:
        for name, value in list(vars(module).items()) if module is not None else ():
            if value is target:
                return f"{module.__name__}:{name}"  # type: ignore[union-attr]
    return target.name
