"""``fuzzer init``: write a starting target spec for an existing Flask app, from the app.

Given its factory (``package.module:create_app``, or a call with config arguments,
``package.module:create_app("testing")``), it builds the app on a scratch SQLite file
with a few settings pinned, in a fresh process each time (some factories run once per
process), runs the setup it proposes (the app's own ``init-db`` and seed commands or
functions, or ``create_all``) twice, and reads:

* every URL rule of the ``url_map`` with its methods; each path variable becomes a
  small domain: the values a matching column holds after setup (``values_of``), or
  a short list when it cannot tell;
* the body of each view that takes one: its Flask-WTF form's fields, the request
  schema of the OpenAPI document the app publishes, its marshmallow schema, the JSON
  keys its code reads, or a marked placeholder;
* the users to act as (Flask-Login: signed in as two of the users setup creates);
* the columns whose values differ between the two setups and look random (salted
  hashes, tokens), and those that hold the time, to ignore.

Then it tries the spec it wrote: each endpoint's requests sent alone, twice; what
differs between the two serial runs is ignored too, and the spec keeps the endpoints
whose requests wrote. One module per job: factory.py parses the factory reference,
inspection.py builds the app in fresh processes, seeding.py chooses and runs setup,
identities.py signs in, routes.py reads the url_map, values.py gives variables and
fields their values, bodies.py reads bodies, varies.py finds what to leave uncompared,
and specfile.py writes the plan out as Python; this module writes and checks it.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fuzzer.errors import FuzzerError, InvalidTarget
from fuzzer.init.factory import load_factory
from fuzzer.init.inputs.varies import serial_differences
from fuzzer.init.inspection import inspect_app
from fuzzer.init.plan import Plan
from fuzzer.init.reasons import why_left_out, writes
from fuzzer.init.specfile import render

__all__ = ["Plan", "Written", "inspect_app", "write_spec"]


def _module_name(plan: Plan) -> str:
    return f"fuzz_{plan.name}"


@dataclass(frozen=True)
class Written:
    path: str
    module: str  # what `fuzzer run` loads: module:target
    plan: Plan
    survey: Mapping[str, str] = field(default_factory=dict)  # endpoint -> what it did
    failed: str = ""  # what stopped the check: the spec is written unchecked


def write_spec(
    reference: str,
    output: str | None = None,
    *,
    force: bool = False,
    check: bool = True,
    all_endpoints: bool = False,
) -> Written:
    """Inspect the app, render its spec and write it (refusing to overwrite unless
    ``force``). With ``check``, load the spec and send each endpoint's requests alone,
    twice (what differs between the two serial runs is ignored), then write it again
    keeping the endpoints that change state (all of them with ``all_endpoints``)."""
    factory = load_factory(reference)
    path = output or ""
    if path and not path.endswith(".py"):
        raise InvalidTarget(f"--output must name a .py file, got {path!r}")
    if path and os.path.exists(path) and not force:
        raise InvalidTarget(f"{path} exists; pass --force to overwrite it, or --output another")
    plan = inspect_app(factory)
    plan.all_endpoints = all_endpoints
    path = path or f"{_module_name(plan)}.py"
    if os.path.exists(path) and not force:
        raise InvalidTarget(f"{path} exists; pass --force to overwrite it, or --output another")
    module = os.path.splitext(os.path.basename(path))[0]
    if not module.isidentifier():
        raise InvalidTarget(f"{path}: the file name must be a Python module name")
    if not check:
        _write(path, render(plan, module))
        return Written(path, module, plan)
    plan.all_endpoints = True  # the check sends every endpoint, then the spec keeps some
    _write(path, render(plan, module))
    try:
        lines = _check(Written(path, module, plan))
    except FuzzerError as exc:  # the spec stays, unchecked, as the starting point
        plan.check_failed = str(exc)
        _write(path, render(plan, module))
        return Written(path, module, plan, failed=str(exc))
    if plan.prerequisites:  # setup now makes the rows those endpoints act on: again
        _write(path, render(plan, module))
        lines = _check_again(Written(path, module, plan), lines)
    plan.all_endpoints = all_endpoints
    for route in plan.routes:
        if route.signs_out:
            plan.left_out[f"{route.method} {route.rule}"] = "it signs its identity out"
    turned_away = [n for n, line in lines.items() if line.split(";")[0] in ("302", "401", "403")]
    if turned_away and not plan.users:
        plan.identity_notes.insert(
            0,
            f"{len(turned_away)} of {len(lines)} endpoints answered 302, 401 or 403 "
            f"when fuzzer init sent them ({', '.join(turned_away[:3])}"
            + (", …" if len(turned_away) > 3 else "")
            + "): with no signed-in identity they are turned away before they do anything. "
            "Declare identities that log in and give those endpoints as_=[...].",
        )
    _write(path, render(plan, module))
    return Written(path, module, plan, lines)


def _check_again(written: Written, before: dict[str, str]) -> dict[str, str]:
    """The check once more, with the prerequisite requests in setup; when that fails
    (a request setup sends is refused), the spec goes without them, as first checked."""
    plan = written.plan
    saved = {name: copy.deepcopy(getattr(plan, name)) for name in _CHECKED}
    try:
        return _check(written)
    except FuzzerError as exc:
        dropped = ", ".join(sorted({request.endpoint for _, request in plan.prerequisites}))
        plan.prerequisites = []
        for name, value in saved.items():  # what the first check learnt
            setattr(plan, name, value)
        plan.setup_notes.append(
            f"fuzzer init left out the setup requests of {dropped}: with them, its check "
            f"failed ({exc})"
        )
        return before


_CHECKED = ("proofs", "ignore_columns", "ignore_fields", "writers", "left_out")


def _write(path: str, source: str) -> None:
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(source)
    except OSError as exc:
        raise FuzzerError(f"Cannot write the spec to {path}: {exc.strerror}") from exc


def _check(written: Written) -> dict[str, str]:
    """Load the spec just written and try it in this process (setup, logins, each
    endpoint's requests alone, twice): what its requests wrote and what differed between
    the two serial runs go into the plan. One line per endpoint says what it did."""
    from fuzzer.execute.instrument import load_target
    from fuzzer.execute.runner import Serial
    from fuzzer.init.setup.prerequisites import find_prerequisites, prove_identities
    from fuzzer.model import Execution, Scenario
    from fuzzer.modes.session import Session
    from fuzzer.search.survey import check_reachable, sample_requests, survey
    from fuzzer.search.survey import describe as describe_survey

    directory = os.path.dirname(os.path.abspath(written.path))
    sys.path.insert(0, directory)
    try:
        sys.modules.pop(written.module, None)
        target = load_target(f"{written.module}:target")
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(directory)
    runs: list[dict[tuple[str, ...], Execution]] = [{}, {}]

    def work(s: Session) -> dict[str, str]:
        def recorded(into: dict[tuple[str, ...], Execution]) -> Any:
            def alone(scenario: Scenario) -> Execution:
                execution = s.execute(scenario, Serial(tuple(range(len(scenario.requests)))))
                into.setdefault(tuple(r.describe() for r in scenario.requests), execution)
                return execution

            return alone

        surveyed = survey(target, recorded(runs[0]))
        check_reachable(target, surveyed, recorded(runs[0]), s.app)
        # the requests of the endpoints that wrote again, from the same snapshot: what
        # differs between two serial runs of one request is random or the clock
        writers = [e for e in target.endpoints if e.name in _writing_endpoints(surveyed)]
        if writers:
            survey(replace(target, endpoints=writers), recorded(runs[1]))
        if not written.plan.prerequisites:
            endpoints = {e.name: e for e in target.endpoints}
            names = [i.name for i in target.identities]

            def candidates(name: str) -> list[Any]:
                return sample_requests(endpoints[name], names, 6) if name in endpoints else []

            found = find_prerequisites(surveyed, recorded({}), candidates, written.plan.users)
            written.plan.prerequisites = [(p.endpoint, p.request) for p in found]
        plan = written.plan
        guarded = {f"{r.method} {r.rule}" for r in plan.routes if r.login_required}
        plan.proofs = prove_identities(surveyed, plan.users, guarded, recorded({}))
        columns = {name: info for name, info in s.databases.tables.items()}
        _recount(written.plan, columns, s.databases.initial)
        serial_differences(written.plan, runs, columns)
        written.plan.writers = _writing_endpoints(surveyed)
        written.plan.left_out = {
            e.endpoint: why_left_out(e, plan) for e in surveyed.endpoints if not writes(e)
        }
        return dict(describe_survey(surveyed))

    return Session(target).run(work)


_NOW = re.compile(r"the values of (\S+)\.(\w+) after setup \((\d+) now\)")


def _recount(plan: Plan, columns: Mapping[str, Any], initial: Mapping[str, Any]) -> None:
    """The comments that count a column's values after setup, counted again on the rows
    the spec's setup leaves (its setup requests make rows the app's seed did not)."""

    def now(match: re.Match[str]) -> str:
        table, column = match.group(1), match.group(2)
        info, rows = columns.get(table), initial.get(table)
        if info is None or rows is None or column not in info.columns:
            return match.group(0)
        position = info.columns.index(column)
        present = len({row[position] for row in rows})
        return f"the values of {table}.{column} after setup ({present} now)"

    for route in plan.routes:
        route.variables = [_NOW.sub(now, line) for line in route.variables]


def _writing_endpoints(surveyed: Any) -> frozenset[str]:
    return frozenset(e.endpoint for e in surveyed.endpoints if writes(e))
