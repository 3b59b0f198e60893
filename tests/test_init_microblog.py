"""`fuzzer init` on an app shaped like the Flask Mega-Tutorial (targets/microblog): the
spec it writes is pinned as tests/fixtures/fuzz_microblog.py, and that spec, as written,
finds each of the app's three planted races, and none of them in its fixed twin.

After a deliberate change to what init writes: ``pytest tests/test_init_microblog.py
--update-golden``, then review ``git diff -- tests/fixtures``."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from fuzzer import api
from fuzzer.init.spec import write_spec
from targets.microblog import create_app
from targets.microblog.config import FixedConfig

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "fixtures" / "fuzz_microblog.py"

LIKE = "POST /api/posts/<int:id>/like"
FOLLOW = "POST /follow/<username>"
REGISTER = "POST /auth/register"


@pytest.mark.slow
def test_init_writes_the_pinned_spec(tmp_path: Any, update_golden: bool) -> None:
    written = write_spec("targets.microblog:create_app", str(tmp_path / "fuzz_microblog.py"))
    text = Path(written.path).read_text(encoding="utf-8")
    if update_golden:
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")
    kept = [f"{r.method} {r.rule}" for r in written.plan.routes if written.plan.kept(r)]
    assert {LIKE, FOLLOW, REGISTER} <= set(kept) and len(kept) == 7
    assert len(written.plan.routes) == 19  # the other 12 are listed in a comment


def search(target: Any) -> dict[str, set[str]]:
    report = api.run(
        target, max_examples=40, seed=1, shrink_budget=1.0, report_dir=None, example_db=None
    )
    found: dict[str, set[str]] = {}
    for finding in report.findings:
        # one statement's error reached by several routes is one finding listing them all
        for endpoint in {*finding.endpoints, *finding.extra.get("routes", ())}:
            found.setdefault(endpoint, set()).add(finding.kind)
    return found


@pytest.mark.slow
def test_the_spec_as_written_finds_every_planted_race() -> None:
    from tests.fixtures.fuzz_microblog import target

    found = search(target)
    assert "lost-update" in found.get(LIKE, set())  # two likes count one
    assert found.get(FOLLOW, set()) & {"duplicate-insert", "limit-overrun"}  # followed twice
    assert "concurrency-error" in found.get(REGISTER, set())  # IntegrityError on the name


@pytest.mark.slow
def test_the_spec_finds_none_of_them_in_the_fixed_twin(monkeypatch: Any) -> None:
    import tests.fixtures.fuzz_microblog as spec

    monkeypatch.setattr(spec, "create_app", partial(create_app, FixedConfig))
    found = search(replace(spec.target, name="microblog-fixed"))
    assert LIKE not in found and FOLLOW not in found
    assert "concurrency-error" not in found.get(REGISTER, set())
