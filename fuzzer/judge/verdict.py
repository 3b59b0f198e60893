"""What the oracle says about an execution: a verdict, its differences, and the
comparable outcome of an execution (DESIGN.md §5)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fuzzer.db import Rows
from fuzzer.judge.masks import plain
from fuzzer.model import Execution, Response

Status = Literal["serializable", "violation", "unknown"]
Judged = Literal["fully", "partly", "not"]


@dataclass(frozen=True)
class Difference:
    """One place where an execution and a serial reference disagree."""

    where: str  # "response", "observer", "cell", "extra-row", "missing-row"
    actual: Any
    expected: Any
    request: int | None = None  # for responses
    table: str = ""
    key: Any = None  # the row's primary key (canonical) for cells
    column: str = ""

    def describe(self, label: Callable[[int], str] = lambda i: f"R{i + 1}") -> str:
        if self.where == "response":
            return (
                f"{label(self.request or 0)} answered {short(self.actual)}, "
                f"serially {short(self.expected)}"
            )
        if self.where == "observer":
            return (
                f"observer {(self.request or 0) + 1} answered {short(self.actual)}, "
                f"serially {short(self.expected)}"
            )
        if self.where == "cell":
            return (
                f"{self.table}[{key_text(self.key)}].{self.column} is {short(self.actual)}, "
                f"serially {short(self.expected)}"
            )
        if self.where == "extra-row":
            return f"{self.table} has a row no serial order makes: {short(self.actual)}"
        return f"{self.table} lacks a row every serial order makes: {short(self.expected)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "actual": self.actual,
            "expected": self.expected,
            "request": self.request,
            "table": self.table,
            "key": self.key,
            "column": self.column,
        }


@dataclass(frozen=True)
class Verdict:
    status: Status
    order: tuple[int, ...] = ()  # the matching order, or the closest one
    aborted: tuple[int, ...] = ()
    differences: tuple[Difference, ...] = ()
    reference: Execution | None = None  # the serial execution of ``order``
    serial_failures: tuple[tuple[int, Response], ...] = ()  # 5xx seen in serial runs
    reason: str = ""  # for unknown
    orders_tried: int = 0
    consulted: tuple[Execution, ...] = field(default=(), compare=False, repr=False)
    # how much of the outcome was judged: everything, everything but masked cells (the
    # masks it needed: values that differ between serial runs of one order), or nothing
    judged: Judged = "fully"
    masked: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "order": list(self.order),
            "aborted": list(self.aborted),
            "differences": [d.to_json() for d in self.differences],
            "reason": self.reason,
            "orders_tried": self.orders_tried,
            "reference": self.reference.to_json() if self.reference else None,
            "judged": self.judged,
            "masked": list(self.masked),
        }


@dataclass
class OracleStats:
    references: int = 0  # serial runs done
    memo_hits: int = 0
    seconds: float = 0.0  # spent in serial reference runs


@dataclass(frozen=True)
class Outcome:
    """The comparable part of an execution."""

    responses: tuple[tuple[int, Any] | None, ...]
    observers: tuple[tuple[int, Any], ...]
    tables: Mapping[str, Rows]
    # the tables whose new rows are named by who made them (else by content), and what
    # it was made of, to name them again the way another outcome did (``Normalizer.agree``)
    by_maker: frozenset[str] = field(default=frozenset(), compare=False)
    source: tuple[Execution, tuple[str, ...], tuple[str, ...], frozenset[str]] | None = field(
        default=None, compare=False, repr=False
    )


def at(labels: Sequence[str], index: int) -> str:
    return labels[index] if index < len(labels) else f"R{index + 1}"


def bare(name: str) -> str:
    return name.rsplit(".", 1)[-1]


class NewKey(str):
    """The canonical name ``Normalizer`` gives the generated key of a row inserted during
    an execution: by who made it (``maker``: the request and the row's number among its
    inserts into the table, "<new users by R1.2>") when the trace accounts for every new
    row of the table, else by its place among the new rows sorted by content
    (``number``, "<new users #1>"). A string (it is compared, sorted and written to JSON
    as its text, so reports read the same) that knows what it is: nothing reads it back
    from the text."""

    table: str
    maker: tuple[int, int] | None
    number: int

    def __new__(
        cls, table: str, *, maker: tuple[int, int] | None = None, number: int = 0
    ) -> NewKey:
        if maker is not None:
            text = f"<new {table} by R{maker[0] + 1}.{maker[1]}>"
        else:
            text = f"<new {table} #{number}>"
        key = super().__new__(cls, text)
        key.table, key.maker, key.number = table, maker, number
        return key

    def __getnewargs_ex__(self) -> tuple[tuple[str], dict[str, Any]]:
        return (self.table,), {"maker": self.maker, "number": self.number}


def is_new_label(value: Any) -> bool:
    """Whether ``value`` is the canonical name of a generated key (``NewKey``)."""
    return isinstance(value, NewKey)


def unpack(value: tuple[int, Any] | None) -> Any:
    return None if value is None else {"status": value[0], "body": plain(value[1])}


def sort_key(row: tuple[Any, ...]) -> str:
    return json.dumps(row, sort_keys=True, default=str, ensure_ascii=False)


def key_value(key: tuple[Any, ...]) -> Any:
    return key[0] if len(key) == 1 else list(key)


def key_text(key: Any) -> str:
    if isinstance(key, list):
        return ", ".join(str(k) for k in key)
    return str(key)


def short(value: Any, limit: int = 100) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def order_text(order: Sequence[int]) -> str:
    return " → ".join(f"R{i + 1}" for i in order) or "(none)"
