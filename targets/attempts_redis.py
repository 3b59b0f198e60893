"""A max-attempts check whose counter lives in Redis: a third attempt gets through.

The production story: the CTF platform of ``targets.attempts``, scaled out to several
processes, moved its attempt counter to Redis (redis-py, ``attempts:<user>:<challenge>``):
a submission GETs the counter, refuses (429) when it is used up, and otherwise SETs
``count + 1`` and records the submission. Alice has made one attempt of two (setup
leaves the counter at 1). Two submissions of hers at once both GET 1, both pass, both
SET 2: a third attempt is recorded, where one after the other the second is refused
(a ``limit-overrun``). Redis runs each command atomically; the race is between them.

The target declares ``Target(redis=True)``: the factory receives the URL of a Redis
database the fuzzer claimed for the run, and the fuzzer restores it before every
execution to what setup left there.

The fixed twin counts with ``INCR``, one atomic read-modify-write, and refuses when
the count it got is over the limit.
"""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Target

from .attempts import ENDPOINTS, MAX_ATTEMPTS  # the same requests and limit


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


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


def create_app(database_url: str, redis_url: str, *, atomic: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)
    counters = redis.Redis.from_url(redis_url)
    app.extensions["redis"] = counters

    @app.post("/challenges/<int:challenge_id>/submit")
    def submit(challenge_id: int) -> Any:
        data = request.get_json()
        user, flag = data["user"], data["flag"]
        challenge = db.session.get(Challenge, challenge_id)
        if challenge is None:
            return jsonify(error="no such challenge"), 404
        key = f"attempts:{user}:{challenge_id}"
        # the fix: INCR, one atomic read-modify-write
        used = int(counters.incr(key)) if atomic else int(counters.get(key) or 0) + 1
        if used > MAX_ATTEMPTS:
            return jsonify(error="no attempts left"), 429
        if not atomic:
            counters.set(key, used)
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


def create_fixed_app(database_url: str, redis_url: str) -> Flask:
    return create_app(database_url, redis_url, atomic=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all([Challenge(id=1, flag="flag{one}"), Challenge(id=2, flag="flag{two}")])
    db.session.add(Submission(user="alice", challenge_id=1, correct=False))
    db.session.commit()
    app.extensions["redis"].set("attempts:alice:1", 1, ex=3600)  # her earlier attempt


buggy = Target(
    name="attempts-redis",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    redis=True,
    expected_findings=frozenset({"limit-overrun"}),
    description="a max-attempts counter in Redis, read with GET and written back with SET",
)

fixed = Target(
    name="attempts-redis-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    redis=True,
    description="the counter is incremented with INCR",
)
