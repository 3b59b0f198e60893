"""What varies between two serial runs of the same order, and how it is masked.

Real apps put random and time-dependent values everywhere: a CSRF token in every
page, a salted password hash in a new user's row, an API token from ``secrets``, a
``time()`` stamp, a random token in a redirect's query string, a classifier that
answers differently each call. Two serial runs of one order then differ, and
comparing them value by value would leave the example unjudged.

When two serial runs of one order differ, :meth:`Masks.learn` finds exactly which
cells differ and masks them for the rest of the run, in examples of the same
endpoints (a table's cell: in that row, where the rows pair by key):

* a table's cell (``users.password_hash``): its values become :class:`Varies`;
* a JSON field of an endpoint's answer (``POST /token: body.token``), a redirect's
  query value (``GET /reset: Location ?token``);
* a span of an HTML or text body: the two bodies are diffed token by token
  (difflib), and each span that differs is masked wherever the same context precedes
  it (the few tokens before it: ``name="csrf_token" type="hidden" value="``), the
  way web scanners learn a page's dynamic content.

A masked value compares equal to any other masked value, so the example is judged on
everything else. What it carried is kept: a masked value that is equal to another
masked value in the serial run (a token in a response and ``users.token`` in the
final rows) is a *relation*, checked in the execution (:func:`relations`), so two
tokens issued concurrently where one is dead at once is still a finding.

Masks are learned from serial runs only, never from the execution judged. Some
differences cannot be masked (a status, a row that exists once and not the other
time): they are named, and the example is not judged.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

#: the names of the masks the comparisons in progress relied on (judging runs in one
#: thread: the search's); see :func:`recording`
_used: list[str] | None = None

CONTEXT = 6  # tokens before a text span that identify it
MAX_SPAN = 40  # tokens: a longer differing span is content, not a token


class Varies:
    """A masked value: equal to any other masked value, the value itself kept for
    relations and for the report."""

    __slots__ = ("name", "value")

    def __init__(self, value: Any, name: str) -> None:
        self.value = value
        self.name = name

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Varies):
            if _used is not None and other.value != self.value:
                _used.append(self.name)
            return True
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return 0x5EED

    def __str__(self) -> str:  # sort keys and canonical names must not depend on it
        return "<varies>"

    __repr__ = __str__


class MaskedText:
    """A text body whose learned spans are masked: equal to another text of the same
    endpoint when every span where they differ is one of its learned spans."""

    __slots__ = ("anchors", "name", "text")

    def __init__(self, text: str, anchors: frozenset[str], name: str) -> None:
        self.text = text
        self.anchors = anchors
        self.name = name

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MaskedText):
            if self.text == other.text:
                return True
            if not text_matches(self.text, other.text, self.anchors | other.anchors):
                return False
            if _used is not None:
                _used.append(self.name)
            return True
        if isinstance(other, str):
            return self.text == other
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return 0x7E47

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


class recording:
    """``with recording() as used:`` collects the names of the masks that comparisons
    inside needed (a masked value that really differed)."""

    def __enter__(self) -> list[str]:
        global _used
        self._saved = _used
        _used = []
        return _used

    def __exit__(self, *exc: object) -> None:
        global _used
        _used = self._saved


def plain(value: Any) -> Any:
    """A normalized value as JSON-able data for reports (masked values as they were)."""
    if isinstance(value, Varies):
        return value.value
    if isinstance(value, MaskedText):
        return value.text
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


# -- text -------------------------------------------------------------------------------

_TOKEN = re.compile(r"[\w\-.]+|\s+|[^\w\s]")
_DIGITS = re.compile(r"\d")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def context(words: Sequence[str], position: int) -> str:
    """What precedes a span: the last few tokens before it, whitespace left out and
    digits blurred (a date before a token is still the same place)."""
    before = [w for w in words[max(0, position - 3 * CONTEXT) : position] if not w.isspace()]
    return "\x1f".join(_DIGITS.sub("0", w) for w in before[-CONTEXT:])


def text_spans(a: str, b: str) -> list[tuple[str, str, str]]:
    """The spans where two texts differ: (context, a's span, b's span)."""
    ta, tb = tokens(a), tokens(b)
    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    return [
        (context(ta, i1), "".join(ta[i1:i2]), "".join(tb[j1:j2]))
        for op, i1, i2, j1, j2 in matcher.get_opcodes()
        if op != "equal"
    ]


def text_matches(a: str, b: str, anchors: frozenset[str]) -> bool:
    ta, tb = tokens(a), tokens(b)
    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        if i2 - i1 > MAX_SPAN or j2 - j1 > MAX_SPAN or context(ta, i1) not in anchors:
            return False
    return True


# -- the masks of a run -----------------------------------------------------------------


@dataclass
class Masks:
    """Every mask learned in a run (they persist for the run)."""

    columns: set[str] = field(default_factory=set)  # "table.column": its names, for reports
    fields: set[tuple[str, str]] = field(default_factory=set)  # (endpoint, "body.a.b")
    anchors: dict[str, set[str]] = field(default_factory=dict)  # endpoint -> text contexts
    # where a column varied: "table.column" -> {(the endpoints of the request list that
    # showed it, the row's key or ANY_ROW)}; a cell is masked only in an example whose
    # requests include those endpoints, and only in that row when the rows paired by key
    cells: dict[str, set[tuple[frozenset[str], Any]]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.columns or self.fields or self.anchors)

    @staticmethod
    def field_name(endpoint: str, path: str) -> str:
        return f"{endpoint}: {path}"

    @staticmethod
    def text_name(endpoint: str) -> str:
        return f"{endpoint}: spans of its page"

    def column(self, table: str, column: str) -> bool:
        bare = table.rsplit(".", 1)[-1]
        return f"{table}.{column}" in self.columns or f"{bare}.{column}" in self.columns

    def cell(self, table: str, column: str, scope: frozenset[str], key: Any) -> bool:
        """Whether a cell is masked in an example whose requests' endpoints are
        ``scope``: the column varied in serial runs of requests among those endpoints,
        in that row (or in rows that could not be told apart)."""
        for name in (f"{table}.{column}", f"{table.rsplit('.', 1)[-1]}.{column}"):
            for where, row in self.cells.get(name, ()):
                if where <= scope and (row is ANY_ROW or row == key):
                    return True
        return False

    def mask_cell(self, table: str, column: str, scope: frozenset[str], key: Any) -> None:
        self.columns.add(f"{table}.{column}")
        self.cells.setdefault(f"{table}.{column}", set()).add((scope, key))

    def text(self, endpoint: str, body: str) -> Any:
        anchors = self.anchors.get(endpoint)
        if not anchors:
            return body
        return MaskedText(body, frozenset(anchors), self.text_name(endpoint))


@dataclass(frozen=True)
class Learned:
    """What two serial runs of one order taught: new masks, and what could not be
    masked (each named)."""

    masked: tuple[str, ...] = ()
    unmaskable: tuple[str, ...] = ()


def learn_body(
    masks: Masks, endpoint: str, a: Any, b: Any, path: str, out: list[str], bad: list[str]
) -> None:
    """Mask where two answers of one endpoint differ (both already normalized)."""
    if a == b:
        return
    if isinstance(a, MaskedText | str) and isinstance(b, MaskedText | str) and path == "body":
        ta, tb = str(a), str(b)
        spans = text_spans(ta, tb)
        if spans and all(
            len(tokens(x)) <= MAX_SPAN and len(tokens(y)) <= MAX_SPAN for _, x, y in spans
        ):
            masks.anchors.setdefault(endpoint, set()).update(c for c, _, _ in spans)
            out.append(masks.text_name(endpoint))
            return
    if isinstance(a, dict) and isinstance(b, dict) and set(a) == set(b):
        for key in a:
            learn_body(masks, endpoint, a[key], b[key], f"{path}.{key}", out, bad)
        return
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for x, y in zip(a, b, strict=True):
            learn_body(masks, endpoint, x, y, f"{path}[]", out, bad)
        return
    if _scalar(a) and _scalar(b):
        masks.fields.add((endpoint, path))
        out.append(masks.field_name(endpoint, path))
        return
    bad.append(f"{endpoint}'s {path} (not the same shape twice)")


def learn_tables(
    masks: Masks,
    a: Mapping[str, Sequence[tuple[Any, ...]]],
    b: Mapping[str, Sequence[tuple[Any, ...]]],
    columns: Callable[[str], Sequence[str]],
    maskable: Callable[[str, str], bool],
    out: list[str],
    bad: list[str],
    keys: Callable[[str], Sequence[int]] = lambda name: (),
    scope: frozenset[str] = frozenset(),
) -> bool:
    """Mask the cells whose values differ between two serial runs' final rows: in the
    rows of the same key where the rows pair by key (``keys``: the key's positions),
    else in every row of the column; for examples whose endpoints include ``scope``.
    Returns whether anything new was masked (the rows must then be normalized again:
    a masked column no longer names an inserted row)."""
    new = False
    for name in sorted(set(a) | set(b)):
        rows_a, rows_b = a.get(name, ()), b.get(name, ())
        if Counter(rows_a) == Counter(rows_b):
            continue
        if len(rows_a) != len(rows_b):
            bad.append(f"{name} has {len(rows_a)} rows once and {len(rows_b)} once")
            continue
        cells = _paired_cells(rows_a, rows_b, keys(name))
        if cells is None:  # rows that cannot be paired: the whole column, in this scope
            cells = [
                (position, ANY_ROW)
                for position in range(len(columns(name)))
                if Counter(r[position] for r in rows_a) != Counter(r[position] for r in rows_b)
            ]
        found = False
        for position, key in cells:
            column = columns(name)[position]
            if maskable(name, column) and not masks.cell(name, column, scope, key):
                masks.mask_cell(name, column, scope, key)
                out.append(f"{name}.{column}")
                found = new = True
        if not found:
            bad.append(f"{name}'s rows differ (not one column: rows pair differently)")
    return new


class _AnyRow:
    def __repr__(self) -> str:
        return "ANY_ROW"


ANY_ROW: Any = _AnyRow()


def _paired_cells(
    rows_a: Sequence[tuple[Any, ...]], rows_b: Sequence[tuple[Any, ...]], positions: Sequence[int]
) -> list[tuple[int, Any]] | None:
    """(column position, row key) of each cell that differs between rows of the same
    key, or None when the rows do not pair one to one by key."""
    if not positions:
        return None

    def key_of(row: tuple[Any, ...]) -> Any:
        return tuple(plain(row[p]) for p in positions)

    try:
        by_a = {key_of(r): r for r in rows_a}
        by_b = {key_of(r): r for r in rows_b}
    except TypeError:
        return None
    if len(by_a) != len(rows_a) or by_a.keys() != by_b.keys():
        return None
    return [
        (position, key)
        for key, row in by_a.items()
        for position, (x, y) in enumerate(zip(row, by_b[key], strict=True))
        if x != y
    ]


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | Varies | MaskedText)


# -- relations --------------------------------------------------------------------------


class AnswerPosition(NamedTuple):
    """Where a masked value is in an answer: a request's (``where`` "response") or an
    observer's ("observer"), by its path ("body.token", "body.items[0].id")."""

    where: str
    request: int  # the request's (or the observer's) index, from 0
    path: str

    def text(self) -> str:
        who = f"R{self.request + 1}" if self.where == "response" else f"observer {self.request + 1}"
        return f"{who}'s {self.path}"


class CellPosition(NamedTuple):
    """Where a masked value is in the final rows: a column of one row of a table (the
    row's place among the sorted rows)."""

    table: str
    row: int
    column: str

    def text(self) -> str:
        return f"{self.table.rsplit('.', 1)[-1]}.{self.column} of the final rows"


Position = AnswerPosition | CellPosition


def leaves(
    value: Any, where: str, request: int, path: str = "body"
) -> Iterator[tuple[AnswerPosition, Varies]]:
    """Every masked value inside a normalized answer (``where`` "response" or "observer"
    of request ``request``), with its position."""
    if isinstance(value, Varies):
        yield AnswerPosition(where, request, path), value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, where, request, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            yield from leaves(item, where, request, f"{path}[{n}]")


def meaningful(value: Any) -> bool:
    """A value that cannot be equal to another one by chance: a token (a string of 12
    characters or more, no spaces, not a date or time), a float with a fraction (a
    ``time()`` stamp), a very large integer. A classifier's label, a small number or a
    time to the second can."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value) and not value.is_integer()
    if isinstance(value, int):
        return abs(value) >= 10**9
    if isinstance(value, str):
        return (
            len(value) >= 12
            and not any(c.isspace() for c in value)
            and _CLOCK.fullmatch(value) is None  # two stamps of one second are equal
        )
    return False


_CLOCK = re.compile(r"[\d\-:/T.+Z]+")


@dataclass(frozen=True)
class Relation:
    """Masked values that are equal in the serial run: they must agree in the execution."""

    positions: tuple[Position, ...]


def relations(
    found: Sequence[tuple[Position, Varies]], declared: Callable[[Position, Position], bool]
) -> list[Relation]:
    """Groups of masked values equal to each other in a serial run, at least one of
    them an answer (a response or observer) or two of them cells: a token in a
    response and ``users.token``. Values that may be equal by chance form a group only
    where the spec declares the relation (``Target.relations``)."""
    by_value: dict[Any, list[Position]] = {}
    for position, leaf in found:
        try:
            by_value.setdefault(_hashable(leaf.value), []).append(position)
        except TypeError:
            continue
    groups: list[Relation] = []
    for value, positions in by_value.items():
        if len(positions) < 2:
            continue
        if not meaningful(value):
            positions = [p for p in positions if any(declared(p, q) for q in positions if q != p)]
            if len(positions) < 2:
                continue
        groups.append(Relation(tuple(positions)))
    return groups


def _hashable(value: Any) -> Any:
    if isinstance(value, list | dict):
        raise TypeError
    return value
