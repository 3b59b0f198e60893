"""Hints bought with points: one check-then-insert, two races on different rows.

The production story: a CTF platform (shaped like CTFd) sells hints. A player's score is
the sum of their awards; ``POST /hints/<id>/unlock`` looks for the player's unlock of
that hint (409 "already unlocked"), sums their awards (409 "not enough points" when
the score is below the hint's cost), then inserts the unlock and a negative award
(``Hint 1``, minus its cost). Alice has 100 points; each hint costs 60. Two bugs hide
behind that one check:

* the **double unlock**: alice unlocks hint 1 twice at once; both find no unlock and
  both pay: two unlocks of one hint, two ``Hint 1`` awards (a ``duplicate-insert``);
* the **overdraft**: alice unlocks hints 1 and 2 at once; each sees 100 points and
  both pass: her score ends at -20, and she holds a hint no serial order sells her (a
  ``limit-overrun``).

They are two races on different rows (the same hint twice, two different hints), with
two fixes (a unique unlock; a check made under a lock of the player), so they must be
two findings, not one.

The fixed twin takes the player's row lock first (``UPDATE players SET unlocks =
unlocks + 1``, before it reads anything: on MariaDB a plain read first would take a
snapshot older than the lock), so two unlocks of one player run one after the other.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import ForeignKey, String, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Identity, Target

NAMES = ("alice", "bob")
COST = 60


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Player(db.Model):  # type: ignore[name-defined]
    __tablename__ = "players"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20), unique=True)
    unlocks: Mapped[int] = mapped_column(default=0)  # the fixed twin's lock


class Hint(db.Model):  # type: ignore[name-defined]
    __tablename__ = "hints"
    id: Mapped[int] = mapped_column(primary_key=True)
    cost: Mapped[int]


class Unlock(db.Model):  # type: ignore[name-defined]
    __tablename__ = "unlocks"
    id: Mapped[int] = mapped_column(primary_key=True)
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id"))
    hint_id: Mapped[int] = mapped_column(ForeignKey("hints.id"))


class Award(db.Model):  # type: ignore[name-defined]
    __tablename__ = "awards"
    id: Mapped[int] = mapped_column(primary_key=True)
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id"))
    name: Mapped[str] = mapped_column(String(40))
    value: Mapped[int]


def create_app(database_url: str, *, fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    def player() -> Player:
        name = request.headers.get("X-User")
        found = db.session.execute(select(Player).filter_by(name=name)).scalar_one_or_none()
        if found is None:
            abort(401)
        return found

    def score(player_id: int) -> int:
        total = select(func.coalesce(func.sum(Award.value), 0)).filter_by(player_id=player_id)
        return int(db.session.scalar(total) or 0)

    @app.post("/hints/<int:hint_id>/unlock")
    def unlock(hint_id: int) -> Any:
        if fixed:  # the fix: the player's row lock before anything is read (on MariaDB
            # a plain read first would start a snapshot older than the lock)
            name = request.headers.get("X-User")
            db.session.execute(
                update(Player).where(Player.name == name).values(unlocks=Player.unlocks + 1)
            )
        who = player()
        hint = db.session.get(Hint, hint_id)
        if hint is None:
            abort(404)
        mine = select(Unlock.id).filter_by(player_id=who.id, hint_id=hint_id)
        if db.session.execute(mine).first() is not None:
            db.session.rollback()
            return jsonify(error="already unlocked"), 409
        if score(who.id) < hint.cost:
            db.session.rollback()
            return jsonify(error="not enough points"), 409
        db.session.add(Unlock(player_id=who.id, hint_id=hint_id))
        db.session.add(Award(player_id=who.id, name=f"Hint {hint_id}", value=-hint.cost))
        db.session.commit()
        return jsonify(hint=hint_id, unlocked=True)

    @app.get("/score")
    def show_score() -> Any:
        who = player()
        return jsonify(player=who.name, score=score(who.id))

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, fixed=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all(Player(id=k + 1, name=name) for k, name in enumerate(NAMES))
    db.session.add_all([Hint(id=1, cost=COST), Hint(id=2, cost=COST)])
    db.session.flush()  # the players before their awards (no relationship orders them)
    db.session.add_all(
        [
            Award(player_id=1, name="first blood", value=100),
            Award(player_id=2, name="warm-up", value=10),
        ]
    )
    db.session.commit()


IDENTITIES = [Identity(name, headers={"X-User": name}) for name in NAMES]

ENDPOINTS = [
    Endpoint(
        "POST",
        st.sampled_from(["/hints/1/unlock", "/hints/2/unlock"]),
        name="POST /hints/<id>/unlock",
    ),
    Endpoint("GET", "/score"),
]

buggy = Target(
    name="hints",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    identities=IDENTITIES,
    max_requests=2,
    expected_findings=frozenset({"duplicate-insert", "limit-overrun"}),
    description="a hint unlocked twice (a double unlock) and two hints past the score "
    "(an overdraft): one check, two races, two findings",
)

fixed = Target(
    name="hints-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    identities=IDENTITIES,
    max_requests=2,
    description="the player's row is locked before the checks",
)
