"""Coupon redeem behind a Python lock: safe at READ COMMITTED, a double redeem at REPEATABLE READ.

The production story: ``POST /coupons/<code>/redeem`` loads the coupon (this first
read starts the transaction's snapshot), then enters a process-wide
``threading.Lock`` meant to serialize redemptions, calls ``refresh(coupon)`` "to get
the latest state", checks ``used``, marks it used, inserts an order, commits and
releases the lock.

Whether that is safe depends on the isolation level, not on the lock:

* READ COMMITTED (PostgreSQL's default) and SQLite (whose driver starts a transaction
  only at the first write): the refresh reads the latest committed row, and the lock
  makes the check and the update one step. Safe.
* REPEATABLE READ on MariaDB/MySQL (their default): the refresh re-reads the snapshot
  taken at the first read, from before the other redeem committed. Both redeems see
  ``used = false``, both pass, lock or no lock: two orders for one coupon.
* REPEATABLE READ on PostgreSQL: the same stale check, but the UPDATE of a row changed
  since the snapshot fails with a serialization failure (40001).
* SERIALIZABLE on MariaDB/MySQL: every plain read takes a shared lock. One redeem holds
  the Python lock and waits for the other's shared row lock; the other waits for the
  Python lock: a deadlock across the Python lock and the row lock that the database
  cannot see — a hang.

The fixed twin ends the snapshot before it waits for the lock (it commits the first
read) and locks the row inside it (``refresh(..., with_for_update=True)``).

A request blocked on the Python lock is neither at a gate nor waiting in the
database; ``fuzzer.checkpoint()`` before the lock makes taking it a clean scheduling
point, and the scheduler tells a thread asleep on the lock from a running one.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, abort, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target, checkpoint


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Coupon(db.Model):  # type: ignore[name-defined]
    __tablename__ = "coupons"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    used: Mapped[bool] = mapped_column(default=False)


class Order(db.Model):  # type: ignore[name-defined]
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"))
    customer: Mapped[str] = mapped_column(String(20))


def create_app(database_url: str, *, commit_first: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)
    redeem_lock = threading.Lock()  # "only one redemption at a time"

    @app.post("/coupons/<code>/redeem")
    def redeem(code: str) -> Any:
        customer = request.get_json()["customer"]
        coupon = db.session.execute(select(Coupon).filter_by(code=code)).scalar_one_or_none()
        if coupon is None:
            abort(404)
        if commit_first:
            db.session.commit()  # the fix, part 1: no snapshot is held while waiting
        checkpoint("redeem lock")
        with redeem_lock:
            # "to get the latest state" -- the fix, part 2: lock the row while checking it
            db.session.refresh(coupon, with_for_update=commit_first or None)
            if coupon.used:
                return jsonify(error="coupon already used", code=code), 400
            coupon.used = True
            db.session.add(Order(coupon_id=coupon.id, customer=customer))
            db.session.commit()
        return jsonify(redeemed=code, customer=customer)

    @app.get("/coupons/<code>")
    def show(code: str) -> Any:
        coupon = db.session.execute(select(Coupon).filter_by(code=code)).scalar_one_or_none()
        if coupon is None:
            abort(404)
        return jsonify(code=code, used=coupon.used)

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, commit_first=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add(Coupon(id=1, code="WELCOME", used=False))
    db.session.commit()


ENDPOINTS = [
    Endpoint(
        "POST",
        "/coupons/WELCOME/redeem",
        json=st.fixed_dictionaries({"customer": st.sampled_from(["ada", "bob"])}),
    ),
    Endpoint("GET", "/coupons/WELCOME"),
]

buggy = Target(
    name="coupon",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset(),  # on SQLite, and at READ COMMITTED: the lock suffices
    expected_on={
        "mariadb/repeatable-read": frozenset({"limit-overrun"}),
        "mysql/repeatable-read": frozenset({"limit-overrun"}),
        "mariadb/serializable": frozenset({"hang"}),
        "mysql/serializable": frozenset({"hang"}),
        "postgres/repeatable-read": frozenset({"concurrency-error"}),
        "postgres/serializable": frozenset({"concurrency-error"}),
    },
    description="refresh() inside a Python lock re-reads a REPEATABLE READ snapshot",
)

fixed = Target(
    name="coupon-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="commit the first read, then lock the row inside the Python lock",
)
