"""An explanation as data first and text second, and the small text helpers the
rules write their facts with."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fuzzer.judge.oracle import Difference
from fuzzer.model import Response


def label(index: int) -> str:
    return f"R{index + 1}"


@dataclass(frozen=True)
class Explanation:
    """Why no serial order explains what happened: data first, text second."""

    let: tuple[tuple[str, str], ...]  # (R1, "PUT /user/name {...}")
    facts: tuple[str, ...]  # "R1 read users at step 3, before R2 committed at step 9"
    however: str  # the observation no serial order makes
    order: tuple[int, ...] = ()  # the closest serial order
    difference: Difference | None = None  # the first difference from it
    conflicts: tuple[int, ...] = ()  # trace positions (from 0) of the conflicting steps

    def text(self) -> str:
        lines = ["Let " + ", ".join(f"{name} = {what}" for name, what in self.let) + "."]
        facts = [fact for fact in self.facts if fact.strip()]
        if facts:  # never an empty step list
            lines.append("Then:")
            lines += [f"  {fact}" for fact in facts]
        lines.append(self.however)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "let": [list(pair) for pair in self.let],
            "facts": list(self.facts),
            "however": self.however,
            "order": list(self.order),
            "difference": self.difference.to_json() if self.difference else None,
            "conflicts": list(self.conflicts),
            "text": self.text(),
        }


def _order(order: Sequence[int]) -> str:
    return " → ".join(label(i) for i in order) or "(no request)"


def _describe(difference: Difference | None) -> str:
    return difference.describe(label) if difference is not None else ""


def _key_text(key: Any) -> str:
    if isinstance(key, list):
        return ", ".join(str(k) for k in key)
    return str(key)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _short(value: Any, limit: int = 160) -> str:
    return _clip(_json(value), limit)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _status(value: Any) -> str:
    if isinstance(value, dict) and "status" in value:
        return str(value["status"])
    return _json(value)


def responses_text(responses: Sequence[Response | None]) -> list[str]:
    return [
        f"{label(i)}: {r.status}" if r else f"{label(i)}: not sent" for i, r in enumerate(responses)
    ]
