"""Why the spec leaves an endpoint out: what its simplest request did when ``fuzzer
init`` sent it alone after setup (turned away, which status and as whom; only
redirected; a validation error, which field and what it said; an error; read only)."""

from __future__ import annotations

import json
from typing import Any

from fuzzer.search.exercised import writes_rows

__all__ = ["why_left_out", "writes"]


def writes(e: Any) -> bool:
    """Its requests wrote rows (a redirect that touched only a session or cache key
    did not: it reached no view's work)."""
    return writes_rows(e)


def why_left_out(e: Any) -> str:
    who = f" as {e.request.identity}" if e.request.identity else ""
    status = e.status
    if status == 0 or status >= 500:
        return f"error: answered {status}{who}" + _said(e)
    if status in (401, 403):
        return f"turned away: {status}{who}"
    if 300 <= status < 400:
        if e.writes:
            return f"only redirected ({status}{who}), writing nothing but a session or cache key"
        return f"redirected ({status}{who}) without writing"
    if status in (400, 409, 422):
        return f"validation error ({status}{who})" + _said(e)
    if status >= 400:
        return f"answered {status}{who} without writing"
    if not e.statements:
        return f"{status}{who}; no SQL"
    reads = sorted(r.removeprefix("default.") for r in e.reads)
    return f"{status}{who}; read only" + (f" ({', '.join(reads)})" if reads else "")


def _said(e: Any) -> str:
    """What the answer said, shortly: a JSON error or the fields a form rejected."""
    body = getattr(e.response, "body", None)
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return ""
    if not isinstance(body, dict):
        return ""
    errors = body.get("errors") or body.get("error") or body.get("message")
    if isinstance(errors, dict):
        text = "; ".join(
            f"{field}: {message[0] if isinstance(message, list) and message else message}"
            for field, message in errors.items()
        )
    else:
        text = str(errors) if errors else ""
    return f": {text[:100]}" if text else ""
