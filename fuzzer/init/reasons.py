"""Why the spec leaves an endpoint out: what its simplest request did when ``fuzzer
init`` sent it alone after setup (turned away, which status and as whom; only
redirected; a validation error, which field and what it said, in a JSON answer or a
form the page shows again; an error; read only)."""

from __future__ import annotations

from typing import Any

from fuzzer.init.inputs.complaints import complaints, summary
from fuzzer.init.plan import Plan
from fuzzer.search.exercised import writes_rows

__all__ = ["why_left_out", "writes"]


def writes(e: Any) -> bool:
    """Its requests wrote rows (a redirect that touched only a session or cache key
    did not: it reached no view's work)."""
    return writes_rows(e)


def why_left_out(e: Any, plan: Plan | None = None) -> str:
    """What an endpoint's simplest request did, from the survey; what the app said was
    wrong with it is read from the answer (a page the survey cut short, from what the
    request sent at inspection said: ``Route.said``)."""
    said = _said(e) or _inspected(plan, e.endpoint)
    who = f" as {e.request.identity}" if e.request.identity else ""
    status = e.status
    if status == 0 or status >= 500:
        return f"error: answered {status}{who}" + said
    if status in (401, 403):
        return f"turned away: {status}{who}"
    if 300 <= status < 400:
        if e.writes:
            return f"only redirected ({status}{who}), writing nothing but a session or cache key"
        return f"redirected ({status}{who}) without writing"
    if status in (400, 409, 422):
        return f"validation error ({status}{who})" + said
    if status >= 400:
        return f"answered {status}{who} without writing" + said
    if e.request.method != "GET" and said:  # the form again, with its errors
        return f"validation error ({status}{who})" + said
    if not e.statements:
        return f"{status}{who}; no SQL"
    reads = sorted(r.removeprefix("default.") for r in e.reads)
    return f"{status}{who}; read only" + (f" ({', '.join(reads)})" if reads else "")


def _said(e: Any) -> str:
    """What the answer said was wrong, shortly: the fields a JSON error or a form shown
    again names, with their messages; flashed messages."""
    found = complaints(getattr(e.response, "body", None))
    return f": {summary(found)}" if found else ""


def _inspected(plan: Plan | None, endpoint: str) -> str:
    routes = plan.routes if plan is not None else []
    said = next((r.said for r in routes if f"{r.method} {r.rule}" == endpoint), "")
    return f": {said}" if said else ""
