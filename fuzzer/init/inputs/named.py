"""JSON fields only an answer names: a view that reads its fields in a helper's loop
(``for name in ("name", "cost"): if name not in data: return "'name' is required"``)
shows fuzzer init none of them, and its answer names one missing field at a time. Each
field named missing is added to the body, and sent again, until the answer names no
new one; a field the answer says takes a number ("'cost' must be a int") draws numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fuzzer.init.inputs.complaints import complaints

__all__ = ["ROUNDS", "named_fields"]

#: requests at most to learn the fields an answer names
ROUNDS = 8


def named_fields(
    send: Callable[[dict[str, Any]], Any],
    sent: dict[str, Any],
    first: Any,
    value: Callable[[str, bool], Any],
) -> tuple[dict[str, bool], dict[str, Any], Any]:
    """The fields the answers named that ``sent`` lacked (name -> takes a number), the
    body with them, and the last answer. ``send`` sends a body and returns its answer
    (with ``.body``); ``first`` is the answer to ``sent``; ``value(name, number)`` is
    the simplest value of a new field."""
    added: dict[str, bool] = {}
    answer = first
    for _ in range(ROUNDS):
        said = complaints(answer.body)
        changed = _numbers(said, added)
        for complaint in said:
            for name in complaint.missing():
                if name not in sent and name not in added:
                    added[name] = any(c.number(name) for c in said)
                    changed.append(name)
        if not changed:
            break
        sent = {**sent, **{name: value(name, added[name]) for name in changed}}
        answer = send(sent)
    return added, sent, answer


def _numbers(said: list[Any], added: dict[str, bool]) -> list[str]:
    """Of the fields added as words, those the answer says take a number; marked so."""
    found = [n for n, number in added.items() if not number and any(c.number(n) for c in said)]
    for name in found:
        added[name] = True
    return found
