"""The values a path variable or a body field draws: columns present after setup, typed
from the field, or a short list."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from fuzzer.init.inputs import bodies
from fuzzer.init.inputs.viewcode import Declared
from fuzzer.init.plan import Route, Table
from fuzzer.init.pysource import Call, Keyword, Node, literal

VARIABLE = re.compile(r"<(?:([a-zA-Z_][a-zA-Z0-9_]*)(\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")


_NUMBERS = re.compile(
    r"^(count|amount|quantity|qty|number|value|price|delta|votes?|score|rating|points|"
    r"stock|balance|total|age|size|step|n|limit)$"
)


def value_source(name: str, rows: Mapping[str, Table], numeric: bool = False) -> Node:
    """A JSON field's values from its name: a column of that name (one value present
    after setup, or a new one), a password, an id of the table it names, else words."""
    lowered = name.lower()
    if "password" in lowered:
        return literal("Secret-pass-1")
    column = named_column(name, rows, numeric=False)
    if column is not None:
        new = bodies.WORDS[0] + ("@example.com" if "email" in lowered else "")
        present = Call("values_of", (literal(column), "limit=1"))
        return Call("st.one_of", (Call("st.just", (literal(new),)), present))
    if lowered == "id" or lowered.endswith("_id"):
        found = matching_column(name, "", rows, numeric=True)
        if found is not None:
            return Call("values_of", (literal(f"{found[0]}.{found[1]}"), "otherwise=[1, 2]"))
        return Call("st.sampled_from", ("[1, 2]",))
    if "email" in lowered:
        return Call("st.sampled_from", (literal([w + "@example.com" for w in bodies.WORDS]),))
    if numeric or _NUMBERS.match(lowered):
        return Call("st.integers", ("1", "3"))
    return Call("st.sampled_from", (literal(list(bodies.WORDS)),))


def schema_value(name: str, declared: Declared, rows: Mapping[str, Table]) -> Node:
    """A marshmallow field's values: its ``OneOf`` choices, a fixed date, time or UUID,
    a URL, else as a JSON field of that name (numbers from a ``Range``'s low end)."""
    kind = declared.kind
    if declared.choices:
        return Call("st.sampled_from", (literal(list(declared.choices)[:3]),))
    if kind == "bool":
        return "st.booleans()"
    if kind in bodies.FIXED:
        return literal(bodies.FIXED[kind])
    if kind == "url":
        return Call(
            "st.sampled_from", (literal([f"https://example.com/{w}" for w in bodies.WORDS]),)
        )
    if kind == "email" and "email" not in name.lower():
        return Call("st.sampled_from", (literal([w + "@example.com" for w in bodies.WORDS]),))
    source = value_source(name, rows, numeric=kind in ("int", "float"))
    if declared.low is not None and isinstance(source, Call) and source.name == "st.integers":
        low = math.ceil(declared.low)
        return Call("st.integers", (str(low), str(low + 2)))
    return source


def named_column(name: str, rows: Mapping[str, Table], numeric: bool) -> str | None:
    """``table.name`` when exactly one table has a column of that name with a value
    after setup."""
    owners = [t for t, info in rows.items() if name in info.columns and _has_value(info, name)]
    if len(owners) == 1 and _kind_fits(rows[owners[0]], name, numeric):
        return f"{owners[0]}.{name}"
    return None


def _has_value(table: Table, column: str) -> bool:
    position = table.columns.index(column)
    return any(row[position] is not None for row in table.rows)


def form_columns(form: type, rows: Mapping[str, Table]) -> dict[str, Node]:
    """Text fields named like a column of exactly one table (a username, a tag name): one
    value present after setup, or one new value. Taken and new names take different
    paths through a view (an error, or an insert), and races hide in both."""
    from wtforms.fields.core import UnboundField

    found: dict[str, Node] = {}
    for klass in form.__mro__:
        for name, value in vars(klass).items():
            if not isinstance(value, UnboundField) or value.field_class.__name__ not in (
                "StringField",
                "EmailField",
                "TextAreaField",
            ):
                continue
            column = named_column(name, rows, numeric=False)
            if column is not None:
                new = bodies.WORDS[0] + ("@example.com" if "email" in name else "")
                present = Call("values_of", (literal(column), "limit=1"))
                found[name] = Call("st.one_of", (Call("st.just", (literal(new),)), present))
    return found


_CHOICE_FIELDS = ("SelectField", "RadioField", "SelectMultipleField")


def choice_sources(
    app: Any, form: type, rows: Mapping[str, Table]
) -> tuple[dict[str, Node], list[str]]:
    """Select and radio fields whose choices the app computes at request time: the
    choices the form holds when made inside a request context after setup (set in its
    ``__init__``), else the keys of the table the field names (``option`` ->
    ``option.id``); and a note on each."""
    from wtforms.fields.core import UnboundField

    dynamic = [
        (name, value)
        for klass in form.__mro__
        for name, value in vars(klass).items()
        if isinstance(value, UnboundField)
        and value.field_class.__name__ in _CHOICE_FIELDS
        and not value.kwargs.get("choices")
        and not (len(value.args) > 2 and value.args[2])
    ]
    if not dynamic:
        return {}, []
    evaluated = _evaluated_choices(app, form)
    found: dict[str, Node] = {}
    notes: list[str] = []
    for name, unbound in dynamic:
        values = evaluated.get(name)
        if values:
            found[name] = Call("st.sampled_from", (literal(values[:3]),))
            notes.append(f"field {name!r}: the choices its form makes after setup")
            continue
        numeric = unbound.kwargs.get("coerce") in (int, float)
        column = matching_column(f"{name}_id", "", rows, True) or matching_column(
            name, "", rows, numeric
        )
        if column is not None:
            found[name] = Call("values_of", (literal(".".join(column)), "limit=3"))
            notes.append(
                f"CHECK: field {name!r} gets its choices at request time: drawn from "
                f"{'.'.join(column)}"
            )
    return found, notes


def _evaluated_choices(app: Any, form: type) -> dict[str, list[Any]]:
    """The choices of each field of ``form`` made in a request context of ``app``."""
    try:
        with app.test_request_context("/", method="POST"):
            made = form(meta={"csrf": False})
            return {
                f.name: [c[0] if isinstance(c, list | tuple) else c for c in f.choices]
                for f in made
                if getattr(f, "choices", None)
            }
    except Exception:
        return {}


def path_source(rule: str, rows: Mapping[str, Table], route: Route, probe: Any = None) -> Node:
    matches = list(VARIABLE.finditer(rule))
    if not matches:
        return literal(rule)
    arguments: list[Node] = [literal(rule)]
    for match in matches:
        converter, args, name = match.group(1) or "string", match.group(2) or "", match.group(3)
        segment = rule[: match.start()].rstrip("/").rsplit("/", 1)[-1]
        source, comment = _variable_source(converter, args, name, segment, rows)
        if comment.startswith("CHECK: no column") and probe is not None and len(matches) == 1:
            found = probe(route.method, rule, name, converter in ("int", "float"))
            if found is not None:
                table, column = found
                source = Call("values_of", (literal(f"{table}.{column}"), "limit=3"))
                comment = (
                    f"the values of {table}.{column}: no column is named like it, and "
                    f"fuzzer init's request with one of them answered and "
                    + ("wrote" if route.method != "GET" else "found it")
                )
        arguments.append(Keyword(name, source))
        route.variables.append(f"<{name}>: {comment}")
    return Call("paths", tuple(arguments))


def _variable_source(
    converter: str, args: str, name: str, segment: str, rows: Mapping[str, Table]
) -> tuple[Node, str]:
    if converter == "any":
        choices = [c.strip().strip("'\"") for c in args.strip("()").split(",") if c.strip()]
        return Call("st.sampled_from", (literal(choices[:3]),)), "the rule's own choices"
    numeric = converter in ("int", "float")
    column = matching_column(name, segment, rows, numeric)
    fallback: list[Any]
    if converter == "int":
        fallback = [1, 2]
    elif converter == "float":
        fallback = [1.0, 2.0]
    elif converter == "uuid":
        fallback = ["00000000-0000-4000-8000-000000000001"]
    else:
        fallback = list(bodies.WORDS)
    if column is None:
        return (
            Call("st.sampled_from", (literal(fallback),)),
            "CHECK: no column to draw it from; a short list",
        )
    table, col = column
    present = len({row[rows[table].columns.index(col)] for row in rows[table].rows})
    source = Call("values_of", (literal(f"{table}.{col}"), Keyword("otherwise", literal(fallback))))
    return source, f"the values of {table}.{col} after setup ({present} now)"


def matching_column(
    name: str, segment: str, rows: Mapping[str, Table], numeric: bool
) -> tuple[str, str] | None:
    """The column a path variable names: ``post_id`` or ``/post/<int:id>`` -> posts.id,
    ``/user/<username>`` -> users.username, ``<slug>`` -> the one table with a slug."""
    stem = name[:-3] if name.endswith("_id") else ""
    # <photo_id> names photos wherever it stands (/delete/tag/<photo_id>/<tag_id>); the
    # segment before it names the table of a plain <id> or <username>
    related = [t for t in rows if stem and _singular(t.rsplit(".", 1)[-1]) == _singular(stem)]
    if not related and segment:
        related = [t for t in rows if _singular(t.rsplit(".", 1)[-1]) == _singular(segment)]
    for table in related:
        info = rows[table]
        keyed = numeric or name == "id" or name.endswith("_id")
        candidates = [name] + (list(info.primary_key) if keyed else [])
        if not numeric:
            candidates += ["username", "name", "slug", "login", "handle"]
        for column in candidates:
            if column in info.columns and _kind_fits(info, column, numeric):
                return table, column
    owners = [t for t, info in rows.items() if name in info.columns and _has_value(info, name)]
    if len(owners) == 1 and _kind_fits(rows[owners[0]], name, numeric):
        return owners[0], name
    return None


def _kind_fits(table: Table, column: str, numeric: bool) -> bool:
    kind = table.types[table.columns.index(column)].upper()
    is_number = any(k in kind for k in ("INT", "NUMERIC", "FLOAT", "REAL", "DECIMAL"))
    return is_number == numeric


def _singular(word: str) -> str:
    word = word.lower().replace("-", "_")
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ses", "xes")):
        return word[:-2]
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word
