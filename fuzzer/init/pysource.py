"""Python source for the specs ``fuzzer init`` writes: expressions as small trees, laid
out the way a formatter would (one line when it fits, else one item per line with a
trailing comma), so a generated spec reads like hand-written code."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

__all__ = ["Call", "Dict", "Keyword", "List", "Node", "flat", "layout", "literal", "parsed"]

WIDTH = 88  # black and ruff format by default


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...] = ()


@dataclass(frozen=True)
class Keyword:
    name: str
    value: Node


@dataclass(frozen=True)
class Dict:
    items: tuple[tuple[Node, Node], ...] = ()


@dataclass(frozen=True)
class List:
    items: tuple[Node, ...] = ()


Node = Union[str, Call, Keyword, Dict, List]  # noqa: UP007  # a str is source as it is


def literal(value: Any) -> str:
    """A value as Python source, strings in double quotes."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def parsed(source: str) -> Node:
    """An expression's source as a tree the layout can break over lines: calls and
    their keywords; constants as literals."""
    import ast

    def node_of(expression: ast.expr) -> Node:
        if isinstance(expression, ast.Call):
            positional = tuple(node_of(a) for a in expression.args)
            named = tuple(
                Keyword(k.arg, node_of(k.value)) for k in expression.keywords if k.arg is not None
            )
            return Call(ast.unparse(expression.func), positional + named)
        try:
            return literal(ast.literal_eval(expression))
        except ValueError:
            return ast.unparse(expression)

    return node_of(ast.parse(source, mode="eval").body)


def flat(node: Node) -> str:
    """The node on one line."""
    if isinstance(node, str):
        return node
    if isinstance(node, Keyword):
        return f"{node.name}={flat(node.value)}"
    if isinstance(node, Call):
        return f"{node.name}({', '.join(flat(a) for a in node.args)})"
    if isinstance(node, Dict):
        return "{" + ", ".join(f"{flat(k)}: {flat(v)}" for k, v in node.items) + "}"
    return "[" + ", ".join(flat(i) for i in node.items) + "]"


def layout(
    node: Node, indent: str = "", suffix: str = "", prefix: str = "", width: int = WIDTH
) -> list[str]:
    """The node as lines starting at ``indent``, at most ``width`` long where it can;
    ``prefix`` and ``suffix`` go around it (``"name="``, ``","``)."""
    one = f"{indent}{prefix}{flat(node)}{suffix}"
    if len(one) <= width or isinstance(node, str):
        return [one]
    inner = indent + "    "
    if isinstance(node, Keyword):
        return layout(node.value, indent, suffix, prefix + f"{node.name}=", width)
    if isinstance(node, Call):
        opening, closing, parts = f"{node.name}(", ")", _items(node.args, inner, width)
    elif isinstance(node, Dict):
        opening, closing = "{", "}"
        parts = [
            line
            for key, value in node.items
            for line in layout(value, inner, ",", f"{flat(key)}: ", width)
        ]
    else:
        opening, closing, parts = "[", "]", _items(node.items, inner, width)
    return [f"{indent}{prefix}{opening}", *parts, f"{indent}{closing}{suffix}"]


def _items(nodes: Sequence[Node], indent: str, width: int) -> list[str]:
    return [line for node in nodes for line in layout(node, indent, ",", width=width)]
