"""The catalog's stories and their runs, shared by tests/test_catalog.py and
tests/test_replay_catalog.py: each buggy twin is fuzzed once per database in a test
session (``catalog_run``), with its reports written, and both tests read that run — the
catalog test its findings, the replay test their reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from fuzzer import api

DATABASES = ("sqlite", "mariadb", "postgres")


@dataclass(frozen=True)
class Story:
    name: str  # targets.<name>
    examples: int  # enough for the seed below to find every declared kind
    seed: int = 2
    fixed_examples: int = 40


CATALOG = [
    Story("profile", 20),
    Story("wiki", 15),
    Story("tasks", 30),  # ObjectDeletedError needs a switch between COMMIT and reload
    Story("jobs", 15),
    Story("dashboard", 8, fixed_examples=20),  # every leaking example restarts the server
    Story("pricing", 40),
    Story("portal", 15),
    Story("stock", 15),
    Story("oncall", 30),
    Story("tags", 15),
    # shaped like real apps (issue 12): found by the opening's first few examples
    Story("social", 8),  # a before_request stamp, then check-then-insert of a follow
    Story("forum", 8),  # a get-or-create after the request's second commit
    Story("lastitem", 8),  # two users buy the last item; one user's double click
    Story("inbox", 12),  # DELETE-then-INSERT: a deadlock on MariaDB, a stale count
    Story("gallery", 8, fixed_examples=30),  # 33 endpoints, one counter race
    # shaped like real apps: values that vary on their own, no ignore lists (issue 11)
    Story("signup", 10),
    Story("apitoken", 10),
    Story("classifier", 10),
    Story("playlist", 10),
    # every request refused serially too (409): no race on correct code (issue 19)
    Story("refusals", 10, fixed_examples=60),
    # history rows keyed by a transaction sequence; a page that commits three times
    Story("history", 10, fixed_examples=60),
    # a random value in a column beside a lost update of it: masked only where it varied
    Story("dice", 10, fixed_examples=60),
    # slow, never hung (issue 19): the default password hash cost and a 10 MB page
    Story("shoplogin", 8, fixed_examples=20),
    # logs every request, and every error with its traceback, to the terminal (issue 19)
    Story("noisy", 8),
    # a get-or-create of settings on every page: not a stamp, the race (issue 19)
    Story("sitesettings", 8),
    # memoized settings read by every view, before a cache counter's race (issue 19)
    Story("ctfmemo", 8),
    # one booking cancelled twice: a double delete, one kind whatever the order (issue 19)
    Story("doubledelete", 8, fixed_examples=60),
    # the last doctor on call refused with 409, serially too: no race on correct code
    Story("rota", 8, fixed_examples=60),
    # a label's key freed by a DELETE and given again by an INSERT (SQLite)
    Story("labels", 8, fixed_examples=60),
    # one check, two races on different rows: a double unlock and an overdraft
    Story("hints", 8, fixed_examples=60),
]
STORIES = {story.name: story for story in CATALOG}


def cell(name: str, database: str) -> pytest.MarkDecorator:
    """The xdist group of one story on one database: its tests share a worker, so they
    share the one run of the buggy twin there."""
    return pytest.mark.xdist_group(f"catalog-{name}-{database}")


class CatalogRuns:
    """The buggy twin's run of each story on each database, made at most once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._runs: dict[tuple[str, str], api.RunReport] = {}

    def buggy(self, story: Story, db: str) -> api.RunReport:
        key = (story.name, db)
        if key not in self._runs:
            directory = self.root / f"{story.name}-{db}"
            directory.mkdir(parents=True, exist_ok=True)
            self._runs[key] = api.run(
                f"targets.{story.name}:buggy",
                db=db,
                max_examples=story.examples,
                seed=story.seed,
                report_dir=str(directory),
                example_db=None,
            )
        return self._runs[key]
