"""A first try as a new user makes it: `fuzzer init` on an app of each shape, its spec
run unedited, finds the planted race; the fixed twin, under the same spec, gives none.

Each app is a package under targets/ whose docstring says its shape and its race;
``create_app(fixed=True)`` is its fixed twin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from fuzzer import api
from fuzzer.execute.instrument import load_target
from fuzzer.init.spec import write_spec

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Shape:
    name: str  # targets.<name>:create_app
    races: tuple[tuple[str, frozenset[str]], ...]  # endpoint, what it may be reported as
    setup: str  # what init's setup runs, as the CLI says it
    identities: int  # how many the spec declares
    left_out: tuple[tuple[str, str], ...] = ()  # endpoints the spec leaves out, and why
    says: tuple[str, ...] = ()  # what the spec's source holds

    def __str__(self) -> str:
        return self.name


SHAPES = [
    # a seed command with an arbitrary name in a click group, after another one
    Shape(
        "photos",
        (("POST /photo/<int:photo_id>/like", frozenset({"lost-update"})),),
        "create_all, command content init-app, command content lorem",
        3,
    ),
    # no seed at all: rows made from the models
    Shape(
        "bookmarks",
        (("POST /items/<int:item_id>/save", frozenset({"duplicate-insert", "limit-overrun"})),),
        "create_all, fill",
        3,
    ),
    # sign-in by email, a typed integer form field
    Shape(
        "bank",
        (("POST /withdraw", frozenset({"lost-update", "limit-overrun", "write-skew"})),),
        "create_all, command seed",
        3,
        (("GET /balance", "200 as ben@bank.test; read only (customer)"),),
    ),
    # a MethodView's form, and a form a helper builds with choices made at request time
    Shape(
        "board",
        (
            ("POST /topic/<int:topic_id>/reply", frozenset({"lost-update"})),
            ("POST /poll/<int:poll_id>/vote", frozenset({"duplicate-insert", "limit-overrun"})),
        ),
        "create_all, command seed",
        3,
    ),
    # a select field whose choices the form computes when it is made
    Shape(
        "transfers",
        (("POST /transfer", frozenset({"lost-update", "limit-overrun", "write-skew"})),),
        "create_all, command sample-data",
        3,
    ),
    # no user accounts: a project and its code, by HTTP Basic or a login form's session
    Shape(
        "splitbill",
        (("POST /api/projects/<project_id>/bills", frozenset({"lost-update"})),),
        "create_all, call targets.splitbill:create_demo_project",
        3,
        (("POST /authenticate", "turned away: 401 as demo"),),
    ),
    # a Redis client the app keeps and never uses
    Shape(
        "newsletter",
        (("POST /subscribe", frozenset({"duplicate-insert", "limit-overrun"})),),
        "create_all, command seed",
        0,
    ),
    # a checkout that needs a cart made by earlier requests
    Shape(
        "cart",
        (("POST /api/checkout", frozenset({"limit-overrun", "lost-update", "duplicate-insert"})),),
        "create_all, command seed",
        3,
    ),
    # a setup wizard that every page redirects to, counting the visits in its cache
    Shape(
        "ctf",
        (
            (
                "POST /challenges/<int:challenge_id>/solve",
                frozenset({"duplicate-insert", "lost-update", "limit-overrun"}),
            ),
        ),
        "create_all, request /setup, fill player",
        3,
    ),
    # no Flask-Login: an API token from the app's token endpoint (HTTP Basic in, Bearer out)
    Shape(
        "tokens",
        (("POST /api/wallet/topup", frozenset({"lost-update"})),),
        "create_all, command seed",
        3,
        (("POST /api/tokens", "turned away: 401 as ann"),),
    ),
    # Flask-Login pages, and an API that wants a token from the app's own endpoint
    Shape(
        "journal",
        (("POST /api/entries/<int:entry_id>/star", frozenset({"lost-update"})),),
        "create_all, command seed",
        3,
        (("POST /api/tokens", "turned away: 401 as jon"),),
        ('token=bearer_token("/api/tokens", basic=("jon", "journal-pass"))',),
    ),
    # a payment that needs a reservation, made in setup on the event with seats to
    # spare: the one-seat event stays free for the oversell
    Shape(
        "reservations",
        (
            ("POST /events/<int:event_id>/reserve", frozenset({"limit-overrun", "lost-update"})),
            (
                "POST /reservations/<int:reservation_id>/pay",
                frozenset({"lost-update", "stale-read", "write-skew"}),
            ),
        ),
        "create_all, command seed",
        3,
        (),
        (
            'app_request(app, "POST", "/events/2/reserve", as_="bob", identities=IDENTITIES)',
            "<reservation_id>: the values of reservation.id after setup (2 now)",
        ),
    ),
    # no seed: the test suite's own fixtures and factories make the users and items
    Shape(
        "helpers",
        (("POST /items/<int:item_id>/buy", frozenset({"limit-overrun", "lost-update"})),),
        "create_all, fixture targets.helpers.tests.conftest:item, "
        "fixture targets.helpers.tests.conftest:users",
        3,
        (),
        ('pytest_fixture(app, "targets.helpers.tests.conftest:users")',),
    ),
    # a Faker seed: random names in every setup, the same spec every time
    Shape(
        "recipes",
        (("POST /recipe/<int:recipe_id>/rate", frozenset({"lost-update"})),),
        "create_all, command fake-data",
        3,
    ),
    # a JSON API whose order names its product by an integer code in a field that names
    # no column: the field's values found by probing
    Shape(
        "warehouse",
        (("POST /api/orders", frozenset({"lost-update", "limit-overrun"})),),
        "create_all, command seed",
        0,
    ),
    # HTML pages whose form shows itself again with an error unless its field gets a
    # column's value (found by probing); a form's errors read from the page
    Shape(
        "library",
        (("POST /borrow", frozenset({"lost-update", "limit-overrun"})),),
        "create_all, command seed",
        3,
        (
            (
                "POST /account/holiday",
                "validation error (200 as ole): away_until: Pick a day after today.",
            ),
            ("POST /sign-in", "validation error (200 as ole): Wrong username or password."),
        ),
    ),
    # written for a tryout, init not tuned on it: a JSON API whose members sign in with a
    # personal API key a row holds (random, printed by the seed), sent as a Bearer token;
    # a reaction's emoji must be one the answer lists
    Shape(
        "tryout_kudos",
        (
            ("POST /api/kudos", frozenset({"lost-update", "limit-overrun", "write-skew"})),
            (
                "POST /api/kudos/<int:kudos_id>/reactions",
                frozenset({"duplicate-insert", "limit-overrun"}),
            ),
            (
                "POST /api/rewards/<int:reward_id>/redeem",
                frozenset({"lost-update", "limit-overrun"}),
            ),
        ),
        "create_all, command load-fixtures",
        3,
        (),
        ('Identity("mara", headers=stored_token("api_keys.key", 1))',),
    ),
    # a JSON transfer naming two accounts by number in fields that name no column, whose
    # answer says only "unknown account": the two fields probed together
    Shape(
        "ledger",
        (("POST /api/transfers", frozenset({"lost-update", "limit-overrun"})),),
        "create_all, command seed",
        3,
    ),
]


def _step(kind: str, name: str) -> str:
    if kind == "request":  # a form posted once: {"path": ..., "form": {...}}
        return f"request {json.loads(name)['path']}"
    return f"{kind} {name}".strip()


def first_try(shape: Shape, tmp_path: Any) -> tuple[Any, Any]:
    """init's spec for the shape, written and loaded as it is."""
    path = tmp_path / f"fuzz_{shape.name}.py"
    written = write_spec(f"targets.{shape.name}:create_app", str(path))
    sys.path.insert(0, str(tmp_path))
    try:
        sys.modules.pop(path.stem, None)
        target = load_target(f"{path.stem}:target")
        module = sys.modules[path.stem]
    finally:
        sys.path.remove(str(tmp_path))
    return written, (module, target)


def search(target: Any, examples: int, stop: bool) -> Any:
    return api.run(
        target,
        max_examples=examples,
        seed=1,
        shrink_budget=2.0,
        report_dir=None,
        example_db=None,
        stop_at_first=stop,
    )


@pytest.mark.slow  # 10 to 60 s a shape on a loaded machine: a nightly check
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_inits_spec_unedited_finds_the_planted_race(shape: Shape, tmp_path: Any) -> None:
    written, (_, target) = first_try(shape, tmp_path)
    plan = written.plan
    assert ", ".join(_step(k, n) for k, n in plan.setup) == shape.setup
    assert len(plan.identities) == shape.identities
    # every signed-in identity proven by a request that needs it
    assert len(plan.proofs) == len(plan.users)
    assert all(" proven by " in line for line in plan.proofs), plan.proofs
    source = " ".join(line.strip("# ") for line in Path(written.path).read_text().splitlines())
    for endpoint, why in shape.left_out:  # in the spec, and in the plan the CLI prints
        assert plan.left_out[endpoint] == why and f"{endpoint}: {why}" in source
    for text in shape.says:
        assert text in Path(written.path).read_text(), text
    kept = [f"{r.method} {r.rule}" for r in plan.routes if plan.kept(r)]
    assert {endpoint for endpoint, _ in shape.races} <= set(kept)
    report = search(target, 300, stop=len(shape.races) == 1)
    found = [(f.kind, f.endpoints, f.found_after) for f in report.findings]
    for endpoint, kinds in shape.races:
        assert any(k in kinds and endpoint in e for k, e, _ in found), (endpoint, found)


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_the_fixed_twin_gives_no_finding(shape: Shape, tmp_path: Any) -> None:
    _, (module, target) = first_try(shape, tmp_path)
    module.create_app = partial(module.create_app, fixed=True)
    report = search(replace(target, name=f"{shape.name}-fixed"), 60, stop=False)
    assert [(f.kind, f.endpoints) for f in report.findings] == []


def test_the_shapes_are_packages_with_a_fixed_twin() -> None:
    root = Path(__file__).resolve().parent.parent / "targets"
    for shape in SHAPES:
        assert (root / shape.name / "__init__.py").exists(), shape.name


def fuzzer(*args: str, cwd: Any, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fuzzer", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def findings_of(report_dir: Path) -> list[tuple[str, list[str]]]:
    (manifest,) = report_dir.glob("*/manifest.json")
    return [(f["kind"], f["endpoints"]) for f in json.loads(manifest.read_text())["findings"]]


@pytest.mark.slow  # about a minute: init and two runs, each in a process of its own
def test_a_factory_that_runs_once_per_process_gets_its_pins_in_a_fresh_one(
    tmp_path: Any,
) -> None:
    """targets.coupons: its factory raises when called twice in one process, and it
    needs CSRF and SERVER_NAME pinned off. init builds it again elsewhere, and the spec,
    run as written by `fuzzer run` (one build per process), finds the planted race; the
    same spec on the fixed twin finds nothing."""
    init = fuzzer("init", "targets.coupons:create_app", "-o", "fuzz_coupons.py", cwd=tmp_path)
    assert init.returncode == 0, init.stdout + init.stderr
    assert "setup: flask init-db, flask seed" in init.stdout
    source = (tmp_path / "fuzz_coupons.py").read_text(encoding="utf-8")
    assert "WTF_CSRF_ENABLED=False" in source and "SERVER_NAME=None" in source
    run = fuzzer(
        "run", "fuzz_coupons:target", "-n", "100", "--seed", "1", "--report-dir", "a", cwd=tmp_path
    )
    assert run.returncode == 1, run.stdout + run.stderr
    kinds = {k for k, e in findings_of(tmp_path / "a") if "POST /redeem" in e}
    assert kinds & {"duplicate-insert", "limit-overrun"}, findings_of(tmp_path / "a")
    fixed = source.replace("return create_app()", "return create_app(fixed=True)")
    (tmp_path / "fuzz_coupons_fixed.py").write_text(fixed, encoding="utf-8")
    run = fuzzer(
        "run",
        "fuzz_coupons_fixed:target",
        "-n",
        "100",
        "--seed",
        "1",
        "--report-dir",
        "b",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_request_that_uses_a_redis_client_the_fuzzer_does_not_own_stops_the_run() -> None:
    """targets.newsletter with its rate limiter on: the request is refused before it
    reaches that server, and the run stops with one line saying why."""
    from fuzzer import Endpoint, Target
    from fuzzer.errors import TargetSetupError
    from fuzzer.target.apps import pinned_config
    from targets.newsletter import create_app, db

    def app(database_url: str) -> Any:
        with pinned_config(SQLALCHEMY_DATABASE_URI=database_url, REDIS_ENABLED=True):
            return create_app()

    def setup(app: Any) -> None:
        db.create_all()

    target = Target(
        name="newsletter-limited",
        app=app,
        setup=setup,
        endpoints=[Endpoint("POST", "/subscribe", json={"email": "a@example.com"})],
    )
    with pytest.raises(
        TargetSetupError, match=r"used the app's Redis client for 127\.0\.0\.1:6379/3"
    ):
        search(target, 5, stop=False)


def test_redirects_that_write_only_a_cache_key_exercise_nothing() -> None:
    """A setup wizard that counts every redirected visit in its cache: before, the
    survey saw writes and the run searched 300 examples of redirects and said "No
    findings"; now it stops before the search and says why."""
    from fuzzer.errors import TargetSetupError

    with pytest.raises(TargetSetupError, match=r"302 → /setup/ and none wrote anything but a"):
        api.run("tests.fixtures.unexercised:counting", max_examples=5, report_dir=None)


def test_a_redirect_that_reads_rows_and_writes_only_a_cache_key_exercises_nothing() -> None:
    """The wizard reads its settings table, counts the visit in its cache and redirects:
    rows read and a key written, no view's work. The survey's line says so (it said
    "302; writes cache:visits"), and the run stops before the search."""
    from fuzzer.errors import TargetSetupError
    from fuzzer.modes.prepare import check

    lines = check("tests.fixtures.unexercised:reading")
    assert lines["POST /inc"] == (
        "302; only redirected, writing nothing but a session or cache key (not exercised)"
    )
    with pytest.raises(TargetSetupError, match=r"302 → /setup/ and none wrote anything but a"):
        api.run("tests.fixtures.unexercised:reading", max_examples=5, report_dir=None)


# -- the pieces, fast (the default suite): each on an app of the catalog, built here ------


def _built(name: str, url: str = "sqlite://") -> Any:
    import importlib

    from fuzzer.target.apps import pinned_config

    module = importlib.import_module(f"targets.{name}")
    with pinned_config(SQLALCHEMY_DATABASE_URI=url, WTF_CSRF_ENABLED=False):
        return module, module.create_app()


def test_fill_tables_makes_rows_a_login_works_with() -> None:
    from fuzzer import fill_tables
    from fuzzer.target.rows import PASSWORD

    module, app = _built("bookmarks")
    with app.app_context():
        module.db.create_all()
        made = fill_tables(app)
        users = module.db.session.scalars(module.db.select(module.User)).all()
        assert made["user"] == 2 and made["item"] == 2 and made["bookmark"] == 2
        assert [u.username for u in users] == ["user1", "user2"]
        assert users[0].check_password(PASSWORD)  # through the model's own setter
        marks = module.db.session.scalars(module.db.select(module.Bookmark)).all()
        assert {(b.user_id, b.item_id) for b in marks} == {(1, 1), (2, 2)}
        assert fill_tables(app) == {}  # tables that hold rows are left as they are


def test_a_setup_wizard_is_completed_by_posting_its_form() -> None:
    from fuzzer.init.setup.wizard import complete_wizard

    _, app = _built("ctf")
    assert app.test_client().get("/scoreboard").location.endswith("/setup")
    path, form = complete_wizard(app) or ("", {})
    assert path == "/setup" and form["admin_email"] == "admin@example.com"
    assert app.test_client().get("/scoreboard").status_code == 200


def test_credentials_without_flask_login_are_proven_by_a_page_that_needs_them(
    tmp_path: Any,
) -> None:
    from fuzzer.init.factory import load_factory
    from fuzzer.init.plan import Plan
    from fuzzer.init.setup.credentials import plan_credentials
    from fuzzer.init.setup.seeding import read_all_rows, step_constants

    url = f"sqlite:///{tmp_path}/splitbill.db"
    module, app = _built("splitbill", url)
    with app.app_context():
        module.db.create_all()
        module.create_demo_project()
    plan = Plan(load_factory("targets.splitbill:create_app"), "splitbill")
    steps = [("call", "targets.splitbill:create_demo_project")]
    constants = step_constants(app, steps)
    assert "demo" in constants  # generate_password_hash("demo", …) in the seed's code
    assert plan_credentials(app, plan, read_all_rows({"default": url}), constants)
    assert plan.identities == [
        'Identity("demo", headers=basic_auth("demo", "demo"))',
        'Identity("demo-web", login=Login("/authenticate", '
        'form={"id": "demo", "password": "demo"}))',
        'Identity("anonymous")',
    ]


def test_a_seed_classmethod_of_a_model_is_a_setup_candidate(tmp_path: Any) -> None:
    """``Project.create_demo()``: a classmethod that makes rows, which no command calls."""
    import textwrap

    from fuzzer.init.factory import load_factory
    from fuzzer.init.setup.seeding import setup_steps

    code = textwrap.dedent(
        """
        from flask import Flask
        from flask_sqlalchemy import SQLAlchemy

        db = SQLAlchemy()

        class Project(db.Model):
            id = db.Column(db.Integer, primary_key=True)

            @classmethod
            def create_demo_project(cls):
                db.session.add(cls())
                db.session.commit()

        def create_app():
            app = Flask(__name__)
            app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
            db.init_app(app)
            return app
        """
    )
    (tmp_path / "classy_app.py").write_text(code, encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        factory = load_factory("classy_app:create_app")
        steps = setup_steps(factory.build(), factory)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("classy_app", None)
    assert steps == [("create_all", ""), ("call", "classy_app:Project.create_demo_project")]


def test_a_path_variable_that_names_no_column_gets_one_by_probing(tmp_path: Any) -> None:
    """``/follow/<recipient>``: no table or column is named like it; the member's
    ``handle_name`` is the column whose value the follow answers 200 for and writes."""
    from fuzzer.init.factory import load_factory
    from fuzzer.init.inputs.probing import prober
    from fuzzer.init.inputs.values import path_source
    from fuzzer.init.plan import Plan, Route
    from fuzzer.init.pysource import flat
    from fuzzer.init.setup.seeding import read_all_rows
    from fuzzer.target.apps import flask_command, pinned_config
    from tests.fixtures import follow_app

    url = f"sqlite:///{tmp_path}/follow.db"
    with pinned_config(SQLALCHEMY_DATABASE_URI=url):
        app = follow_app.create_app()
    with app.app_context():
        follow_app.db.create_all()
    flask_command(app, "seed")
    rows = read_all_rows({"default": url})
    plan = Plan(load_factory("tests.fixtures.follow_app:create_app"), "follow")
    plan.user_keys = [1]
    route = Route("POST", "/follow/<recipient>", "follow", "")
    blind = path_source(route.rule, rows, Route("POST", route.rule, "follow", ""))
    assert "alpha" in flat(blind)  # by names alone: a short invented list (404 each)
    source = path_source(route.rule, rows, route, prober(app, plan, rows))
    assert 'recipient=values_of("member.handle_name", limit=3)' in flat(source)
