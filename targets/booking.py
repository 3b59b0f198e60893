"""A race that needs three requests: a slot with two places, checked then booked.

The production story: ``POST /book`` counts the bookings of a time slot, refuses if the
slot is full (capacity 2), and otherwise inserts a booking. Two overlapping bookings
are harmless — both fit. Only a third one that also counts before either of the
others has committed pushes the slot over capacity, so the smallest failing scenario
has exactly three requests.

The fixed twin claims a place with one conditional UPDATE
(``booked = booked + 1 WHERE booked < capacity``) and books only if it matched a row.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import ForeignKey, String, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Slot(db.Model):  # type: ignore[name-defined]
    __tablename__ = "slots"
    id: Mapped[int] = mapped_column(primary_key=True)
    capacity: Mapped[int]
    booked: Mapped[int] = mapped_column(default=0)


class Booking(db.Model):  # type: ignore[name-defined]
    __tablename__ = "bookings"
    id: Mapped[int] = mapped_column(primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id"))
    guest: Mapped[str] = mapped_column(String(40))


def create_app(database_url: str, *, claim_atomically: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    @app.post("/book")
    def book() -> Any:
        data = request.get_json()
        slot = db.session.get_one(Slot, data["slot"])
        if claim_atomically:
            claimed = db.session.execute(
                update(Slot)
                .where(Slot.id == slot.id, Slot.booked < Slot.capacity)
                .values(booked=Slot.booked + 1)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                db.session.rollback()
                return jsonify({"error": "slot full"}), 422
        else:
            taken = db.session.execute(
                select(func.count()).select_from(Booking).filter_by(slot_id=slot.id)
            ).scalar_one()
            if taken >= slot.capacity:
                return jsonify({"error": "slot full"}), 422
        db.session.add(Booking(slot_id=slot.id, guest=data["guest"]))
        db.session.commit()
        return jsonify({"slot": slot.id, "guest": data["guest"]}), 201

    @app.get("/slot/<int:slot_id>")
    def show(slot_id: int) -> Any:
        guests = db.session.scalars(select(Booking.guest).filter_by(slot_id=slot_id)).all()
        return jsonify({"slot": slot_id, "guests": sorted(guests)})

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, claim_atomically=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add(Slot(id=1, capacity=2, booked=0))
    db.session.commit()


ENDPOINTS = [
    Endpoint(
        "POST",
        "/book",
        json=st.fixed_dictionaries(
            {"slot": st.just(1), "guest": st.sampled_from(["ann", "bob", "cy"])}
        ),
    ),
    Endpoint("GET", "/slot/1"),
]

buggy = Target(
    name="booking",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    max_requests=3,
    max_init_requests=0,
    expected_findings=frozenset({"limit-overrun"}),
    description="capacity 2 checked in Python: three overlapping bookings overrun it",
)

fixed = Target(
    name="booking-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    max_requests=3,
    max_init_requests=0,
    description="a place is claimed with one conditional UPDATE",
)
