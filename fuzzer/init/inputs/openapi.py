"""Request bodies from the JSON schemas of the OpenAPI document an app publishes (OpenAPI 3
or Swagger 2), as Python source over small domains."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fuzzer.init.inputs.bodies import WORDS, Body, fit
from fuzzer.init.pysource import Call, Dict, Node, literal

__all__ = ["json_schema_body", "openapi_operations", "request_schema"]


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
    return Call("st.sampled_from", (literal([fit(w, low, high) for w in WORDS]),)), True


def _resolve(document: Mapping[str, Any], node: Any) -> Mapping[str, Any]:
    seen = 0
    while isinstance(node, Mapping) and "$ref" in node and seen < 20:
        target: Any = document
        for part in str(node["$ref"]).lstrip("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        node = target
        seen += 1
    return node if isinstance(node, Mapping) else {}
