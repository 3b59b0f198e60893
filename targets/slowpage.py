"""A page whose view computes for a settable while (``SPIN_SECONDS``): slow, never stuck.

The production story: a report page hashes or renders for a long time on a loaded
machine, longer than the fuzzer's HTTP client waits for an answer. Its thread runs all
along (its CPU clock and its stack move), then answers. Before issue 19 item 4 was
done, such a request ran past the client's timeout and stopped the whole search as
"stuck" (a deadlock in Python); it is slow, not stuck: the example is not judged and
the search goes on.

``GET /report`` reads the visit counter, computes for ``app.config["SPIN_SECONDS"]``
(0 by default: set it once the session is open, so setup and logins stay quick), and
answers the count. ``POST /visits`` counts a visit with one atomic ``UPDATE``. There
is no race here.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from flask import Flask, jsonify
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Counter(db.Model):  # type: ignore[name-defined]
    __tablename__ = "counter"
    id: Mapped[int] = mapped_column(primary_key=True)
    visits: Mapped[int] = mapped_column(default=0)


def spin(seconds: float) -> None:
    """Compute for ``seconds``: the thread's CPU clock and stack move all along."""
    until = time.monotonic() + seconds
    digest = b""
    while time.monotonic() < until:
        digest = hashlib.sha256(digest).digest()


def create_app(database_url: str) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    app.config["SPIN_SECONDS"] = 0.0
    db.init_app(app)

    @app.get("/report")
    def report() -> Any:
        visits = db.session.execute(select(Counter.visits)).scalar_one()
        spin(float(app.config["SPIN_SECONDS"]))
        return jsonify(visits=visits)

    @app.post("/visits")
    def visit() -> Any:
        db.session.execute(update(Counter).values(visits=Counter.visits + 1))
        db.session.commit()
        return jsonify(ok=True)

    return app


def setup(app: Flask) -> None:
    with app.app_context():
        db.create_all()
        db.session.add(Counter(id=1, visits=0))
        db.session.commit()


target = Target(
    name="slowpage",
    app=create_app,
    setup=setup,
    endpoints=[Endpoint("GET", "/report"), Endpoint("POST", "/visits")],
    max_requests=2,
    description="a page that computes longer than the client waits: slow, not stuck",
)
