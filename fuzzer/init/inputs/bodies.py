"""Request bodies for a generated spec, as Python source: from the app's own forms, or from
the JSON schemas of the OpenAPI document it publishes.

Values are drawn from small domains on purpose: two requests only race when they name
the same thing, so two candidate strings beat a thousand random ones. Every function
returns the source of an expression (a value, a strategy, or a dict holding strategies)
and says what it could not tell in comments.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import CodeType, ModuleType
from typing import Any

from fuzzer.init.pysource import Call, Dict, Node, flat, literal

__all__ = ["Body", "form_body", "forms_of", "json_schema_body", "openapi_operations"]

WORDS = ("alpha", "bravo")


@dataclass
class Body:
    """A body expression, and what the user should check about it."""

    node: Node
    checks: list[str] = field(default_factory=list)

    @property
    def source(self) -> str:
        return flat(self.node)


# -- Flask-WTF / WTForms forms -----------------------------------------------------------


def forms_of(view: Callable[..., Any], depth: int = 2) -> list[type]:
    """The WTForms form classes a view function uses (through its decorators, in the
    order its code names them), also through the app's own helpers it calls
    (``form = get_billform_for(project)``), ``depth`` calls deep."""
    try:
        from wtforms import Form
    except ImportError:  # pragma: no cover - the app does not use WTForms
        return []
    found: list[type] = []
    helpers: list[Callable[..., Any]] = []
    for function in _unwrapped(view):
        namespace = getattr(function, "__globals__", {})
        code = getattr(function, "__code__", None)
        if code is None:
            continue
        names = list(_names(code))
        for name in names:
            value = namespace.get(name)
            candidates = [value]
            if isinstance(value, ModuleType):  # forms.LoginForm
                candidates = [getattr(value, other, None) for other in names]
            for candidate in candidates:
                if (
                    isinstance(candidate, type)
                    and issubclass(candidate, Form)
                    and candidate not in found
                ):
                    found.append(candidate)
                elif candidate not in helpers and _own_helper(candidate, function):
                    helpers.append(candidate)  # type: ignore[arg-type]
    for helper in helpers if depth > 0 else ():
        found += [f for f in forms_of(helper, depth - 1) if f not in found]
    return found


def own_helpers(view: Callable[..., Any]) -> list[Callable[..., Any]]:
    """The plain functions of the app's own package that a view's code names."""
    namespace = getattr(view, "__globals__", {})
    code = getattr(view, "__code__", None)
    names = list(_names(code)) if code is not None else []
    return [namespace[n] for n in names if _own_helper(namespace.get(n), view)]


def _own_helper(candidate: Any, caller: Any) -> bool:
    """A plain function of the caller's own package (not a library's)."""
    if not inspect.isfunction(candidate) or candidate is caller:
        return False
    mine = str(getattr(caller, "__module__", "") or "").split(".")[0]
    return bool(mine) and str(candidate.__module__ or "").split(".")[0] == mine


def _unwrapped(view: Callable[..., Any] | None) -> Iterator[Callable[..., Any]]:
    """The view, then what it wraps: ``__wrapped__`` (``functools.wraps``), else the one
    function a decorator's closure holds (a decorator written without ``wraps``)."""
    seen = 0
    while view is not None and seen < 20:
        yield view
        inner = getattr(view, "__wrapped__", None)
        if inner is None:
            cells = getattr(view, "__closure__", None) or ()
            functions = [
                c.cell_contents for c in cells if _filled(c) and inspect.isfunction(c.cell_contents)
            ]
            inner = functions[0] if len(functions) == 1 else None
        view = inner
        seen += 1


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # an empty cell
        return False
    return True


def view_for(view: Callable[..., Any] | None, method: str) -> Callable[..., Any] | None:
    """The function that handles ``method``: a class-based view's (``MethodView``,
    Flask-RESTful resources) method of that name, else the view itself."""
    view_class = getattr(view, "view_class", None)
    handler = getattr(view_class, method.lower(), None) if view_class is not None else None
    return handler if callable(handler) else view


def _names(code: CodeType) -> Iterator[str]:
    yield from code.co_names
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            yield from _names(constant)


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
    if kind in ("IntegerField", "DecimalField", "FloatField", "IntegerRangeField"):
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
    if kind == "DateField":
        return literal("2024-01-01"), ""
    if kind == "DateTimeField":
        return literal("2024-01-01 10:00:00"), ""
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
        value = literal(_fit("Secret-pass-1", low, high))
        passwords[name] = value
        return value, ""
    if name in columns:
        return columns[name], ""
    if "Email" in by_type or kind == "EmailField" or "email" in name.lower():
        values = [_fit(w, max(low - 12, 1), max(high - 12, 1)) + "@example.com" for w in WORDS]
    else:
        values = [_fit(w, low, high) for w in WORDS]
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


def _fit(word: str, low: int, high: int) -> str:
    while len(word) < low:
        word += word
    return word[: max(high, 1)] if len(word) > high else word[: max(len(word), low)]


# -- OpenAPI -------------------------------------------------------------------------------


def openapi_operations(document: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """(METHOD, path pattern) -> operation, the pattern with every ``{name}`` as ``{}``."""
    operations: dict[tuple[str, str], Mapping[str, Any]] = {}
    for path, item in (document.get("paths") or {}).items():
        if not isinstance(item, Mapping):
            continue
        for method, operation in item.items():
            if method.upper() in ("GET", "POST", "PUT", "PATCH", "DELETE") and isinstance(
                operation, Mapping
            ):
                operations[(method.upper(), re.sub(r"\{[^}]*\}", "{}", path))] = operation
    return operations


def request_schema(
    document: Mapping[str, Any], operation: Mapping[str, Any]
) -> tuple[str, Mapping[str, Any]] | None:
    """("json" or "form", schema) of an operation's request body (OpenAPI 3 or Swagger 2)."""
    body = _resolve(document, operation.get("requestBody") or {})
    content = body.get("content") or {}
    for media, kind in (
        ("application/json", "json"),
        ("application/x-www-form-urlencoded", "form"),
    ):
        schema = (content.get(media) or {}).get("schema")
        if isinstance(schema, Mapping):
            return kind, schema
    for parameter in operation.get("parameters") or ():  # Swagger 2: in: body
        parameter = _resolve(document, parameter)
        if parameter.get("in") == "body" and isinstance(parameter.get("schema"), Mapping):
            return "json", parameter["schema"]
    return None


def json_schema_body(document: Mapping[str, Any], schema: Mapping[str, Any]) -> Body:
    """A JSON schema as a value or strategy expression over small domains."""
    checks: list[str] = []
    return Body(_schema_node(document, schema, checks, 0, strategy=False), checks)


def _schema_node(
    document: Mapping[str, Any],
    schema: Mapping[str, Any],
    checks: list[str],
    depth: int,
    *,
    strategy: bool,
) -> Node:
    """A value, or a dict holding strategies; with ``strategy``, a strategy throughout (as
    ``st.lists`` elements must be)."""
    value, is_strategy = _schema_source(document, schema, checks, depth, strategy)
    if strategy and not is_strategy:
        return Call("st.just", (value,))
    return value


def _schema_source(
    document: Mapping[str, Any],
    schema: Mapping[str, Any],
    checks: list[str],
    depth: int,
    strategy: bool,
) -> tuple[Node, bool]:
    """(node, whether it is a strategy)."""
    schema = _resolve(document, schema)
    if depth > 6:
        return "None", False
    if schema.get("enum"):
        return Call("st.sampled_from", (literal(list(schema["enum"])[:3]),)), True
    for combinator in ("oneOf", "anyOf"):
        if schema.get(combinator):
            return _schema_source(document, schema[combinator][0], checks, depth + 1, strategy)
    if schema.get("allOf"):
        schema = _all_of(document, schema["allOf"])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in schema:
        return _object_source(document, schema, checks, depth, strategy)
    if kind == "array":
        element = _schema_node(
            document, schema.get("items") or {}, checks, depth + 1, strategy=True
        )
        return Call("st.lists", (element, "min_size=1", "max_size=2")), True
    return _scalar_source(kind, schema, checks)


def _all_of(document: Mapping[str, Any], parts: Any) -> dict[str, Any]:
    """The object an ``allOf`` of object schemas describes."""
    merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    for part in parts:
        part = _resolve(document, part)
        merged["properties"].update(part.get("properties") or {})
        merged["required"] += list(part.get("required") or [])
    return merged


def _object_source(
    document: Mapping[str, Any],
    schema: Mapping[str, Any],
    checks: list[str],
    depth: int,
    strategy: bool,
) -> tuple[Node, bool]:
    """An object's required properties (all of them when none is), read-only ones left out."""
    properties = schema.get("properties") or {}
    required = list(schema.get("required") or [])
    names = [n for n in properties if n in required] or list(properties)
    items = tuple(
        (
            literal(name),
            _schema_node(document, properties[name], checks, depth + 1, strategy=strategy),
        )
        for name in names
        if not (_resolve(document, properties[name]) or {}).get("readOnly")
    )
    if strategy:
        return Call("st.fixed_dictionaries", (Dict(items),)), True
    return Dict(items), False


def _scalar_source(kind: Any, schema: Mapping[str, Any], checks: list[str]) -> tuple[Node, bool]:
    """An integer, number, boolean or string schema's source; "None" for anything else."""
    if kind == "integer":
        low = int(schema.get("minimum", 1))
        high = int(schema.get("maximum", low + 2))
        return Call("st.integers", (str(low), str(min(high, low + 2)))), True
    if kind == "number":
        start = float(schema.get("minimum", 1))
        return Call("st.sampled_from", (literal([start, start + 1.5]),)), True
    if kind == "boolean":
        return "st.booleans()", True
    if kind == "string":
        return _string_source(schema, checks)
    return "None", False


def _string_source(schema: Mapping[str, Any], checks: list[str]) -> tuple[Node, bool]:
    fmt = schema.get("format", "")
    if fmt == "email":
        return Call("st.sampled_from", (literal([w + "@example.com" for w in WORDS]),)), True
    fixed = {
        "date": "2024-01-01",
        "date-time": "2024-01-01T10:00:00Z",
        "uuid": "00000000-0000-4000-8000-000000000001",
    }
    if fmt in fixed:
        return literal(fixed[fmt]), False
    low = int(schema.get("minLength", 1))
    high = int(schema.get("maxLength", 64))
    if schema.get("pattern"):
        checks.append(f"strings must match {schema['pattern']!r}")
    return Call("st.sampled_from", (literal([_fit(w, low, high) for w in WORDS]),)), True


def _resolve(document: Mapping[str, Any], node: Any) -> Mapping[str, Any]:
    seen = 0
    while isinstance(node, Mapping) and "$ref" in node and seen < 20:
        target: Any = document
        for part in str(node["$ref"]).lstrip("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        node = target
        seen += 1
    return node if isinstance(node, Mapping) else {}


def view_reads_json(view: Callable[..., Any]) -> bool:
    """Whether a view (or what it wraps) reads a JSON body: ``request.json``,
    ``request.get_json()``."""
    for function in _unwrapped(view):
        code = getattr(function, "__code__", None)
        if code is not None and {"get_json", "json"} & set(_names(code)):
            return True
    return False


def json_fields(view: Callable[..., Any]) -> dict[str, bool]:
    """The JSON keys a view's code reads, in order, each with whether the code takes it
    for a number (``int(data["n"])``): ``request.get_json()["x"]``,
    ``request.json.get("x")``, and through a name it assigned the body to (``data =
    request.get_json() or {}``: ``data["x"]``, ``data.get("x")``, ``"x" in data``)."""
    import ast
    import textwrap

    keys: dict[str, bool] = {}
    for function in _unwrapped(view):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        except (OSError, TypeError, SyntaxError):
            continue
        bodies: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and _reads_body(node.value):
                bodies |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        numbers = set()
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("int", "float", "Decimal")
                and node.args
            ):
                numbers.add(_json_key(node.args[0], bodies))
        for node in ast.walk(tree):
            key = _json_key(node, bodies)
            if key is not None:
                keys[key] = keys.get(key, False) or key in numbers
    return keys


def _reads_body(node: Any) -> bool:
    """``request.get_json(...)``, ``request.json``, ``request.get_json() or {}``."""
    import ast

    if isinstance(node, ast.BoolOp):
        return any(_reads_body(v) for v in node.values)
    if isinstance(node, ast.Call):
        node = node.func
        return isinstance(node, ast.Attribute) and node.attr in ("get_json", "json")
    return isinstance(node, ast.Attribute) and node.attr == "json"


def _json_key(node: Any, bodies: set[str]) -> str | None:
    import ast

    def is_body(value: Any) -> bool:
        return (isinstance(value, ast.Name) and value.id in bodies) or _reads_body(value)

    def text(value: Any) -> str | None:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value.value
        return None

    if isinstance(node, ast.Subscript) and is_body(node.value):
        return text(node.slice)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and is_body(node.func.value)
        and node.args
    ):
        return text(node.args[0])
    if (
        isinstance(node, ast.Compare)
        and len(node.ops) == 1
        and isinstance(node.ops[0], ast.In | ast.NotIn)
        and is_body(node.comparators[0])
    ):
        return text(node.left)
    return None


def schema_fields(view: Callable[..., Any]) -> dict[str, str] | None:
    """The fields of the marshmallow schema a view loads its body with (a schema its code
    names, or one a decorator such as webargs' ``use_args`` holds), each with its kind:
    "int", "float", "bool", "email" or "str"; None when it uses none."""
    for function in _unwrapped(view):
        namespace = getattr(function, "__globals__", {})
        code = getattr(function, "__code__", None)
        candidates: list[Any] = [namespace.get(n) for n in _names(code)] if code else []
        for cell in getattr(function, "__closure__", None) or ():
            if _filled(cell):
                candidates.append(cell.cell_contents)
        for candidate in candidates:
            fields = _marshmallow_fields(candidate)
            if fields is not None:
                return fields
    return None


def _marshmallow_fields(value: Any) -> dict[str, str] | None:
    try:
        from marshmallow import Schema
        from marshmallow.fields import Field
    except ImportError:  # the app does not use marshmallow
        return None
    if isinstance(value, type) and issubclass(value, Schema) and value is not Schema:
        declared = dict(value._declared_fields)
    elif isinstance(value, Schema):
        declared = dict(value.fields)
    elif isinstance(value, Mapping) and value and all(isinstance(v, Field) for v in value.values()):
        declared = dict(value)  # webargs' dict argmap
    else:
        return None
    kinds = {
        "Integer": "int",
        "Float": "float",
        "Decimal": "float",
        "Number": "int",
        "Boolean": "bool",
        "Email": "email",
    }
    fields = {}
    for name, field_ in declared.items():
        if getattr(field_, "dump_only", False):
            continue
        key = getattr(field_, "data_key", None) or name
        fields[key] = kinds.get(type(field_).__name__, "str")
    return fields


def source_file(view: Callable[..., Any]) -> str:
    """Where a view is defined: "function() in module, line N" (for comments)."""
    inner = list(_unwrapped(view))[-1]
    where = f"{getattr(inner, '__name__', '?')}() in {getattr(inner, '__module__', '?')}"
    try:
        return f"{where}, line {inspect.getsourcelines(inner)[1]}"
    except (OSError, TypeError):
        return where
