"""A random value in a column beside a lost update of the same column.

The production story: a board-game app keeps counters in ``rows.n``. ``POST
/rows/<id>/roll`` rolls a die for a row (``random.randint``) and stores it;
``POST /rows/<id>/add`` adds to a row's counter. Two serial runs of a roll differ in
``rows.n``: that cell varies on its own, and the oracle masks it — but only in
examples that roll, and only in the row rolled. An add is deterministic and must still
be compared: the buggy twin reads the counter, then writes what it read plus the
amount, so two adds at once lose one (``lost-update``), whatever a roll did before in
another example or another row. The fixed twin adds in one ``UPDATE``.
"""

from __future__ import annotations

import random
from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Row(db.Model):  # type: ignore[name-defined]
    __tablename__ = "rows"
    id: Mapped[int] = mapped_column(primary_key=True)
    n: Mapped[int]


def create_app(database_url: str, *, atomic: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    @app.post("/rows/<int:row_id>/roll")
    def roll(row_id: int) -> Any:
        value = random.randint(1, 1_000_000)
        db.session.execute(update(Row).where(Row.id == row_id).values(n=value))
        db.session.commit()
        return jsonify(row=row_id, rolled=value)

    @app.post("/rows/<int:row_id>/add")
    def add(row_id: int) -> Any:
        amount = int(request.get_json()["amount"])
        if atomic:
            db.session.execute(update(Row).where(Row.id == row_id).values(n=Row.n + amount))
        else:
            row = db.session.get(Row, row_id)
            assert row is not None
            n = row.n  # read, then write what was read plus the amount
            db.session.execute(update(Row).where(Row.id == row_id).values(n=n + amount))
        db.session.commit()
        return jsonify(row=row_id, added=amount)

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, atomic=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all([Row(id=1, n=0), Row(id=2, n=0)])
    db.session.commit()


ROWS = st.sampled_from([1, 2])

ENDPOINTS = [
    Endpoint("POST", ROWS.map(lambda i: f"/rows/{i}/roll"), name="POST /rows/<id>/roll"),
    Endpoint(
        "POST",
        ROWS.map(lambda i: f"/rows/{i}/add"),
        json=st.fixed_dictionaries({"amount": st.sampled_from([1, 2])}),
        name="POST /rows/<id>/add",
    ),
]

buggy = Target(
    name="dice",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"lost-update"}),
    description="a random roll stored in rows.n; an add that writes back what it read",
)

fixed = Target(
    name="dice-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="a random roll stored in rows.n; an add in one UPDATE",
)
