"""What a view's code names: the function under its decorators, the WTForms forms it
makes (through the app's own helpers too), the JSON keys it reads, the marshmallow
schema it loads its body with, and where it is defined."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from types import CodeType, ModuleType
from typing import Any, NamedTuple

__all__ = [
    "Declared",
    "code_names",
    "forms_of",
    "json_fields",
    "own_helpers",
    "schema_fields",
    "source_file",
    "unwrapped",
    "view_for",
    "view_reads_json",
]


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
    for function in unwrapped(view):
        namespace = getattr(function, "__globals__", {})
        code = getattr(function, "__code__", None)
        if code is None:
            continue
        names = list(code_names(code))
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
    names = list(code_names(code)) if code is not None else []
    return [namespace[n] for n in names if _own_helper(namespace.get(n), view)]


def _own_helper(candidate: Any, caller: Any) -> bool:
    """A plain function of the caller's own package (not a library's)."""
    if not inspect.isfunction(candidate) or candidate is caller:
        return False
    mine = str(getattr(caller, "__module__", "") or "").split(".")[0]
    return bool(mine) and str(candidate.__module__ or "").split(".")[0] == mine


def unwrapped(view: Callable[..., Any] | None) -> Iterator[Callable[..., Any]]:
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


def code_names(code: CodeType) -> Iterator[str]:
    yield from code.co_names
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            yield from code_names(constant)


def view_reads_json(view: Callable[..., Any]) -> bool:
    """Whether a view (or what it wraps) reads a JSON body: ``request.json``,
    ``request.get_json()``."""
    for function in unwrapped(view):
        code = getattr(function, "__code__", None)
        if code is not None and {"get_json", "json"} & set(code_names(code)):
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
    for function in unwrapped(view):
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


class Declared(NamedTuple):
    """A marshmallow field as a body draws it: its kind ("int", "float", "bool",
    "email", "date", "datetime", "time", "uuid", "url" or "str"), the choices a
    ``OneOf`` validator allows, and the least number a ``Range`` validator allows."""

    kind: str
    choices: tuple[Any, ...] = ()
    low: float | None = None


def schema_fields(view: Callable[..., Any]) -> dict[str, Declared] | None:
    """The fields of the marshmallow schema a view loads its body with (a schema its code
    names, or one a decorator such as webargs' ``use_args`` holds), each as it is
    declared; None when it uses none."""
    for function in unwrapped(view):
        namespace = getattr(function, "__globals__", {})
        code = getattr(function, "__code__", None)
        candidates: list[Any] = [namespace.get(n) for n in code_names(code)] if code else []
        for cell in getattr(function, "__closure__", None) or ():
            if _filled(cell):
                candidates.append(cell.cell_contents)
        for candidate in candidates:
            fields = _marshmallow_fields(candidate)
            if fields is not None:
                return fields
    return None


_KINDS = {
    "Integer": "int",
    "Float": "float",
    "Decimal": "float",
    "Number": "int",
    "Boolean": "bool",
    "Email": "email",
    "Date": "date",
    "DateTime": "datetime",
    "NaiveDateTime": "datetime",
    "AwareDateTime": "datetime",
    "Time": "time",
    "UUID": "uuid",
    "Url": "url",
    "URL": "url",
}


def _marshmallow_fields(value: Any) -> dict[str, Declared] | None:
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
    fields = {}
    for name, field_ in declared.items():
        if getattr(field_, "dump_only", False):
            continue
        key = getattr(field_, "data_key", None) or name
        fields[key] = _declared(field_)
    return fields


def _declared(field_: Any) -> Declared:
    kind = _KINDS.get(type(field_).__name__, "str")
    choices: tuple[Any, ...] = ()
    low = None
    for validator in getattr(field_, "validators", None) or ():
        if type(validator).__name__ == "OneOf":
            choices = tuple(validator.choices)
        elif type(validator).__name__ == "Range" and validator.min is not None:
            low = validator.min
    return Declared(kind, choices, low)


def source_file(view: Callable[..., Any]) -> str:
    """Where a view is defined: "function() in module, line N" (for comments)."""
    inner = list(unwrapped(view))[-1]
    where = f"{getattr(inner, '__name__', '?')}() in {getattr(inner, '__module__', '?')}"
    try:
        return f"{where}, line {inspect.getsourcelines(inner)[1]}"
    except (OSError, TypeError):
        return where
