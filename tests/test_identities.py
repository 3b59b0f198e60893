"""Identities over real HTTP: logins happen once, before the snapshot; every execution
starts logged in; each request carries its own identity's session, never another's."""

from __future__ import annotations

from dataclasses import replace

import pytest

import targets.demo as demo
from fuzzer import Endpoint, Identity, flask_login_session
from fuzzer.errors import TargetSetupError
from fuzzer.execute.instrument import load_target
from fuzzer.execute.runner import Controlled
from fuzzer.model import Gene, Request, Scenario
from fuzzer.modes.session import Session


def me(identity: str) -> Request:
    return Request("GET /api/me", "GET", "/api/me", identity=identity)


def test_logins_run_once_before_the_snapshot_and_every_execution_starts_logged_in() -> None:
    target = load_target("tests.fixtures.accounts:accounts")

    def work(s: Session) -> None:
        assert s.harness is not None
        headers = s.harness.identity_headers
        assert set(headers["alice"]) == {"Cookie"} and set(headers["bob"]) == {"Cookie"}
        assert set(headers["carol"]) == {"Authorization"} and headers["nobody"] == {}
        # the logins' own writes (and carol's token) are part of the initial state
        logins = {row[1]: row[3] for row in s.databases.initial["accounts"]}
        assert logins == {"alice": 1, "bob": 1, "carol": 0}
        # the same identity twice at once (a double click), and different identities
        scenario = Scenario(
            requests=(me("alice"), me("alice"), me("bob"), me("carol"), me("nobody")),
            schedule=(Gene(0, (1,)), Gene(0, (1,)), Gene(1), Gene(2), Gene(3)),
        )
        for _ in range(2):
            execution = s.execute(scenario, Controlled())
            answers = [(r.status, r.body) for r in execution.responses if r is not None]
            assert answers[:4] == [
                (200, {"name": "alice", "logins": 1}),
                (200, {"name": "alice", "logins": 1}),
                (200, {"name": "bob", "logins": 1}),
                (200, {"name": "carol", "logins": 0}),
            ]
            assert answers[4][0] == 401
            starts = [step.request for step in execution.trace if step.kind == "start"]
            assert starts[:2] == [0, 1]  # the two alice requests really overlapped

    Session(target).run(work)


def test_members_log_in_through_the_demo_login_form() -> None:
    front = Endpoint("GET", "/")
    target = replace(
        demo.buggy,
        identities=[*demo.buggy.identities, Identity("carol", headers=flask_login_session(3))],
        endpoints=[front],
    )

    def work(s: Session) -> list[str]:
        requests = tuple(
            Request("GET /", "GET", "/", identity=name)
            for name in ("alice", "bob", "visitor", "carol")
        )
        execution = s.execute(Scenario(requests, tuple(Gene() for _ in requests)), Controlled())
        return [str(r.body) if r is not None else "" for r in execution.responses]

    alice, bob, visitor, carol = Session(target).run(work)
    assert "<nav>alice · " in alice and "<nav>bob · " in bob and "<nav>carol · " in carol
    assert ">Sign in</a></nav>" in visitor


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        (
            "tests.fixtures.bad_targets:csrf_on",
            "the login of identity 'alice' (POST /auth/login) answered 200 but did not log in: "
            "the session it set has no Flask-Login user; the login form wants a CSRF token: "
            "fuzz the app with CSRF off in its config (WTF_CSRF_ENABLED = False), as its tests do",
        ),
        (
            "tests.fixtures.accounts:wrong_password",
            "the login of identity 'alice' (POST /api/login) answered 401 "
            '({"error":"wrong name or password"}); check the login path, method and credentials',
        ),
        (
            "tests.fixtures.accounts:headers_raise",
            "the headers of identity 'carol': failing_headers(app) raised KeyError: 'API_TOKEN' "
            "at accounts.py:",
        ),
        (
            "tests.fixtures.bad_targets:seed_fails",
            "setup seed_with_a_typo(app): the app's command `flask sed` exited with 2: "
            "Error: No such command 'sed'.",
        ),
    ],
)
def test_a_failing_login_or_setup_step_is_named(reference: str, expected: str) -> None:
    with pytest.raises(TargetSetupError) as failure:
        Session(load_target(reference)).run(lambda s: None)
    message = str(failure.value)
    assert message.startswith(reference + ": ") and "\n" not in message
    assert expected in message, message
