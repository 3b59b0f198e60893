"""Endpoints named automatically get names no other endpoint of their target has, the
same on every run; names given with name= are kept."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

from fuzzer import Endpoint, Target, paths
from fuzzer.errors import InvalidTarget
from fuzzer.target.contract import validate


def target(*endpoints: Endpoint) -> Target:
    return Target(name="names", app=lambda url: None, setup=None, endpoints=list(endpoints))


def test_strategy_paths_are_named_by_what_their_values_share() -> None:
    articles = Endpoint("GET", st.sampled_from(["/articles/1", "/articles/2"]))
    views = Endpoint("GET", st.sampled_from(["/articles/1/views", "/articles/2/views"]))
    made = target(articles, views)
    validate(made)  # no "endpoint names must be unique"
    assert [e.name for e in made.endpoints] == ["GET /articles/*", "GET /articles/*/views"]


def test_automatic_names_that_collide_are_numbered_in_declaration_order() -> None:
    rule = "/themes/<theme>/static/<path:path>"
    first = Endpoint("GET", paths(rule, theme="a", path="x.css"))
    second = Endpoint("GET", paths(rule, theme="b", path="y.css"))
    third = Endpoint("GET", st.sampled_from(["/a/1", "/a/2"]))
    fourth = Endpoint("GET", st.sampled_from(["/a/3", "/a/4"]))
    made = target(first, second, third, fourth)
    validate(made)
    assert [e.name for e in made.endpoints] == [
        f"GET {rule}",
        f"GET {rule} (2)",
        "GET /a/*",
        "GET /a/* (2)",
    ]
    again = target(first, second, third, fourth)  # stable: the same names every time
    assert [e.name for e in again.endpoints] == [e.name for e in made.endpoints]


def test_a_given_name_is_kept_and_an_automatic_one_steps_aside() -> None:
    named = Endpoint("GET", "/x", name="GET /x (2)")
    made = target(Endpoint("GET", "/x"), Endpoint("GET", "/x"), named)
    assert [e.name for e in made.endpoints] == ["GET /x", "GET /x (3)", "GET /x (2)"]
    with pytest.raises(InvalidTarget, match="'mine' is used twice"):
        validate(target(Endpoint("GET", "/a", name="mine"), Endpoint("GET", "/b", name="mine")))
