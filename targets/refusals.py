"""Refusals: three checks that answer 409, racing in the buggy twin, correct in the fixed.

The production story: a small club app keeps members' accounts, events with a number of
seats, and sign-ups by name. Each action checks a rule and answers ``409 Conflict``
when the rule says no:

* ``POST /accounts/<id>/withdraw`` refuses an amount over the balance;
* ``POST /events/<id>/rsvp`` refuses a seat at a full event (event 1 is full from the
  start, event 2 has one seat);
* ``POST /signup`` refuses a name that is taken (``ann`` is taken from the start).

Many examples have every request refused, serially too (two withdrawals of 150 from a
balance of 100, two RSVPs to the full event, two sign-ups of ``ann``): the fixed twin
must give no finding for them, nor for any other example. The buggy twin checks, then
acts, without a lock: two withdrawals of 60 both pass the check, both are paid out (two
rows in the ledger) and the balance ends at 40; two RSVPs to the last seat both get it; two
sign-ups of one new name make two members.

The fixed twin decides where the database serializes it: a conditional ``UPDATE …
WHERE balance >= :amount`` (no row changed: refused); a bump of the event's row before
counting its seats (the second RSVP counts after the first committed); a unique name,
whose ``IntegrityError`` is the refusal.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import ForeignKey, String, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Account(db.Model):  # type: ignore[name-defined]
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    balance: Mapped[int]


class Withdrawal(db.Model):  # type: ignore[name-defined]
    __tablename__ = "withdrawals"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int]


class Event(db.Model):  # type: ignore[name-defined]
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    seats: Mapped[int]
    changes: Mapped[int] = mapped_column(default=0)


class Rsvp(db.Model):  # type: ignore[name-defined]
    __tablename__ = "rsvps"
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    name: Mapped[str] = mapped_column(String(20))


class Member(db.Model):  # type: ignore[name-defined]
    __tablename__ = "members"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


class UniqueMember(db.Model):  # type: ignore[name-defined]
    """The fixed twin's table: the same, with a unique name."""

    __tablename__ = "unique_members"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20), unique=True)


def refused(reason: str) -> Any:
    db.session.rollback()
    return jsonify(error=reason), 409


def create_app(database_url: str, *, fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)
    members = UniqueMember if fixed else Member

    @app.post("/accounts/<int:account_id>/withdraw")
    def withdraw(account_id: int) -> Any:
        amount = int(request.get_json()["amount"])
        if fixed:
            taken = db.session.execute(
                update(Account)
                .where(Account.id == account_id, Account.balance >= amount)
                .values(balance=Account.balance - amount)
            )
            if taken.rowcount == 0:  # type: ignore[attr-defined]
                return refused("insufficient funds")
        else:
            account = db.session.get(Account, account_id)
            assert account is not None
            if account.balance < amount:
                return refused("insufficient funds")
            account.balance = account.balance - amount
        db.session.add(Withdrawal(account_id=account_id, amount=amount))  # the ledger
        db.session.commit()
        return jsonify(withdrawn=amount)

    @app.post("/events/<int:event_id>/rsvp")
    def rsvp(event_id: int) -> Any:
        name = str(request.get_json()["name"])
        if fixed:  # the event's row lock first: RSVPs to one event count one at a time
            db.session.execute(
                update(Event).where(Event.id == event_id).values(changes=Event.changes + 1)
            )
        seats = db.session.scalar(select(Event.seats).where(Event.id == event_id))
        taken = db.session.scalar(select(func.count()).where(Rsvp.event_id == event_id))
        if seats is None or (taken or 0) >= seats:
            return refused("the event is full")
        db.session.add(Rsvp(event_id=event_id, name=name))
        db.session.commit()
        return jsonify(event=event_id, name=name)

    @app.post("/signup")
    def signup() -> Any:
        name = str(request.get_json()["name"])
        if not fixed and db.session.scalar(select(members.id).where(members.name == name)):
            return refused("the name is taken")
        db.session.add(members(name=name))
        try:
            db.session.commit()
        except IntegrityError:
            return refused("the name is taken")
        return jsonify(name=name)

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, fixed=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add(Account(id=1, balance=100))
    db.session.add_all([Event(id=1, seats=1, changes=0), Event(id=2, seats=1, changes=0)])
    db.session.flush()  # the events first: the RSVP's foreign key refers to them
    db.session.add(Rsvp(event_id=1, name="al"))
    db.session.add(Member(name="ann"))
    db.session.add(UniqueMember(name="ann"))
    db.session.commit()


ENDPOINTS = [
    Endpoint(
        "POST",
        "/accounts/1/withdraw",
        json=st.fixed_dictionaries({"amount": st.sampled_from([150, 60])}),
        name="POST /accounts/<id>/withdraw",
    ),
    Endpoint(
        "POST",
        st.sampled_from([1, 2]).map(lambda i: f"/events/{i}/rsvp"),
        json=st.fixed_dictionaries({"name": st.sampled_from(["bo", "cy"])}),
        name="POST /events/<id>/rsvp",
    ),
    Endpoint(
        "POST",
        "/signup",
        json=st.fixed_dictionaries({"name": st.sampled_from(["ann", "zoe"])}),
    ),
]

buggy = Target(
    name="refusals",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"limit-overrun", "duplicate-insert"}),
    description="each refusal (409) checks, then acts, without a lock",
)

fixed = Target(
    name="refusals-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="each refusal is decided where the database serializes it",
)
