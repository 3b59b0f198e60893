"""Request bodies for a generated spec, as Python source, from the app's own WTForms
forms (the OpenAPI document's schemas: openapi.py).

Values are drawn from small domains on purpose: two requests only race when they name
the same thing, so two candidate strings beat a thousand random ones. Every function
returns the source of an expression (a value, a strategy, or a dict holding strategies)
and says what it could not tell in comments.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fuzzer.init.pysource import Call, Dict, Node, flat, literal

__all__ = ["FIXED", "MOMENT", "WORDS", "Body", "fit", "form_body", "number_fields"]

WORDS = ("alpha", "bravo")


@dataclass
class Body:
    """A body expression, and what the user should check about it."""

    node: Node
    checks: list[str] = field(default_factory=list)

    @property
    def source(self) -> str:
        return flat(self.node)


def form_body(form: type, column_values: Mapping[str, Node] | None = None) -> Body:
    """A form's fields as a dict of values and strategies, from its field types and
    validators: text from two short words (or a column's values where a field is named
    like one), numbers from the low end of their range, choices from the choices."""
    from wtforms.fields.core import UnboundField

    fields = []
    for klass in reversed(form.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, UnboundField):
                fields.append((value.creation_counter, value.kwargs.get("name") or name, value))
    fields.sort(key=lambda item: item[0])
    parts: list[tuple[Node, Node]] = []
    checks: list[str] = []
    passwords: dict[str, str] = {}
    for _, name, unbound in fields:
        source, check = _field_source(name, unbound, passwords, column_values or {})
        if check:
            checks.append(check)
        if source is not None:
            parts.append((literal(name), source))
    return Body(Dict(tuple(parts)), checks)


_NUMBER_FIELDS = (
    "IntegerField",
    "DecimalField",
    "FloatField",
    "IntegerRangeField",
    "DecimalRangeField",
)
#: the moment a date or time field sends, in each field's default format
MOMENT = datetime.datetime(2024, 1, 1, 10, 0)
_TIME_FORMATS = {
    "DateField": "%Y-%m-%d",
    "DateTimeField": "%Y-%m-%d %H:%M:%S",
    "DateTimeLocalField": "%Y-%m-%dT%H:%M",
    "TimeField": "%H:%M",
    "MonthField": "%Y-%m",
}
#: what a marshmallow field of each kind sends
FIXED = {
    "date": MOMENT.strftime("%Y-%m-%d"),
    "datetime": MOMENT.isoformat(),
    "time": MOMENT.strftime("%H:%M:%S"),
    "uuid": "00000000-0000-4000-8000-000000000001",
}


def number_fields(form: type) -> set[str]:
    """The fields of a form that take a number: typed so, or choices coerced to one."""
    from wtforms.fields.core import UnboundField

    return {
        value.kwargs.get("name") or name
        for klass in form.__mro__
        for name, value in vars(klass).items()
        if isinstance(value, UnboundField)
        and (
            value.field_class.__name__ in _NUMBER_FIELDS
            or value.kwargs.get("coerce") in (int, float)
        )
    }


def _field_source(
    name: str, unbound: Any, passwords: dict[str, str], columns: Mapping[str, Node]
) -> tuple[Node | None, str]:
    kind = unbound.field_class.__name__
    validators = list(unbound.kwargs.get("validators") or [])
    if len(unbound.args) > 1 and isinstance(unbound.args[1], list | tuple):
        validators += list(unbound.args[1])
    by_type = {type(v).__name__: v for v in validators}
    if kind in ("SubmitField", "CSRFTokenField") or name == "csrf_token":
        return None, ""
    if kind in ("FileField", "MultipleFileField"):
        return None, f"field {name!r} uploads a file: the fuzzer sends forms without files"
    typed = _typed_field(kind, name, unbound, by_type, columns)
    if typed is not None:
        return typed
    return _text_field(kind, name, by_type, passwords, columns)


def _typed_field(
    kind: str, name: str, unbound: Any, by_type: Mapping[str, Any], columns: Mapping[str, Node]
) -> tuple[Node, str] | None:
    """A boolean, number, choice or date field's source; None for a text field."""
    if kind == "BooleanField":
        return "st.booleans()", ""
    if kind in _NUMBER_FIELDS:
        low, high = 1, 3
        number = by_type.get("NumberRange")
        if number is not None:
            low = int(number.min) if number.min is not None else low
            high = int(number.max) if number.max is not None else low + 2
        return Call("st.integers", (str(low), str(min(high, low + 2)))), ""
    if kind in ("SelectField", "RadioField", "SelectMultipleField"):
        if name in columns:  # choices computed at request time, found after setup
            return columns[name], ""
        choices = unbound.kwargs.get("choices")
        if isinstance(choices, list | tuple) and choices:
            values = [c[0] if isinstance(c, list | tuple) else c for c in choices][:3]
            return Call("st.sampled_from", (literal(values),)), ""
        return literal(WORDS[0]), f"field {name!r} has dynamic choices: put real ones in"
    if kind in _TIME_FORMATS:  # in the field's own format when it declares one
        form = unbound.kwargs.get("format") or _TIME_FORMATS[kind]
        form = form[0] if isinstance(form, list | tuple) and form else form
        return literal(MOMENT.strftime(str(form))), ""
    return None


def _text_field(
    kind: str,
    name: str,
    by_type: Mapping[str, Any],
    passwords: dict[str, str],
    columns: Mapping[str, Node],
) -> tuple[Node, str]:
    """A password, a confirmation, an e-mail address or a word."""
    low, high = _length(by_type.get("Length"))
    equal = by_type.get("EqualTo")
    if equal is not None and equal.fieldname in passwords:
        return passwords[equal.fieldname], ""
    if kind == "PasswordField":
        value = literal(fit("Secret-pass-1", low, high))
        passwords[name] = value
        return value, ""
    if name in columns:
        return columns[name], ""
    if "URL" in by_type or kind == "URLField":
        values = [f"https://example.com/{w}" for w in WORDS]
    elif "Email" in by_type or kind == "EmailField" or "email" in name.lower():
        values = [fit(w, max(low - 12, 1), max(high - 12, 1)) + "@example.com" for w in WORDS]
    else:
        values = [fit(w, low, high) for w in WORDS]
    check = ""
    if "Regexp" in by_type:
        check = f"field {name!r} must match {by_type['Regexp'].regex.pattern!r}"
    return Call("st.sampled_from", (literal(values),)), check


def _length(validator: Any) -> tuple[int, int]:
    if validator is None:
        return 1, 64
    low = validator.min if validator.min is not None and validator.min >= 0 else 1
    high = validator.max if validator.max is not None and validator.max >= 0 else 64
    return max(low, 1), max(high, low, 1)


def fit(word: str, low: int, high: int) -> str:
    while len(word) < low:
        word += word
    return word[: max(high, 1)] if len(word) > high else word[: max(len(word), low)]
