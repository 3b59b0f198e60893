"""An app factory named on the command line: ``package.module:create_app``, or a call
with config arguments, ``package.module:create_app("testing")`` (literals, or names of
config objects in the factory's module or importable by a dotted path)."""

from __future__ import annotations

import ast
import contextlib
import importlib
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fuzzer import compat
from fuzzer.errors import InvalidTarget, describe
from fuzzer.init.pysource import literal

__all__ = ["Factory", "is_app", "load_factory"]


@dataclass(frozen=True)
class Factory:
    """An app factory and the arguments to call it with."""

    reference: str  # as given
    module: str
    name: str
    function: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    arg_sources: tuple[str, ...] = ()  # the arguments as source
    imports: tuple[tuple[str, str], ...] = ()  # (module, name) the arguments need

    def call_source(self) -> str:
        return f"{self.name}({', '.join(self.arg_sources)})"

    def build(self) -> Any:
        return self.function(*self.args, **self.kwargs)


def load_factory(reference: str) -> Factory:
    """Parse ``package.module:create_app`` or ``package.module:create_app(args)``: literal
    arguments, or names of the factory's module (a config class) or dotted paths."""
    usage = (
        "Expected an app factory like 'package.module:create_app' or "
        f"'package.module:create_app(\"testing\")' but got {reference!r}"
    )
    module_name, sep, call = reference.partition(":")
    if not sep or not module_name or not call.strip():
        raise InvalidTarget(usage)
    try:
        expression = ast.parse(call.strip(), mode="eval").body
    except SyntaxError:
        raise InvalidTarget(usage) from None
    if isinstance(expression, ast.Call):
        function_node, arg_nodes, kw_nodes = expression.func, expression.args, expression.keywords
    else:
        function_node, arg_nodes, kw_nodes = expression, [], []
    if not isinstance(function_node, ast.Name):
        raise InvalidTarget(usage)
    module = _import(module_name, reference)
    name = function_node.id
    function = getattr(module, name, None)
    if function is None:
        factories = sorted(
            n for n, v in vars(module).items() if callable(v) and n.startswith(("create", "make"))
        )
        hint = f"; factories in it: {', '.join(factories)}" if factories else ""
        raise InvalidTarget(f"Module {module_name!r} has no attribute {name!r}{hint}")
    if not callable(function) or is_app(function):
        raise InvalidTarget(
            f"{module_name}:{name} is {'a Flask app' if is_app(function) else 'not callable'}"
            f", not an app factory; fuzzer init needs the function that builds the app "
            f"(create_app), because every run builds it on its own scratch database"
        )
    imports: list[tuple[str, str]] = []
    args = tuple(_argument(node, module, reference, imports) for node in arg_nodes)
    kwargs = {}
    for keyword in kw_nodes:
        if keyword.arg is None:
            raise InvalidTarget(f"{reference}: **kwargs are not supported; name each argument")
        kwargs[keyword.arg] = _argument(keyword.value, module, reference, imports)
    sources = [_source(node) for node in arg_nodes]
    sources += [f"{k.arg}={_source(k.value)}" for k in kw_nodes]
    return Factory(
        reference, module_name, name, function, args, kwargs, tuple(sources), tuple(imports)
    )


def _source(node: ast.expr) -> str:
    try:
        return literal(ast.literal_eval(node))
    except ValueError:
        return ast.unparse(node)


def _import(module_name: str, reference: str) -> Any:
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise InvalidTarget(
                f"Cannot import module {module_name!r} of {reference!r}: no module named "
                f"{exc.name!r}; check the spelling and that it is importable from this directory"
            ) from None
        raise InvalidTarget(f"Importing {module_name!r} for {reference!r} failed: {exc}") from exc
    except Exception as exc:
        hint = compat.clash(exc)
        raise InvalidTarget(
            f"Importing {module_name!r} for {reference!r} raised {describe(exc)}"
            + (f"; {hint}" if hint else "")
        ) from exc


def _argument(node: ast.expr, module: Any, reference: str, imports: list[tuple[str, str]]) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        pass
    dotted = ast.unparse(node)
    if not re.fullmatch(r"[A-Za-z_][\w.]*", dotted):
        raise InvalidTarget(
            f"{reference}: argument {dotted!r} must be a literal or the name of a config "
            f"object (a name in {module.__name__}, or package.module.Name)"
        )
    head, _, rest = dotted.partition(".")
    if hasattr(module, head):
        value = getattr(module, head)
        for part in rest.split(".") if rest else ():
            value = getattr(value, part)
        imports.append((module.__name__, head))
        return value
    owner, _, name = dotted.rpartition(".")
    if owner:
        with contextlib.suppress(ImportError):
            value = getattr(importlib.import_module(owner), name)
            imports.append((owner, name))
            return value
    raise InvalidTarget(f"{reference}: cannot find {dotted!r} in {module.__name__} or import it")


def is_app(value: Any) -> bool:
    return hasattr(value, "url_map") and hasattr(value, "wsgi_app")
