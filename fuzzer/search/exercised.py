"""Did the survey exercise anything? (issue 11)

A run whose every request ends in the same redirect, 401 or 403, or whose endpoints
mostly run no SQL and reach nothing the fuzzer can see, searches nothing: it would say
"No findings" and exit 0 with no serial reference run. This module reads the survey
(each endpoint's requests sent alone) and says why, with the likely cause; the run then
stops with exit 2 unless the user opts in (``--allow-unexercised``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from fuzzer.search.survey import EndpointSurvey, Survey
from fuzzer.target.contract import Target

TURNED_AWAY = frozenset({301, 302, 303, 307, 308, 401, 403})
_USERS = re.compile(r"(^|_)(users?|accounts?|members?|people|persons?|customers?)$", re.I)
_HREF = re.compile(r"""href=["']?([^"' >]+)""", re.I)


def unexercised(
    survey: Survey, target: Target, initial: Mapping[str, Sequence[Any]] | None = None
) -> str | None:
    """Why the survey exercised nothing (one line with the likely cause and the fix),
    or None when it did."""
    endpoints = survey.endpoints
    if not endpoints:
        return None
    answers = [_answer(e) for e in endpoints]
    idle = [e for e in endpoints if _idle(e)]
    if (
        len(set(answers)) == 1
        and endpoints[0].status in TURNED_AWAY
        and not any(writes_rows(e) for e in endpoints)
    ):
        what = f"every endpoint answered {answers[0]} and none wrote anything"
        if any(e.writes for e in endpoints):
            what += " but a session or cache key"
    elif len(idle) * 2 > len(endpoints):
        counts = Counter(_answer(e) for e in idle)
        shown = ", ".join(f"{answer} ×{n}" for answer, n in counts.most_common(3))
        what = f"{len(idle)} of {len(endpoints)} endpoints ran no SQL ({shown})"
    else:
        return None
    return (
        f"nothing was exercised: {what}; likely cause: {_cause(endpoints, target, initial)}. "
        f"Fix the spec, or pass --allow-unexercised to fuzz it as it is"
    )


def _idle(e: EndpointSurvey) -> bool:
    """Ran no SQL and passed no checkpoint: nothing the fuzzer can interleave; or only
    redirected, touching nothing but session or cache keys (issue 20)."""
    if e.keys_only:
        return True
    return e.statements == 0 and not any(s.kind in ("checkpoint", "sleep") for s in e.trace)


def writes_rows(e: EndpointSurvey) -> bool:
    """It wrote something other than the session or cache keys of a redirect."""
    return bool(e.writes) and not e.keys_only


def _answer(e: EndpointSurvey) -> str:
    location = _location(e)
    return f"{e.status} → {location}" if location else str(e.status)


def _location(e: EndpointSurvey) -> str:
    """Where a redirect pointed (werkzeug's redirect body names it), without its query."""
    if not 300 <= e.status < 400 or e.response is None or not isinstance(e.response.body, str):
        return ""
    found = _HREF.search(e.response.body)
    return found.group(1).split("?", 1)[0] if found else ""


def _cause(
    endpoints: Sequence[EndpointSurvey],
    target: Target,
    initial: Mapping[str, Sequence[Any]] | None,
) -> str:
    locations = " ".join(_location(e).lower() for e in endpoints)
    statuses = {e.status for e in endpoints}
    if any(word in locations for word in ("setup", "install", "wizard", "onboard")):
        return (
            "a setup wizard: the app sends every request to its setup page until it is set "
            "up; make the target's setup complete it"
        )
    empty = sorted(
        name
        for name, rows in (initial or {}).items()
        if _USERS.search(name.rsplit(".", 1)[-1]) and not rows
    )
    signing = any(word in locations for word in ("login", "signin", "sign_in", "auth"))
    if empty and (signing or statuses & {401, 403}):
        return (
            f"setup created no users (table {', '.join(empty)} is empty after setup), so "
            f"nobody can sign in; create them in the target's setup"
        )
    signed = [i.name for i in target.identities if i.login is not None or i.headers]
    if signing or statuses & {401, 403}:
        if not signed:
            return (
                "no identities: every request is anonymous; declare Target(identities=[...]) "
                "with a Login or headers so requests are signed in"
            )
        return (
            f"a login that failed: identities {', '.join(signed)} are sent, yet the app "
            f"treats the requests as signed out (check their credentials, and that setup "
            f"created those users)"
        )
    return (
        "the requests are turned away before they reach a view (a before_request hook, a "
        "missing identity, a wrong path prefix?)"
    )
