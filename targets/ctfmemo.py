"""A CTF whose every view reads its settings through ``@cache.memoize``: the max-attempts
race behind them is found, shrunk to one switch and explained without them.

Shaped like CTFd: every request first reads the platform's settings (the CTF's name and
its attempt limit) through a memoized getter (``cache.memoize``), which on a miss reads
the ``settings`` table and stores the value under a hashed key. Setup leaves the memo
empty, so two requests at once both miss and both fill it with the same value: cache
calls that share keys, but no race. Before they were told apart, their steps came first
among the conflict points and the race below was not found in 30 examples.

The race, as in ``targets.attempts``: two flag submissions per user and challenge, the
counter in Flask-Caching under ``attempts:<user>:<challenge>``, read, checked, written
back as ``count + 1``. Alice has one attempt (setup leaves the counter at 1); two
submissions of hers at once both read 1 and both pass: her third attempt is recorded, a
``limit-overrun``. The fixed twin counts with the cache's atomic increment
(``cache.cache.inc``) and refuses when the count it got is over the limit.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from flask_caching import Cache
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import ForeignKey, String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target

MAX_ATTEMPTS = 2


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
cache = Cache()


class Challenge(db.Model):  # type: ignore[name-defined]
    __tablename__ = "challenges"
    id: Mapped[int] = mapped_column(primary_key=True)
    flag: Mapped[str] = mapped_column(String(40))


class Setting(db.Model):  # type: ignore[name-defined]
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(40))


@cache.memoize()
def setting(key: str) -> str:
    return db.session.get(Setting, key).value  # type: ignore[union-attr]


class Submission(db.Model):  # type: ignore[name-defined]
    __tablename__ = "submissions"
    id: Mapped[int] = mapped_column(primary_key=True)
    user: Mapped[str] = mapped_column(String(20))
    challenge_id: Mapped[int] = mapped_column(ForeignKey("challenges.id"))
    correct: Mapped[bool]


def create_app(
    database_url: str, *, atomic: bool = False, config: dict[str, Any] | None = None
) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)
    cache.init_app(app, config=config or {"CACHE_TYPE": "SimpleCache"})

    @app.post("/challenges/<int:challenge_id>/submit")
    def submit(challenge_id: int) -> Any:
        data = request.get_json()
        user, flag = data["user"], data["flag"]
        limit = int(setting("max_attempts"))
        name = setting("ctf_name")
        challenge = db.session.get(Challenge, challenge_id)
        if challenge is None:
            return jsonify(error="no such challenge"), 404
        key = f"attempts:{user}:{challenge_id}"
        # the fix: one step that reads, adds one and writes (under SimpleCache's lock)
        used = (cache.cache.inc(key) or 0) if atomic else (cache.get(key) or 0) + 1
        if used > limit:
            return jsonify(error="no attempts left"), 429
        if not atomic:
            cache.set(key, used)
        correct = flag == challenge.flag
        db.session.add(Submission(user=user, challenge_id=challenge_id, correct=correct))
        db.session.commit()
        return jsonify(ctf=name, correct=correct)

    @app.get("/challenges/<int:challenge_id>/solves")
    def solves(challenge_id: int) -> Any:
        count = db.session.scalar(
            select(func.count())
            .select_from(Submission)
            .where(Submission.challenge_id == challenge_id, Submission.correct)
        )
        return jsonify(ctf=setting("ctf_name"), challenge=challenge_id, solves=count)

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, atomic=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all([Challenge(id=1, flag="flag{one}"), Challenge(id=2, flag="flag{two}")])
    db.session.add_all(
        [
            Setting(key="ctf_name", value="demo ctf"),
            Setting(key="max_attempts", value=str(MAX_ATTEMPTS)),
        ]
    )
    db.session.add(Submission(user="alice", challenge_id=1, correct=False))
    db.session.commit()
    cache.set("attempts:alice:1", 1)  # her earlier attempt


ENDPOINTS = [
    Endpoint(
        "POST",
        st.sampled_from(["/challenges/1/submit", "/challenges/2/submit"]),
        json=st.fixed_dictionaries(
            {
                "user": st.sampled_from(["alice", "bob"]),
                "flag": st.sampled_from(["flag{guess}", "flag{one}"]),
            }
        ),
        name="POST /challenges/<id>/submit",
    ),
    Endpoint(
        "GET",
        st.sampled_from(["/challenges/1/solves", "/challenges/2/solves"]),
        name="GET /challenges/<id>/solves",
    ),
]

buggy = Target(
    name="ctfmemo",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"limit-overrun"}),
    description="a max-attempts counter in Flask-Caching, read and written back",
)

fixed = Target(
    name="ctfmemo-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="the counter is incremented atomically (SimpleCache.inc)",
)
