"""The spec ``fuzzer init`` writes, as a Python module: the plan (plan.py) laid out the
way a person would write it, with the comments that say what to check."""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING, Any

from fuzzer import compat
from fuzzer.init.pysource import WIDTH, Call, Dict, Keyword, Node, layout, literal, parsed

if TYPE_CHECKING:
    from fuzzer.init.plan import Plan

__all__ = ["render"]


class _Lines(list[str]):
    """The lines of the spec's body, with its comments wrapped to the width."""

    def out(self, line: str) -> None:
        self.append(line)

    def comment(self, text: str, indent: str = "") -> None:
        prefix = f"{indent}# "
        self.extend(
            textwrap.wrap(
                text,
                WIDTH,
                initial_indent=prefix,
                subsequent_indent=prefix,
                break_on_hyphens=False,
            )
        )


def render(plan: Plan, module: str) -> str:
    """The spec as a Python module; ``module`` is the name it is loaded by."""
    body = _Lines(["", ""])
    if plan.check_failed:
        body.comment(
            f"CHECK FIRST: fuzzer init's check of this spec failed: {plan.check_failed}. "
            "It is written unchecked (every endpoint kept) as a starting point; "
            "`fuzzer run` stops the same way until that is fixed here or in the app."
        )
        body.out("")
        body.out("")
    _app(plan, body)
    _setup(plan, body)
    _identities(plan, body)
    _endpoints(plan, body)
    _target(plan, body)
    return _header(plan, module, body) + "\n".join(body) + "\n"


def _app(plan: Plan, body: _Lines) -> None:
    out, comment = body.out, body.comment
    out("def app(database_url):" if not plan.databases else "def app(database_url):  # {name: URL}")
    pinned = "; ".join(plan.pin_notes)
    comment(
        "The app's own factory and config, with these settings pinned for fuzzing: the "
        "scratch database the fuzzer made for this run" + (f"; {pinned}." if pinned else "."),
        "    ",
    )
    pins = Call("pinned_config", tuple(Keyword(k, v) for k, v in plan.pins.items()))
    body.extend(layout(pins, "    ", ":", "with "))
    out(f"        return {plan.factory.call_source()}")
    out("")
    out("")


def _setup(plan: Plan, body: _Lines) -> None:
    out, comment = body.out, body.comment
    out("def setup(app):")
    comment(
        "Once per fresh scratch database, inside app.app_context(). CHECK: the rows it "
        "makes are the ones the requests below act on.",
        "    ",
    )
    for note in plan.setup_notes:
        comment(note, "    ")
    for kind, name in plan.setup:
        if kind == "create_all":
            out(f"    {compat.create_all_source()}")
        elif kind in ("call", "helper"):
            what = "test helper" if kind == "helper" else "seed function"
            out(f"    {name.partition(':')[2]}()  # the app's own {what}")
        elif kind == "fixture":
            out(f"    pytest_fixture(app, {literal(name)})  # the app's own test fixture")
        elif kind == "fill" and name:
            out(f"    fill_tables(app, tables=[{literal(name)}])  # a second user, from the model")
        elif kind == "fill":
            out("    fill_tables(app)  # rows made from the models: user1, user2, …")
        elif kind == "request":
            sent = json.loads(name)
            call = Call(
                "app_request",
                (
                    "app",
                    literal("POST"),
                    literal(sent["path"]),
                    Keyword("form", _mapping(sent["form"])),
                ),
            )
            body.extend(layout(call, "    ", ""))
        else:
            words = ", ".join(literal(w) for w in name.split())
            out(f"    flask_command(app, {words})  # the app's own `flask {name}`")
    _prerequisites(plan, body)
    if not plan.setup:
        out("    pass")
    out("")
    out("")


def _prerequisites(plan: Plan, body: _Lines) -> None:
    """The requests setup sends for each signed-in identity, through the app's views."""
    for endpoint, request in plan.prerequisites:
        body.comment(
            f"{endpoint} acts on rows that only {request.endpoint} makes: alone it wrote "
            "nothing, after one of those it wrote. Each signed-in identity makes them here, "
            "through the app's own endpoint.",
            "    ",
        )
        for name in plan.users:
            arguments: list[Node] = [
                "app",
                literal(request.method),
                literal(request.path),
                Keyword("as_", literal(name)),
                Keyword("identities", "IDENTITIES"),
            ]
            if request.json is not None:
                arguments.append(Keyword("json", _mapping(request.json)))
            if request.form is not None:
                arguments.append(Keyword("form", _mapping(dict(request.form))))
            body.extend(layout(Call("app_request", tuple(arguments)), "    ", ""))


def _mapping(value: Any) -> Node:
    """A dict as a node the layout can break over lines; anything else as a literal."""
    if isinstance(value, dict):
        return Dict(tuple((literal(k), literal(v)) for k, v in value.items()))
    return literal(value)


def _identities(plan: Plan, body: _Lines) -> None:
    out = body.out
    for note in plan.identity_notes:
        body.comment(note)
    if plan.login_example is None and body and body[-1].rstrip().endswith(":"):
        body[-1] = body[-1].rstrip()[:-1] + "."
    if plan.login_example is not None:
        example = layout(plan.login_example, "", ",", width=WIDTH - 6)
        body.extend("#     " + line for line in example)
    if plan.proofs:
        body.comment(
            "Each signed-in identity, sent with a request that needs it: " + "; ".join(plan.proofs)
        )
    if plan.identities:
        out("IDENTITIES = [")
        for identity in plan.identities:
            body.extend(layout(parsed(identity), "    ", ","))
        out("]")
    else:
        out("IDENTITIES: list[Identity] = []")
    out("")


def _endpoints(plan: Plan, body: _Lines) -> None:
    comment = body.comment
    if plan.openapi:
        comment(f"Bodies from the OpenAPI request schemas published at {plan.openapi}.")
    comment(
        "One Endpoint per URL rule and method of the app's url_map whose requests changed "
        "something. CHECK who sends each one (as_=[...]) and the values it draws."
    )
    _left_out(plan, body)
    if not any(plan.kept(r) for r in plan.routes):
        body.out("ENDPOINTS: list[Endpoint] = []")
        body.out("")
        return
    body.out("ENDPOINTS = [")
    for route in plan.routes:
        if not plan.kept(route):
            continue
        comment(f"{route.method} {route.rule}: {route.view or route.endpoint}", "    ")
        for note in route.variables + route.checks:
            comment(note, "    ")
        arguments: list[Node] = [literal(route.method), route.path]
        if route.body_kind:
            arguments.append(Keyword(route.body_kind, route.body))
        if route.login_required and plan.users:
            arguments.append(Keyword("as_", literal(plan.users)))
        elif route.anonymous_only and plan.users:
            arguments.append(Keyword("as_", literal(["anonymous"])))
        body.extend(layout(Call("Endpoint", tuple(arguments)), "    ", ","))
    body.out("]")
    body.out("")


def _left_out(plan: Plan, body: _Lines) -> None:
    """The comment that lists the endpoints the spec does not send, and why."""
    left = [r for r in plan.routes if not plan.kept(r) and not r.signs_out]
    if left and plan.writers is None:
        body.comment(
            "Left out: pages (GET) that fuzzer init did not try, as it was told not to ("
            + ", ".join(f"{r.method} {r.rule}" for r in left)
            + "). Put back the ones that change something."
        )
    elif left:
        body.comment(
            "Left out, and why (each sent alone after setup; `fuzzer init --all-endpoints` "
            "keeps them all). A page that shows what the racing requests change makes a "
            "good observer."
        )
        for route in left:
            name = f"{route.method} {route.rule}"
            body.comment(f"  {name}: {plan.left_out.get(name, 'wrote nothing')}")
    gone = [r for r in plan.routes if not plan.kept(r) and r.signs_out]
    if gone:
        body.comment(
            "Left out: they sign their identity out ("
            + ", ".join(f"{r.method} {r.rule}" for r in gone)
            + "). `fuzzer init --all-endpoints` keeps every endpoint."
        )


def _target(plan: Plan, body: _Lines) -> None:
    out, comment = body.out, body.comment
    out("target = Target(")
    out(f"    name={literal(plan.name)},")
    out("    app=app,")
    out("    setup=setup,")
    out("    identities=IDENTITIES,")
    out("    endpoints=ENDPOINTS,")
    if plan.databases:
        out(f"    databases={literal(plan.databases)},")
    comment(
        "Read-only requests sent after the concurrent ones, e.g. a page that shows what "
        "they changed: a race that leaves no trace in their own answers shows there.",
        "    ",
    )
    out("    observers=[],")
    if plan.ignore_columns:
        comment(
            "CHECK: columns whose values are random or come from the clock (they differed "
            "between two runs of setup or two serial runs of a request, or hold the time): "
            "not compared.",
            "    ",
        )
        columns = ", ".join(literal(c) for c in plan.ignore_columns)
        out(f"    ignore_columns=frozenset({{{columns}}}),")
    if plan.ignore_fields:
        comment(
            "CHECK: response fields that differed between two serial runs of the same "
            "request (a token, the time): not compared.",
            "    ",
        )
        fields = ", ".join(literal(f) for f in plan.ignore_fields)
        out(f"    ignore_fields=frozenset({{{fields}}}),")
    out(")")


def _header(plan: Plan, module: str, body: list[str]) -> str:
    """The docstring and the imports the body needs."""
    factory = plan.factory
    calls = "\n".join(line for line in body if not line.lstrip().startswith("#"))
    public = (
        "app_request",
        "Endpoint",
        "Identity",
        "Login",
        "Target",
        "basic_auth",
        "bearer_token",
        "fill_tables",
        "flask_command",
        "flask_login_session",
        "pytest_fixture",
        "stored_token",
    )
    used = [
        n
        for n in (*public, "paths", "pinned_config", "values_of")
        if f"{n}(" in calls or f"[{n}]" in calls
    ]
    imports: dict[str, list[str]] = {factory.module: [factory.name]}
    for kind, name in plan.setup:
        if kind in ("call", "helper"):
            where, _, function = name.partition(":")
            function = function.split(".")[0]  # a class, for a seed classmethod
            if function not in imports.setdefault(where, []):
                imports[where].append(function)
    for name_module, name in factory.imports:
        if name not in imports.setdefault(name_module, []):
            imports[name_module].append(name)
    head = [
        f'"""A fuzz spec for {factory.reference}, written by `fuzzer init`.',
        "",
        f"Run it:  fuzzer run {module}:target",
        "",
        *(["fuzzer init's check of it failed: see CHECK FIRST below."] * bool(plan.check_failed)),
        *(
            ["It does not run yet: it keeps no endpoint (none wrote when fuzzer init sent it)."]
            * (not plan.check_failed and not any(plan.kept(r) for r in plan.routes))
        ),
        (
            "Make it yours"
            if plan.check_failed or not any(plan.kept(r) for r in plan.routes)
            else "It runs as written. Then make it yours"
        )
        + ": lines marked CHECK are guesses, PLACEHOLDER",
        "marks what fuzzer init could not know. Small domains find races: two requests only",
        "race when they name the same row, so keep the lists of ids and names short.",
        '"""',
        "",
    ]
    # the fuzzer and Hypothesis are third-party libraries to the app's project
    line = f"from fuzzer import {', '.join(used)}"
    if len(line) > WIDTH:
        line = "from fuzzer import (\n" + "".join(f"    {n},\n" for n in used) + ")"
    head.append(line)
    if "st." in calls:
        head.append("from hypothesis import strategies as st")
    head.append("")
    head += [f"from {m} import {', '.join(names)}" for m, names in sorted(imports.items())]
    return "\n".join(head) + "\n"
