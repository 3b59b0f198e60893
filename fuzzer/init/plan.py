"""What ``fuzzer init`` learns of an app and writes out: the plan of the spec, its
routes, and the rows setup made."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fuzzer.init.factory import Factory
from fuzzer.init.pysource import Node

# -- what the app tells ------------------------------------------------------------------


@dataclass
class Route:
    method: str
    rule: str
    endpoint: str
    path: Node  # a string literal, or paths(...)
    variables: list[str] = field(default_factory=list)  # comments on the variables
    body_kind: str = ""  # "form", "json" or ""
    body: Node = ""
    checks: list[str] = field(default_factory=list)
    login_required: bool = False
    anonymous_only: bool = False  # the view sends signed-in users away (sign-up, login)
    signs_out: bool = False  # it logs the user out or revokes its token
    view: str = ""
    said: str = ""  # what the app said was wrong with its simplest request, at inspection


@dataclass
class Plan:
    """Everything the generated spec says."""

    factory: Factory
    name: str
    pins: dict[str, str] = field(default_factory=dict)  # config key -> value source
    pin_notes: list[str] = field(default_factory=list)
    setup: list[tuple[str, str]] = field(
        default_factory=list
    )  # ("command", name) | ("create_all", "")
    setup_notes: list[str] = field(default_factory=list)
    identities: list[str] = field(default_factory=list)  # Identity(...) sources
    identity_notes: list[str] = field(default_factory=list)
    login_example: Node | None = None  # an Identity that logs in through the login form
    users: list[str] = field(default_factory=list)  # the identity names that are logged in
    user_keys: list[Any] = field(default_factory=list)  # their primary keys, in that order
    user_source: tuple[str, str] = ("", "")  # the user table and the column names come from
    routes: list[Route] = field(default_factory=list)
    ignore_columns: list[str] = field(default_factory=list)
    openapi: str = ""  # where the OpenAPI document was found
    databases: tuple[str, ...] = ()  # with binds: "default" and each bind
    ignore_fields: list[str] = field(default_factory=list)  # response JSON keys
    # after the check: the endpoints ("METHOD /rule") whose requests wrote; None: unknown
    writers: frozenset[str] | None = None
    all_endpoints: bool = False  # keep the pages that only read too
    # requests setup sends for each signed-in identity: (the endpoint that needs it,
    # the request); found by the check
    prerequisites: list[tuple[str, Any]] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)  # endpoint -> why, after the check
    proofs: list[str] = field(default_factory=list)  # how each signed-in identity was proven
    check_failed: str = ""  # what stopped fuzzer init's check of the spec

    def kept(self, route: Route) -> bool:
        """A route the spec sends: every one with ``all_endpoints``; else those that
        change state and leave the identity signed in: whose requests wrote when the
        check sent them (before the check: a method other than GET)."""
        if self.all_endpoints:
            return True
        if route.signs_out:
            return False
        if self.writers is None:
            return route.method != "GET"
        return f"{route.method} {route.rule}" in self.writers


@dataclass
class Table:
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]
    types: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    referenced: frozenset[str] = frozenset()  # its columns a foreign key points to
    unique: frozenset[str] = frozenset()  # its columns that hold no value twice
