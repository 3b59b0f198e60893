"""Where an outcome and a serial reference's outcome disagree: answers, observers,
rows cell by cell, and the relations masked values keep (DESIGN.md §5)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from fuzzer.db import Rows
from fuzzer.judge import masks as masking
from fuzzer.judge.masks import AnswerPosition, CellPosition, Position, Relation, Varies, plain
from fuzzer.judge.normalise import Normalizer
from fuzzer.judge.verdict import (
    Difference,
    Outcome,
    at,
    is_new_label,
    key_value,
    short,
    unpack,
)
from fuzzer.model import Scenario


def compare(
    normalizer: Normalizer, actual: Outcome, expected: Outcome, order: Sequence[int] | None
) -> list[Difference]:
    """Every difference; answers of the requests in ``order`` only (``None``: all)."""
    actual, expected = normalizer.agree(actual, expected)
    differences: list[Difference] = []
    for i in range(len(actual.responses)) if order is None else order:
        if actual.responses[i] != expected.responses[i]:
            differences.append(
                Difference(
                    "response",
                    unpack(actual.responses[i]),
                    unpack(expected.responses[i]),
                    request=i,
                )
            )
    for i, (a, e) in enumerate(zip(actual.observers, expected.observers, strict=True)):
        if a != e:
            differences.append(Difference("observer", unpack(a), unpack(e), request=i))
    for name in sorted(set(actual.tables) | set(expected.tables)):
        differences += table_differences(
            normalizer, name, actual.tables.get(name, ()), expected.tables.get(name, ())
        )
    if not differences and normalizer.masks:
        answered = range(len(actual.responses)) if order is None else order
        differences = broken_relations(normalizer, actual, expected, answered)
    return differences


def broken_relations(
    normalizer: Normalizer, actual: Outcome, expected: Outcome, order: Sequence[int]
) -> list[Difference]:
    """Masked values equal to each other in the serial run that are not in the
    execution: a token answered that is not the one stored."""
    theirs = dict(masked_leaves(actual, order))
    groups: list[Relation] = masking.relations(
        list(masked_leaves(expected, order)), normalizer.declared
    )
    differences: list[Difference] = []
    for group in groups:
        cells = [p for p in group.positions if isinstance(p, CellPosition)]
        answers = [p for p in group.positions if isinstance(p, AnswerPosition)]
        anchor: Position
        if cells:  # answers must name a value the cell holds in the execution
            anchor = cells[0]
            allowed = _cell_values(actual, anchor)
        elif answers and answers[0] in theirs:  # answers must agree with each other
            anchor = answers[0]
            allowed = [theirs[anchor].value]
        else:
            continue
        for position in answers:
            if position == anchor or position not in theirs:
                continue
            if theirs[position].value in allowed:
                continue
            where = actual.responses if position.where == "response" else actual.observers
            differences.append(
                Difference(
                    position.where,
                    unpack(where[position.request]),
                    f"{position.text()} equal to {anchor.text()}, as in "
                    f"every serial run (a value that varies, but must agree): "
                    f"{short(plain(allowed[0]) if allowed else None)}",
                    request=position.request,
                )
            )
    return differences


def _cell_values(outcome: Outcome, position: CellPosition) -> list[Any]:
    """The values a cell may hold in an execution: the cell of the same row, or of
    any row equal to it but for masked values (which of such rows is which cannot
    be told)."""
    table, row, column = position
    rows = outcome.tables.get(table, ())
    if row >= len(rows):
        return []
    values = []
    for other in rows:
        if other == rows[row]:
            values += [
                v.value for v in other if isinstance(v, Varies) and v.name.endswith(f".{column}")
            ]
    return values


def table_differences(
    normalizer: Normalizer, name: str, actual: Rows, expected: Rows
) -> list[Difference]:
    """The cells that differ in rows of the same key, then the rows only one side has."""
    if actual == expected:
        return []
    extra = Counter(actual) - Counter(expected)
    missing = Counter(expected) - Counter(actual)
    known = name in normalizer.tables
    positions = normalizer.key_positions(name) if known else ()
    columns = normalizer.columns(name) if known else ()
    differences: list[Difference] = []
    if positions:
        differences += _changed_cells(name, extra, missing, positions, columns)
    for row in (+extra).elements():
        differences.append(
            Difference("extra-row", plain(dict(zip(columns, row, strict=False))), None, table=name)
        )
    for row in (+missing).elements():
        differences.append(
            Difference(
                "missing-row", None, plain(dict(zip(columns, row, strict=False))), table=name
            )
        )
    return differences


def _changed_cells(
    name: str,
    extra: Counter[tuple[Any, ...]],
    missing: Counter[tuple[Any, ...]],
    positions: Sequence[int],
    columns: Sequence[str],
) -> list[Difference]:
    """Pairs an extra row with the missing row of the same key (not a new row's: those
    are named by content), takes both out of the counters, and names the cells."""

    def key_of(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(row[p] for p in positions)

    differences: list[Difference] = []
    missing_by_key = {key_of(row): row for row in missing.elements()}
    for row in list(extra.elements()):
        key = key_of(row)
        if any(is_new_label(k) for k in key):
            continue  # inserted rows are named by content: not the same row
        other = missing_by_key.pop(key, None)
        if other is None:
            continue
        extra[row] -= 1
        missing[other] -= 1
        for column, a, e in zip(columns, row, other, strict=True):
            if a != e:
                differences.append(
                    Difference(
                        "cell",
                        plain(a),
                        plain(e),
                        table=name,
                        key=key_value(tuple(plain(k) for k in key)),
                        column=column,
                    )
                )
    return differences


def masked_leaves(outcome: Outcome, order: Sequence[int]) -> list[tuple[Position, Varies]]:
    """Every masked value of an outcome, by position (answers of the requests that ran,
    observers, cells by the row's place among the sorted rows)."""
    found: list[tuple[Position, Varies]] = []
    for i in order:
        answer = outcome.responses[i]
        if answer is not None:
            found += masking.leaves(answer[1], "response", i)
    for i, answer in enumerate(outcome.observers):
        found += masking.leaves(answer[1], "observer", i)
    for name, rows in outcome.tables.items():
        for n, row in enumerate(rows):
            for value in row:
                if isinstance(value, Varies):
                    column = value.name.rsplit(".", 1)[-1]
                    found.append((CellPosition(name, n, column), value))
    return found


def difference_name(difference: Difference, scenario: Scenario) -> str:
    """Where two serial runs differ, without the values (so that reasons group)."""
    d = difference
    if d.where == "response":
        return f"{at([r.endpoint for r in scenario.requests], d.request or 0)}'s answer"
    if d.where == "observer":
        return f"the observer {at([r.endpoint for r in scenario.observers], d.request or 0)}"
    if d.where == "cell":
        return f"{d.table}.{d.column}"
    return f"the rows of {d.table}"
