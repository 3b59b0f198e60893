"""A notification rebuilt by DELETE-then-INSERT: a deadlock on MariaDB, a stale count anywhere.

The production story: ``POST /messages/<to>`` counts the recipient's unread
messages, stores the new message, and rebuilds the recipient's notification the
simple way: delete it, insert a fresh one with the count plus one. Two senders
writing to the same user at once:

* anywhere, both count before either stores its message: the notification ends at 1
  unread with 2 messages waiting;
* on MariaDB/MySQL, when the recipient has no notification yet, each DELETE matches
  nothing and takes a gap lock (gap locks never conflict with each other); each
  INSERT then waits for the other's gap lock: the server detects a deadlock (1213)
  and rolls one request back, which answers 500. It takes both requests holding
  their gap locks before either inserts.

The fixed twin keeps the count on the user's row and increments it in one atomic
``UPDATE``, before it stores the message: no count read ahead, no delete, no gap. It
first locks the sender's and the recipient's rows in id order (``FOR UPDATE``): the
message's foreign key checks take a shared lock on both, and two messages written
crosswise (cat to ann while ann writes to cat) that each held one row would deadlock
(1213 on MariaDB; found by ``python -m bench.precision``, 300 examples).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import ForeignKey, Index, String, delete, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Identity, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)

NAMES = ["ann", "ben", "cat"]


class User(db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    unread: Mapped[int] = mapped_column(default=0)


class Message(db.Model):  # type: ignore[name-defined]
    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    sender_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(String(200))
    seen: Mapped[bool] = mapped_column(default=False)


class Notification(db.Model):  # type: ignore[name-defined]
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    unread: Mapped[int]


def create_app(database_url: str, *, atomic: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    def user(name: str | None) -> User:
        found = db.session.execute(select(User).filter_by(name=name)).scalar_one_or_none()
        if found is None:
            abort(404)
        return found

    @app.post("/messages/<to>")
    def send(to: str) -> Any:
        sender = user(request.headers.get("X-User"))
        recipient = user(to)
        if recipient.id == sender.id:
            return jsonify(error="write to someone else"), 400
        sender_id, recipient_id = sender.id, recipient.id
        if atomic:
            # both users' rows locked first, in id order: the message's foreign key
            # checks take a shared lock on each (MariaDB), so the counter's update alone
            # would deadlock two messages written crosswise (cat to ann, ann to cat),
            # each holding the row the other's check waits for
            both = select(User.id).where(User.id.in_(sorted({sender_id, recipient_id})))
            db.session.execute(both.order_by(User.id).with_for_update()).all()
            db.session.execute(
                update(User).where(User.id == recipient_id).values(unread=User.unread + 1)
            )
            db.session.add(Message(sender_id=sender_id, recipient_id=recipient_id, body="hi"))
            db.session.commit()
            return jsonify(sent=to)
        unread = db.session.execute(
            select(func.count(Message.id)).filter_by(recipient_id=recipient_id, seen=False)
        ).scalar_one()
        db.session.add(Message(sender_id=sender_id, recipient_id=recipient_id, body="hi"))
        db.session.flush()
        db.session.execute(delete(Notification).where(Notification.user_id == recipient_id))
        db.session.add(Notification(user_id=recipient_id, unread=unread + 1))
        db.session.commit()
        return jsonify(sent=to)

    @app.get("/notifications")
    def notifications() -> Any:
        me = user(request.headers.get("X-User"))
        if atomic:
            return jsonify(unread=me.unread)
        found = db.session.execute(select(Notification).filter_by(user_id=me.id)).scalar()
        return jsonify(unread=found.unread if found is not None else 0)

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, atomic=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all(User(id=k + 1, name=name) for k, name in enumerate(NAMES))
    db.session.commit()


IDENTITIES = [Identity(name, headers={"X-User": name}) for name in NAMES]

ENDPOINTS = [
    Endpoint("GET", "/notifications"),
    Endpoint("POST", st.sampled_from(NAMES).map("/messages/{}".format)),
]

buggy = Target(
    name="inbox",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    identities=IDENTITIES,
    max_requests=2,
    expected_findings=frozenset({"limit-overrun"}),
    expected_on={
        "mariadb": frozenset({"limit-overrun", "concurrency-error"}),
        "mysql": frozenset({"limit-overrun", "concurrency-error"}),
    },
    description="DELETE-then-INSERT of a notification: gap-lock deadlock (MariaDB), stale count",
)

fixed = Target(
    name="inbox-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    identities=IDENTITIES,
    max_requests=2,
    description="the unread count on the user's row, incremented atomically",
)
