"""bench.firsttry's table (issue 20, item 9): which apps it tries and how a row reads.
The measurement itself (init and a run per app, minutes) is `python -m bench.firsttry`."""

from __future__ import annotations

from bench.firsttry import PLANTED, Row, apps, markdown


def test_every_app_shaped_target_is_tried_and_says_where_its_races_are() -> None:
    found = apps()
    assert {"microblog", "demo", "photos", "bookmarks", "bank"} <= set(found)
    assert "bazaar" not in found and "profile" not in found  # a module, not an app package
    assert set(PLANTED) <= set(found)  # each declared app is tried (a new one too, then
    # its row says "none declared" until its races are added to PLANTED)


def test_a_row_says_what_was_found_of_what_was_planted_and_what_failed() -> None:
    meta = {"examples": 300, "db": "sqlite", "machine": "x86_64"}
    found = Row(
        "microblog",
        init_seconds=33.7,
        spec_lines=176,
        kept=7,
        routes=19,
        identities=3,
        setup="create_all, command seed",
        planted=("POST /a", "POST /b", "POST /c"),
        found={"POST /b": 6, "POST /a": 3},
        other=["stale-read (GET /x)"],
        run_seconds=76.3,
    )
    failed = Row("coupons", planted=("POST /redeem",), error="init refused the app")
    lines = markdown([found, failed], meta).splitlines()
    assert lines[-2] == (
        "| microblog | 33.7 s | 176 | 7 of 19 | 3 | create_all, command seed | 2 of 3 "
        "| POST /a: 3, POST /b: 6 | stale-read (GET /x) | 76.3 s |"
    )
    assert lines[-1].startswith("| coupons | failed: init refused the app |")
    assert Row(**found.to_json()) == found  # read back from a child process's JSON line
