"""What an answer says was wrong with a request: the fields a form or a JSON error names,
and what it says of each.

A JSON answer names them under ``errors`` (``{"errors": {"amount": ["Too big"]}}``),
``error`` or ``message``. An HTML page re-renders the form: WTForms templates put each
field's errors after it (``<ul class="errors"><li>…``, Bootstrap's ``<div
class="invalid-feedback">``, ``<span class="text-danger">``, a ``has-error`` group's
``help-block``), and flashed messages stand apart (``<div class="alert
alert-danger">``, ``<ul class="flashes">``). The page is read with the standard
library's HTML parser: a field's error belongs to the last form control before it, and
each item of an error list is a message of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

__all__ = ["Complaint", "complaints", "summary"]


@dataclass(frozen=True)
class Complaint:
    field: str  # "" when the message names no field (a flashed message)
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def about(self, name: str) -> bool:
        """Whether it is about the field ``name``: it names it, or a message that names
        no field mentions it as a word ("emoji must be one of …")."""
        if self.field:
            return self.field == name
        return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", self.message) is not None

    def allowed(self) -> list[str]:
        """The values the message says are allowed: quoted after "one of", "must be",
        "choose from", "allowed", "expected" (``['clap', 'heart']``, ``"S", "M"``), or
        the words of a list after "one of:" (``Must be one of: S, M, L.``)."""
        found = list(_ALLOWED.finditer(self.message))  # "must be one of": after the last
        if not found:
            return []
        rest = self.message[found[-1].end() :]
        quoted = [a or b for a, b in re.findall(r"'([^']{1,40})'|\"([^\"]{1,40})\"", rest)]
        if quoted:
            return list(dict.fromkeys(quoted))
        listed = re.match(r"\s*:?\s*([\w.-]+(?:\s*(?:,|\bor\b)\s*[\w.-]+)+)", rest)
        if listed is None:
            return []
        words = re.split(r"\s*(?:,|\bor\b)\s*", listed.group(1))
        return [w.rstrip(".") for w in words if w.rstrip(".")]

    def missing(self) -> list[str]:
        """The fields it says are missing: its own field when its message says so
        ("Missing data for required field."), else the names a message about required
        or missing fields quotes ("'name' is required", ``missing field "to"``) or puts
        before "is required" (``title is required``)."""
        if not _MISSING.search(self.message):
            return []
        if self.field:
            return [self.field]
        quoted = [a or b or c for a, b, c in _QUOTED.findall(self.message)]
        bare = re.findall(r"\b(\w+) (?:field |parameter |key )?is (?:a )?required", self.message)
        return list(dict.fromkeys(quoted or bare))

    def number(self, name: str) -> bool:
        """Whether it says the field ``name`` takes a number ("'cost' must be a int")."""
        return self.about(name) and _NUMBER.search(self.message) is not None


_NUMBER = re.compile(r"\b(?:int|integer|number|numeric|float|decimal)s?\b", re.IGNORECASE)
_MISSING = re.compile(r"\b(?:required|missing)\b", re.IGNORECASE)
_QUOTED = re.compile(r"'(\w{1,40})'|\"(\w{1,40})\"|`(\w{1,40})`")

_ALLOWED = re.compile(
    r"\b(?:one of|must be|choose from|allowed(?: values)?(?: are)?|expected|valid (?:values|"
    r"choices)(?: are)?)\b",
    re.IGNORECASE,
)


def complaints(body: Any) -> list[Complaint]:
    """What an answer's body (parsed JSON, or text) says was wrong, in its order."""
    if isinstance(body, str):
        stripped = body.lstrip()
        if stripped.startswith(("{", "[")):
            try:
                body = json.loads(body)
            except ValueError:
                return []
        elif "<" in stripped:
            return _html_complaints(body)
        else:
            return []
    if isinstance(body, Mapping):
        return _json_complaints(body)
    return []


def summary(found: list[Complaint], width: int = 100) -> str:
    """One line: the first complaint of each field, those that name a field first."""
    seen: set[str] = set()
    parts = []
    for complaint in sorted(found, key=lambda c: not c.field):
        if complaint.field not in seen:
            seen.add(complaint.field)
            parts.append(str(complaint))
    text = "; ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def _json_complaints(body: Mapping[str, Any]) -> list[Complaint]:
    errors = body.get("errors") or body.get("error") or body.get("message")
    if isinstance(errors, Mapping):
        return [
            Complaint(str(name), _first(message)) for name, message in errors.items() if message
        ]
    if isinstance(errors, list):
        return [Complaint("", _first(e)) for e in errors if e]
    return [Complaint("", str(errors))] if errors else []


def _first(message: Any) -> str:
    while isinstance(message, list | tuple) and message:
        message = message[0]
    if isinstance(message, Mapping):  # nested: {"items": {"0": ["…"]}}
        return "; ".join(f"{k}: {_first(v)}" for k, v in message.items())
    return str(message)


#: classes of an element holding one field's errors
_FIELD_ERRORS = frozenset(
    {"errors", "error", "invalid-feedback", "field-error", "form-error", "errorlist"}
    | {"text-danger", "has-text-danger", "help-inline", "error-message", "form-errors"}
)
#: classes of a flashed or general message
_FLASHED = frozenset(
    {"alert-danger", "alert-error", "alert-warning", "flashes", "flash-error"}
    | {"notification is-danger", "message-error", "error-flash"}
)
_CONTROLS = frozenset({"input", "select", "textarea"})
_VOID = frozenset({"input", "br", "hr", "img", "meta", "link", "area", "base", "col", "wbr"})


def _html_complaints(text: str) -> list[Complaint]:
    reader = _Reader()
    try:
        reader.feed(text)
        reader.close()
    except Exception:  # a page the parser gives up on: what it read so far
        return reader.found
    for position in range(len(reader.stack) - 1, -1, -1):  # left open at the end
        reader._close(position)
    return reader.found


@dataclass
class _Open:
    tag: str
    owner: str | None  # the field; None: not an error element; "" a general message
    group: bool = False  # a Bootstrap 3 "has-error" group
    listed: bool = False  # its messages are the items of a list (``<li>``), one each
    text: list[str] = field(default_factory=list)


class _Reader(HTMLParser):
    """Collects the text of error elements, each with the field it belongs to."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[Complaint] = []
        self.stack: list[_Open] = []
        self.last_control = ""  # the name of the last form control seen
        self.skip = 0  # inside <script> or <style>
        self.group_error = 0  # inside a Bootstrap 3 "has-error" group

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        classes = set(attributes.get("class", "").split())
        if tag in ("script", "style"):
            self.skip += 1
        if tag in _CONTROLS and attributes.get("name") and attributes.get("type") != "hidden":
            self.last_control = attributes["name"]
        if tag in _VOID:
            return
        kind = self._kind(tag, classes, attributes.get("class", ""))
        if tag == "li" and self.stack and self.stack[-1].owner is not None:
            kind = self.stack[-1].owner  # one message of an error list
            self.stack[-1].listed = True
        group = "has-error" in classes
        self.group_error += group
        self.stack.append(_Open(tag, kind, group))

    def _kind(self, tag: str, classes: set[str], raw: str) -> str | None:
        """The field an element's errors belong to; "" general; None no error element."""
        if any(c in _FLASHED for c in classes) or any(c in raw for c in _FLASHED if " " in c):
            return ""
        if "flash" in classes and classes & {"error", "danger"}:
            return ""
        if classes & _FIELD_ERRORS or (self.group_error and "help-block" in classes):
            return self.last_control
        return None

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        for depth in range(len(self.stack) - 1, -1, -1):
            if self.stack[depth].tag == tag:  # closes it and what was left open inside it
                for position in range(len(self.stack) - 1, depth - 1, -1):
                    self._close(position)
                del self.stack[depth:]
                return

    def _close(self, position: int) -> None:
        element = self.stack[position]
        self.group_error -= element.group
        if element.owner is None or element.listed:
            return
        text = " ".join(" ".join(element.text).split())
        # an error element inside another one: its text counts there, once; a lone
        # "*" (a required field's mark) says nothing
        inner = any(e.owner is not None and not e.listed for e in self.stack[:position])
        if not inner and any(c.isalpha() for c in text):
            self.found.append(Complaint(element.owner, text[:200]))

    def handle_data(self, data: str) -> None:
        if self.skip or not data.strip():
            return
        for element in self.stack:
            if element.owner is not None:
                element.text.append(data)
