"""A newsletter sign-up that keeps a Redis client it never uses: its factory builds one
from ``REDIS_URL`` into ``app.extensions["redis"]`` (as Flask-Redis does), but with
``REDIS_ENABLED = False`` no request calls it. The fuzzer does not own that server and
could not reset it, so a request that used it would stop the run; one that never does
is fuzzed like any other app.

The planted race: ``POST /subscribe`` (JSON ``{"email": …}``) looks the address up and
inserts it when it is not there: two sign-ups of one address both insert
(duplicate-insert). ``create_app(fixed=True)`` is the fixed twin: one ``INSERT … SELECT
… WHERE NOT EXISTS``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from redis import Redis

db = SQLAlchemy()


class Subscriber(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(120), nullable=False)


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI="sqlite:///newsletter.db",
        REDIS_URL="redis://127.0.0.1:6379/3",
        REDIS_ENABLED=False,  # the rate limiter is off in development
    )
    db.init_app(app)
    app.extensions["redis"] = Redis.from_url(app.config["REDIS_URL"])

    @app.cli.command("seed")
    def seed() -> None:
        db.session.add(Subscriber(email="first@example.com"))
        db.session.commit()

    @app.post("/subscribe")
    def subscribe() -> Any:
        email = str((request.get_json() or {})["email"])
        if app.config["REDIS_ENABLED"]:
            app.extensions["redis"].incr(f"signups:{request.remote_addr}")
        if fixed:
            done = db.session.execute(
                sa.insert(Subscriber).from_select(
                    ["email"],
                    sa.select(sa.literal(email)).where(
                        ~sa.exists().where(Subscriber.email == email)
                    ),
                )
            )
            db.session.commit()
            return jsonify(subscribed=bool(done.rowcount))  # type: ignore[attr-defined]
        if db.session.scalar(sa.select(Subscriber).where(Subscriber.email == email)):
            return jsonify(subscribed=False)
        db.session.add(Subscriber(email=email))
        db.session.commit()
        return jsonify(subscribed=True)

    return app
