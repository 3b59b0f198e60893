"""Seats reserved, then paid for: ``POST /events/<int:event_id>/reserve`` makes a
reservation, and ``POST /reservations/<int:reservation_id>/pay`` pays for one of the
signed-in user's own. Setup makes users and two events, never reservations, so the
payment sent alone after setup answers 404 and writes nothing: ``fuzzer init`` finds
the reservation as a prerequisite and makes one per identity in setup. The first event
has one seat: a reservation of it in setup would leave it full, and the race below
would never run, so setup's reservations must take the other event's seats.

The planted race: the reservation reads the seats left, checks there is one and
writes the count back minus one, computed in Python, then inserts the reservation: two
people reserving the last seat both get it (limit-overrun, lost-update). The payment
has one too: it reads that the reservation is unpaid, then marks it paid and takes the
price from the credit read before: a double click pays twice. ``create_app(fixed=True)``
is the fixed twin: the seat taken with ``UPDATE … WHERE seats_left > 0``, the
reservation made only if it did; paid with ``UPDATE … WHERE NOT paid``, the credit
taken in SQL only if it did.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, abort, jsonify
from flask_login import LoginManager, UserMixin, current_user, login_required
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
login = LoginManager()


class Member(UserMixin, db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(40), unique=True, nullable=False)
    credit = db.Column(db.Integer, nullable=False)


class Event(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(80), nullable=False)
    seats_left = db.Column(db.Integer, nullable=False)
    price = db.Column(db.Integer, nullable=False)


class Reservation(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    member_id = db.Column(db.Integer, db.ForeignKey("member.id"), nullable=False)
    event_id = db.Column(db.Integer, db.ForeignKey("event.id"), nullable=False)
    paid = db.Column(db.Boolean, nullable=False, default=False)


@login.user_loader
def load_user(user_id: str) -> Member | None:
    return db.session.get(Member, int(user_id))


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite:///reservations.db", SECRET_KEY="seats")
    db.init_app(app)
    login.init_app(app)

    @app.cli.command("seed")
    def seed() -> None:
        db.session.add_all([Member(username="ann", credit=100), Member(username="bob", credit=100)])
        db.session.add_all(
            [
                Event(title="gala", seats_left=1, price=30),
                Event(title="fair", seats_left=50, price=5),
            ]
        )
        db.session.commit()

    @app.post("/events/<int:event_id>/reserve")
    @login_required
    def reserve(event_id: int) -> Any:
        event = db.get_or_404(Event, event_id)
        if fixed:
            taken = db.session.execute(
                sa.update(Event)
                .where(Event.id == event.id, Event.seats_left > 0)
                .values(seats_left=Event.seats_left - 1)
            )
            if not taken.rowcount:  # type: ignore[attr-defined]
                db.session.rollback()
                return jsonify(error="sold out"), 409
        else:
            if event.seats_left < 1:
                return jsonify(error="sold out"), 409
            event.seats_left = event.seats_left - 1
        reservation = Reservation(member_id=current_user.id, event_id=event.id)
        db.session.add(reservation)
        db.session.commit()
        return jsonify(reservation=reservation.id), 201

    @app.post("/reservations/<int:reservation_id>/pay")
    @login_required
    def pay(reservation_id: int) -> Any:
        reservation = db.session.get(Reservation, reservation_id)
        if reservation is None or reservation.member_id != current_user.id:
            abort(404)
        if reservation.paid:
            return jsonify(error="already paid"), 409
        event = db.get_or_404(Event, reservation.event_id)
        member = db.get_or_404(Member, current_user.id)
        if fixed:
            done = db.session.execute(
                sa.update(Reservation)
                .where(Reservation.id == reservation.id, Reservation.paid.is_(False))
                .values(paid=True)
            )
            if not done.rowcount:  # type: ignore[attr-defined]
                db.session.rollback()
                return jsonify(error="already paid"), 409
            db.session.execute(
                sa.update(Member)
                .where(Member.id == member.id)
                .values(credit=Member.credit - event.price)
            )
        else:
            reservation.paid = True
            member.credit = member.credit - event.price
        db.session.commit()
        return jsonify(paid=True)

    return app
