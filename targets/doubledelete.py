"""A double cancel: one booking deleted by two requests, its refund credited twice.

The production story: ``POST /bookings/<id>/cancel`` looks the booking up, answers 404
when it is gone, and otherwise deletes it, gives its seat back to the event
(``event.booked`` read, decremented and written back) and credits its price to the
customer's wallet (``credit = credit + price``). Two cancels of one booking at once
(a double click, a retry) both find it, both delete it (the second DELETE matches no
row, nobody looks), the seat is given back twice and the price refunded twice.
Serially the second cancel answers 404 and changes nothing. (The two bookings are for
two events: cancels of different bookings touch different seat counts, so the seat's
read-modify-write is no second bug.)

How the two requests interleave decides which statements race: both reads before
both writes, one read after the other's DELETE but before its commit, the seat's
write landing over the other's. It is one bug whichever way: a ``limit-overrun`` (a
DELETE that only one request may do, done twice, with its effects).

The fixed twin deletes with a statement whose row count decides (``DELETE … WHERE
id = ?``, no row deleted: 404) before anything else, and gives the seat back and
refunds with expressions.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import ForeignKey, delete, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Event(db.Model):  # type: ignore[name-defined]
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    booked: Mapped[int]


class Wallet(db.Model):  # type: ignore[name-defined]
    __tablename__ = "wallets"
    id: Mapped[int] = mapped_column(primary_key=True)
    credit: Mapped[int]


class Booking(db.Model):  # type: ignore[name-defined]
    __tablename__ = "bookings"
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    price: Mapped[int]


def create_app(database_url: str, *, fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    @app.post("/bookings/<int:booking_id>/cancel")
    def cancel(booking_id: int) -> Any:
        booking = db.session.get(Booking, booking_id)
        if booking is None:
            return jsonify(error="no such booking"), 404
        event_id, wallet_id, price = booking.event_id, booking.wallet_id, booking.price
        gone = db.session.execute(delete(Booking).where(Booking.id == booking_id))
        if fixed:
            if gone.rowcount == 0:  # type: ignore[attr-defined]
                db.session.rollback()
                return jsonify(error="no such booking"), 404
            db.session.execute(
                update(Event).where(Event.id == event_id).values(booked=Event.booked - 1)
            )
        else:  # the row count is not looked at
            event = db.session.get(Event, event_id)
            assert event is not None
            event.booked = event.booked - 1  # a value computed from what it read
        db.session.execute(
            update(Wallet).where(Wallet.id == wallet_id).values(credit=Wallet.credit + price)
        )
        db.session.commit()
        return jsonify(cancelled=booking_id, refunded=price)

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, fixed=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all([Event(id=1, booked=1), Event(id=2, booked=1)])
    db.session.add(Wallet(id=1, credit=0))
    db.session.flush()
    db.session.add_all(
        [
            Booking(id=1, event_id=1, wallet_id=1, price=30),
            Booking(id=2, event_id=2, wallet_id=1, price=50),
        ]
    )
    db.session.commit()


ENDPOINTS = [
    Endpoint(
        "POST",
        st.sampled_from([1, 2]).map(lambda i: f"/bookings/{i}/cancel"),
        name="POST /bookings/<id>/cancel",
    ),
]

buggy = Target(
    name="doubledelete",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"limit-overrun"}),
    description="a cancel checks the booking exists, then deletes it and refunds, unlocked",
)

fixed = Target(
    name="doubledelete-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="the DELETE's row count decides, before the seat and the refund",
)
