"""Values by probing, when names tell nothing. Requests go through the app's test client as
the first signed-in user (a Flask-Login session, else the headers of the first identity
that has some), and the scratch database is put back after each that wrote.

* A path variable no column is named like (``/follow/<recipient>``) is tried with the
  first value of each column of a matching type; the column whose value the endpoint
  answers 2xx (a page) or 2xx/3xx and writes (a change) for is the one it draws from.
* The form or JSON fields of a change whose simplest request does not write: each
  field that draws invented values is tried with the values of columns of its type
  from every table (the keys foreign keys point to first for a number, unique text
  columns first for a word), the fields the answer complains about first. A column
  is kept when the request then writes, or when the answer stops complaining about
  that field (two fields may each need one); the first that writes ends the probe.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fuzzer.init.inputs.complaints import complaints, summary
from fuzzer.init.inputs.named import named_fields
from fuzzer.init.inputs.values import value_source
from fuzzer.init.plan import Plan, Route, Table
from fuzzer.init.pysource import Call, Dict, Keyword, List, Node, flat, literal

__all__ = ["BodyFound", "Field", "Prober", "probe_body", "prober", "simplest"]

_CANDIDATES = 12  # values tried at most, per variable or field
_BODY_REQUESTS = 40  # requests at most, per body
_NUMBER_TYPES = ("INT", "NUMERIC", "FLOAT", "REAL", "DECIMAL")


@dataclass(frozen=True)
class Answer:
    status: int
    wrote: bool
    body: Any  # parsed JSON, or the text

    def works(self, method: str) -> bool:
        if method == "GET":
            return 200 <= self.status < 300
        return 200 <= self.status < 400 and self.wrote

    def fields(self, names: Iterable[str] = ()) -> set[str]:
        """The fields the answer complains about: those it names, and of ``names`` those
        a message that names no field mentions."""
        said = complaints(self.body)
        return {c.field for c in said if c.field} | {
            n for n in names if any(not c.field and c.about(n) for c in said)
        }

    def allowed(self, name: str) -> list[str]:
        """The values the answer says the field ``name`` allows."""
        return next((a for c in complaints(self.body) if c.about(name) and (a := c.allowed())), [])


@dataclass(frozen=True)
class Field:
    """A body field that may be probed: its source in the spec and its kind."""

    name: str
    source: Node
    numeric: bool


@dataclass
class BodyFound:
    columns: dict[str, tuple[str, str]] = field(default_factory=dict)  # field -> column
    wrote: bool = False  # the last request sent wrote
    said: str = ""  # what the last answer complained about, when it did not write
    quieted: set[str] = field(default_factory=set)  # fields kept because it stopped complaining
    named: dict[str, list[Any]] = field(
        default_factory=dict
    )  # field -> the values its answer named
    added: dict[str, Field] = field(default_factory=dict)  # fields only an answer named


def prober(app: Any, plan: Plan, rows: Mapping[str, Table]) -> Prober:
    return Prober(app, plan, rows)


class Prober:
    """``probe(method, rule, variable, numeric)``: the ``(table, column)`` a path variable
    draws from; ``probe.body(...)``: the columns a body's fields draw from."""

    def __init__(self, app: Any, plan: Plan, rows: Mapping[str, Table]) -> None:
        self.app, self.plan, self.rows = app, plan, rows
        self._copies: dict[str, str] | None = None
        self._headers: dict[str, str] | None = None  # the first identity's, without Flask-Login

    def __call__(self, method: str, rule: str, variable: str, numeric: bool) -> Any:
        for table, column, value in list(_path_candidates(self.rows, numeric))[:_CANDIDATES]:
            path = rule.replace(_placeholder(rule, variable), str(value))
            if self.send(method, path).works(method):
                return table, column
        return None

    def body(self, method: str, path: str, kind: str, fields: Sequence[Field]) -> BodyFound:
        """Probe the fields that draw invented values (a short list of words or numbers)
        until the request writes; the rest keep their simplest value. One field at a
        time first; then two fields of one type at once, with two rows of one column
        (a transfer's ``from`` and ``to``)."""
        sent = {f.name: simplest(f.source, self.rows) for f in fields}
        search = _Search(self, method, path, kind, sent)
        found = BodyFound(wrote=search.answer.works(method))
        if kind == "json" and not found.wrote:
            fields = [*fields, *search.add_named(found)]
        probed = [f for f in fields if _invented(f.source)]
        if not found.wrote:
            search.one_at_a_time(probed, found)
        if not found.wrote:
            search.two_at_a_time([f for f in probed if f.name not in found.columns], found)
        if not found.wrote:
            found.said = summary(complaints(search.answer.body))
        return found

    def send(
        self, method: str, path: str, kind: str = "", body: Mapping[str, Any] | None = None
    ) -> Answer:
        """One request as the first signed-in user; the scratch files put back after it
        when it wrote."""
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        from fuzzer.execute.runner import form_data
        from fuzzer.sql import writes

        self._save()
        wrote: list[str] = []

        def seen(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            if writes(statement):
                wrote.append(statement)

        client = self.app.test_client()
        if self.plan.user_keys and getattr(self.app, "login_manager", None) is not None:
            with contextlib.suppress(Exception), client.session_transaction() as session:
                session["_user_id"] = str(self.plan.user_keys[0])
                session["_fresh"] = True
        elif self._headers is None:
            self._headers = _identity_headers(self.app, self.plan.identities)
        arguments: dict[str, Any] = {"headers": self._headers or {}}
        if kind == "json":
            arguments["json"] = dict(body or {})
        elif kind == "form":
            arguments["data"] = form_data(body or {})
        event.listen(Engine, "before_cursor_execute", seen)
        try:
            reply = client.open(path, method=method, **arguments)
            answer = Answer(reply.status_code, bool(wrote), _parsed(reply))
        except Exception:
            answer = Answer(500, bool(wrote), "")
        finally:
            event.remove(Engine, "before_cursor_execute", seen)
        if wrote:
            self._restore()
        return answer

    def _save(self) -> None:
        """Copy the app's SQLite files once, before the first request."""
        if self._copies is not None:
            return
        from fuzzer.init.setup.seeding import dispose

        self._copies = {path: f"{path}.probed" for path in _sqlite_files(self.app)}
        dispose(self.app)
        for path, copy in self._copies.items():
            shutil.copyfile(path, copy)

    def _restore(self) -> None:
        from fuzzer.init.setup.seeding import dispose

        dispose(self.app)
        for path, copy in (self._copies or {}).items():
            shutil.copyfile(copy, path)


class _Search:
    """One body's probe: the values kept so far, the last answer, the requests left."""

    def __init__(
        self, probe: Prober, method: str, path: str, kind: str, sent: dict[str, Any]
    ) -> None:
        self.probe, self.method, self.path, self.kind = probe, method, path, kind
        self.sent = sent
        self.answer = self._send(sent)
        self.budget = _BODY_REQUESTS

    def _send(self, body: dict[str, Any]) -> Answer:
        return self.probe.send(self.method, self.path, self.kind, body)

    def add_named(self, found: BodyFound) -> list[Field]:
        """The fields the answers name as missing, added to the body (see ``named``)."""

        def value(name: str, number: bool) -> Any:
            source = value_source(name, self.probe.rows, number)
            found.added[name] = Field(name, source, number)
            return simplest(source, self.probe.rows)

        sends = 0

        def send(body: dict[str, Any]) -> Answer:
            nonlocal sends
            sends += 1
            return self._send(body)

        # only the requests sent count: an answer that names no field costs nothing (a
        # transfer's two accounts are probed together after, within the same budget)
        added, self.sent, self.answer = named_fields(send, self.sent, self.answer, value)
        self.budget -= sends
        found.wrote = self.answer.works(self.method)
        return [found.added[name] for name in added]

    def one_at_a_time(self, probed: Sequence[Field], found: BodyFound) -> None:
        """Each field alone, those the answer complains about first, then ``…_id``
        fields: a column is kept when the request writes, or when the answer stops
        complaining about that field."""
        names = [f.name for f in probed]
        complained = self.answer.fields(names)
        order = sorted(probed, key=lambda f: (f.name not in complained, not _id_like(f)))
        for item in order:
            allowed = [_typed(v, item.numeric) for v in self.answer.allowed(item.name)]
            candidates = [("", "", v) for v in allowed[:_CANDIDATES]]
            for table, column, value in candidates + _field_candidates(
                self.probe.rows, item.numeric
            ):
                if self.budget <= 0:
                    return
                self.budget -= 1
                trial = {**self.sent, item.name: value}
                tried = self._send(trial)
                quiet = item.name in complained and item.name not in tried.fields(names)
                if tried.works(self.method) or quiet:
                    self.sent, self.answer, complained = trial, tried, tried.fields(names)
                    if table:
                        found.columns[item.name] = (table, column)
                    else:  # the answer named it: draw from what it named, this one first
                        found.named[item.name] = [value, *(v for v in allowed if v != value)]
                    if not tried.works(self.method):
                        found.quieted.add(item.name)
                    break
            found.wrote = self.answer.works(self.method)
            if found.wrote:
                return

    def two_at_a_time(self, probed: Sequence[Field], found: BodyFound) -> None:
        """Two fields of one type at once, given two rows of one column, both ways."""
        pairs = [(a, b) for n, a in enumerate(probed) for b in probed[n + 1 :]]
        for first, second in (p for p in pairs if p[0].numeric == p[1].numeric):
            for table, column, one, other in _pair_candidates(self.probe.rows, first.numeric):
                if self.budget <= 0:
                    return
                self.budget -= 2
                for a, b in ((one, other), (other, one)):  # whose row is whose
                    trial = {**self.sent, first.name: a, second.name: b}
                    tried = self._send(trial)
                    if tried.works(self.method):
                        self.sent, self.answer = trial, tried
                        found.columns |= {first.name: (table, column), second.name: (table, column)}
                        found.wrote = True
                        return


def _identity_headers(app: Any, identities: Sequence[str]) -> dict[str, str]:
    """The headers of the first identity the spec declares with headers (HTTP Basic, a
    stored API key, a token the app issues), made as the spec will make them: its
    source, read with the fuzzer's own helpers."""
    import fuzzer

    helpers = {name: getattr(fuzzer, name) for name in _IDENTITY_HELPERS}
    for source in identities:
        if "headers=" not in source:
            continue
        with contextlib.suppress(Exception):
            headers = eval(source, helpers).headers  # the spec's own line, which init wrote
            if callable(headers):
                with app.app_context():
                    headers = headers(app)
            return {str(k): str(v) for k, v in dict(headers).items()}
    return {}


_IDENTITY_HELPERS = ("Identity", "Login", "basic_auth", "bearer_token", "stored_token")


def _sqlite_files(app: Any) -> list[str]:
    from fuzzer import compat

    with contextlib.suppress(Exception), app.app_context():
        engines = compat.sqlalchemy_engines(app).values()
        files = [e.url.database for e in engines if e.url.get_backend_name() == "sqlite"]
        return [f for f in files if f and f != ":memory:" and os.path.exists(f)]
    return []


def _parsed(reply: Any) -> Any:
    if "json" in reply.headers.get("content-type", ""):
        with contextlib.suppress(ValueError):
            return json.loads(reply.data)
    return reply.get_data(as_text=True)


def _placeholder(rule: str, variable: str) -> str:
    start = rule.index("<")
    while start >= 0:
        end = rule.index(">", start)
        if rule[start + 1 : end].rsplit(":", 1)[-1] == variable:
            return rule[start : end + 1]
        start = rule.find("<", end)
    return f"<{variable}>"


def _is_number(table: Table, position: int) -> bool:
    kind = table.types[position].upper()
    return any(k in kind for k in _NUMBER_TYPES)


def _path_candidates(rows: Mapping[str, Table], numeric: bool) -> Iterator[tuple[str, str, Any]]:
    for name, table in rows.items():
        for position, column in enumerate(table.columns):
            if _is_number(table, position) != numeric or "password" in column.lower():
                continue
            values = [r[position] for r in table.rows if r[position] not in (None, "")]
            if values and (numeric or all("/" not in str(v) for v in values[:1])):
                yield name, column, values[0]


def _field_candidates(rows: Mapping[str, Table], numeric: bool) -> list[tuple[str, str, Any]]:
    """Columns of the field's type with their first value (the second too for the keys
    foreign keys point to: the first row may be someone else's), likeliest first: for a
    number the keys foreign keys point to, then other keys, then other numbers; for a
    word the unique text columns first. Secrets and long strings (hashes) are left out."""
    ranked: list[tuple[int, str, str, Any]] = []
    for name, table in rows.items():
        for position, column in enumerate(table.columns):
            if _is_number(table, position) != numeric or _secret(column):
                continue
            values = list(dict.fromkeys(r[position] for r in table.rows if r[position] != ""))
            values = [v for v in values if v is not None and isinstance(v, int | float | str)]
            if not values or (not numeric and len(str(values[0])) > 80):
                continue
            if numeric:  # a key a foreign key points to: its second row before other keys
                rank = 0 if column in table.referenced else 2 if column in table.primary_key else 3
            else:
                rank = 0 if column in table.unique else 2
            ranked.append((rank, name, column, values[0]))
            if rank == 0 and len(values) > 1:
                ranked.append((1, name, column, values[1]))
    ranked.sort(key=lambda item: item[0])
    return [(name, column, value) for _, name, column, value in ranked][:_CANDIDATES]


def _pair_candidates(rows: Mapping[str, Table], numeric: bool) -> list[tuple[str, str, Any, Any]]:
    """Columns of the type with two values, likeliest first (as ``_field_candidates``)."""
    found: list[tuple[str, str, Any, Any]] = []
    for name, column, _ in _field_candidates(rows, numeric):
        table = rows[name]
        position = table.columns.index(column)
        values = list(dict.fromkeys(r[position] for r in table.rows if r[position] is not None))
        if len(values) > 1 and (name, column) not in [(f[0], f[1]) for f in found]:
            found.append((name, column, values[0], values[1]))
    return found[: _CANDIDATES // 2]


def _typed(value: str, numeric: bool) -> Any:
    """A value an answer named, as the field takes it."""
    if numeric:
        with contextlib.suppress(ValueError):
            return int(value)
    return value


def _secret(column: str) -> bool:
    lowered = column.lower()
    return any(word in lowered for word in ("password", "hash", "token", "secret", "salt"))


def _invented(source: Node) -> bool:
    """A field drawn from a short list fuzzer init made up (two words, a few numbers, a
    placeholder choice), not from a column, the choices a form made, or a password."""
    text = flat(source)
    if "values_of" in text or "Secret-pass" in text:
        return False
    return text.startswith(("st.sampled_from(", "st.integers(")) or text == '"alpha"'


def _id_like(item: Field) -> bool:
    lowered = item.name.lower()
    return lowered == "id" or lowered.endswith("_id")


def simplest(node: Node, rows: Mapping[str, Table]) -> Any:
    """The value a source's simplest draw gives (what a strategy shrinks toward), as the
    survey's simplest request sends it; None for what it cannot tell."""
    if isinstance(node, Dict):
        return {simplest(k, rows): simplest(v, rows) for k, v in node.items}
    if isinstance(node, Keyword):
        return simplest(node.value, rows)
    if isinstance(node, List):
        return [simplest(item, rows) for item in node.items]
    if isinstance(node, str):
        if node == "st.booleans()":
            return False
        with contextlib.suppress(ValueError, SyntaxError):
            import ast

            return ast.literal_eval(node)
        return None
    args = [a for a in node.args if not isinstance(a, Keyword)]
    keywords = {a.name: a.value for a in node.args if isinstance(a, Keyword)}
    first = simplest(args[0], rows) if args else None
    if node.name == "st.sampled_from":
        return first[0] if isinstance(first, list | tuple) and first else None
    if node.name in ("st.integers", "st.just", "st.one_of"):
        return first
    if node.name == "st.lists":
        return [first]
    if node.name == "st.fixed_dictionaries":
        return first
    if node.name == "paths" and isinstance(first, str):  # the rule, its variables filled
        for name, value in keywords.items():
            first = first.replace(_placeholder(first, name), str(simplest(value, rows)))
        return first
    if node.name == "values_of" and isinstance(first, str):
        return _first_value(first, rows, simplest(keywords.get("otherwise", "[]"), rows))
    return None


def _first_value(column: str, rows: Mapping[str, Table], otherwise: Any) -> Any:
    table, _, name = column.rpartition(".")
    info = rows.get(table)
    if info is not None and name in info.columns:
        position = info.columns.index(name)
        for row in info.rows:
            if row[position] is not None:
                return row[position]
    return otherwise[0] if isinstance(otherwise, list | tuple) and otherwise else None


def probe_body(route: Route, probe: Prober | None, numbers: set[str]) -> None:
    """Probe a change's body fields (``numbers``: those its view takes for a number); a
    field probed to a column draws that column's values present after setup, and the
    route keeps what the app still complained about. A JSON field only the answer names
    (a placeholder body, or fields read in a helper) is added to the body."""
    placeholder = route.body_kind == "json" and route.body == "{}"
    listed = isinstance(route.body, Dict) and bool(route.body.items)
    if probe is None or not (placeholder or listed):
        return
    body = route.body if isinstance(route.body, Dict) else Dict(())
    fields = []
    for key, source in body.items:
        name = simplest(key, probe.rows)
        value = simplest(source, probe.rows)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        fields.append(Field(str(name), source, name in numbers or number))
    path = simplest(route.path, probe.rows)
    if not isinstance(path, str):
        return
    found = probe.body(route.method, path, route.body_kind, fields)
    if placeholder and not found.added:
        return
    items: list[tuple[Node, Node]] = []
    for key, source in [*body.items, *_added(route, found)]:
        name = str(simplest(key, probe.rows))
        column = found.columns.get(name)
        if name in found.named:
            items.append((key, Call("st.sampled_from", (literal(found.named[name][:3]),))))
            route.checks.append(
                f"field {name!r}: the values the app's answer named when fuzzer init sent "
                f"another ({', '.join(map(str, found.named[name][:5]))})"
            )
        if column is None:
            if name not in found.named:
                items.append((key, source))
            continue
        table, col = column
        items.append((key, Call("values_of", (literal(f"{table}.{col}"), "limit=3"))))
        how = "wrote" if name not in found.quieted else "no longer complained about it"
        route.checks = [c for c in route.checks if not c.startswith(f"field {name!r} has")]
        route.checks.append(
            f"field {name!r}: the values of {table}.{col}, by probing (names told nothing; "
            f"fuzzer init's request with one of them {how})"
        )
    route.body = Dict(tuple(items))
    route.said = found.said


def _added(route: Route, found: BodyFound) -> list[tuple[Node, Node]]:
    """The fields only the app's answer named, as body items, each with its comment."""
    if found.added:
        route.checks = [c for c in route.checks if not c.startswith("PLACEHOLDER: the JSON")]
        route.checks.append(
            "CHECK: JSON fields the app's answer named missing when fuzzer init sent the "
            "body without them: " + ", ".join(found.added)
        )
    return [(literal(name), f.source) for name, f in found.added.items()]
