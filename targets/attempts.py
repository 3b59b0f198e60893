"""A max-attempts check whose counter lives in Flask-Caching: a third attempt gets through.

The production story: a CTF platform allows two flag submissions per user and
challenge. The counter is not in the database: it sits in Flask-Caching (a
SimpleCache, in process), under ``attempts:<user>:<challenge>``. A submission reads
the counter, refuses (429) when it is used up, and otherwise writes ``count + 1``
back and records the submission. Alice has already made one attempt (setup leaves
the counter at 1). Two submissions of hers at once both read 1, both pass the check,
both write 2: her third attempt is recorded. One after the other, the second is
refused. The database shows it (three submissions where two is the limit): a
``limit-overrun``, found only because the cache calls are scheduling points.

The fixed twin counts with the cache's atomic increment (``cache.cache.inc``, under
SimpleCache's lock) and refuses when the count it got is over the limit: two
submissions at once get 2 and 3, and the second is refused.
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
        challenge = db.session.get(Challenge, challenge_id)
        if challenge is None:
            return jsonify(error="no such challenge"), 404
        key = f"attempts:{user}:{challenge_id}"
        # the fix: one step that reads, adds one and writes (under SimpleCache's lock)
        used = (cache.cache.inc(key) or 0) if atomic else (cache.get(key) or 0) + 1
        if used > MAX_ATTEMPTS:
            return jsonify(error="no attempts left"), 429
        if not atomic:
            cache.set(key, used)
        correct = flag == challenge.flag
        db.session.add(Submission(user=user, challenge_id=challenge_id, correct=correct))
        db.session.commit()
        return jsonify(correct=correct)

    @app.get("/challenges/<int:challenge_id>/solves")
    def solves(challenge_id: int) -> Any:
        count = db.session.scalar(
            select(func.count())
            .select_from(Submission)
            .where(Submission.challenge_id == challenge_id, Submission.correct)
        )
        return jsonify(challenge=challenge_id, solves=count)

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, atomic=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all([Challenge(id=1, flag="flag{one}"), Challenge(id=2, flag="flag{two}")])
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
    name="attempts",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"limit-overrun"}),
    description="a max-attempts counter in Flask-Caching, read and written back",
)

fixed = Target(
    name="attempts-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="the counter is incremented atomically (SimpleCache.inc)",
)
