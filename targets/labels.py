"""Labels deleted and made again: a key freed by a DELETE is taken again by an INSERT.

The production story: a board's labels. ``POST /labels`` makes a label (or answers the
one of that name), ``DELETE /labels/<name>`` removes it, ``POST /labels/<name>/apply``
counts a use of it, ``GET /labels`` lists them with their ids. Every change to the set of
labels first bumps the board's version (``UPDATE boards SET version = version + 1``),
which also serializes makes and deletes: that part is correct in both twins.

The trap is in the keys. SQLite gives a new row the highest key + 1, so a label made
right after the highest one ("news", id 3) was deleted gets id 3 again; made before the
delete, it gets id 4. The same requests in two orders number the rows differently, and
a judge comparing raw keys sees a changed label 3 or a label no serial order makes (a
``limit-overrun`` on correct code, issue 19 item 2). The fixed twin must give no
finding, on SQLite and MariaDB alike.

The buggy twin's race is elsewhere: ``apply`` reads the label, adds one in Python and
writes the count back, so two uses at once keep one (a ``lost-update``). The same stale
write has a rarer form that only the freed key makes possible: a use reads "news" (id 3),
"news" is deleted and made again (id 3 again, no uses), and the use writes its count
into the new label (the search finds it as a ``limit-overrun`` of three requests, after
60 examples on SQLite with seed 2; the catalog's budget declares only the lost update).
The fixed twin counts in the database (``uses = uses + 1 WHERE name = ?``).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import String, delete, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Board(db.Model):  # type: ignore[name-defined]
    __tablename__ = "boards"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int]


class Label(db.Model):  # type: ignore[name-defined]
    __tablename__ = "labels"
    id: Mapped[int] = mapped_column(primary_key=True)  # SQLite: no AUTOINCREMENT, reused
    name: Mapped[str] = mapped_column(String(40))
    uses: Mapped[int]


def bump_the_board() -> None:
    db.session.execute(update(Board).where(Board.id == 1).values(version=Board.version + 1))


def find(name: str) -> Label | None:
    return db.session.execute(select(Label).filter_by(name=name)).scalar_one_or_none()


def create_app(database_url: str, *, fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    @app.post("/labels")
    def make() -> Any:
        name = request.get_json()["name"]
        bump_the_board()  # before the lookup: makes and deletes run one at a time
        label = find(name)
        if label is None:
            label = Label(name=name, uses=0)
            db.session.add(label)
            db.session.flush()  # its key
        made = {"id": label.id, "name": label.name}  # before COMMIT expires the object
        db.session.commit()
        return jsonify(made)

    @app.delete("/labels/<name>")
    def remove(name: str) -> Any:
        bump_the_board()
        gone = db.session.execute(delete(Label).where(Label.name == name)).rowcount  # type: ignore[attr-defined]
        db.session.commit()
        return jsonify(name=name, deleted=bool(gone))

    @app.post("/labels/<name>/apply")
    def apply(name: str) -> Any:
        if fixed:  # the fix: the database adds one
            done = db.session.execute(
                update(Label).where(Label.name == name).values(uses=Label.uses + 1)
            ).rowcount  # type: ignore[attr-defined]
            db.session.commit()
            return jsonify(name=name, applied=bool(done))
        label = find(name)
        if label is None:
            db.session.rollback()
            return jsonify(name=name, applied=False)
        # a value computed in Python, written back (a Core UPDATE: a label deleted
        # meanwhile matches no row, as with the fix, rather than raising StaleDataError)
        db.session.execute(
            update(Label)
            .where(Label.id == label.id)
            .values(uses=label.uses + 1)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        return jsonify(name=name, applied=True)

    @app.get("/labels")
    def index() -> Any:
        labels = db.session.scalars(select(Label).order_by(Label.name)).all()
        return jsonify([{"id": x.id, "name": x.name, "uses": x.uses} for x in labels])

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, fixed=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add(Board(id=1, version=0))
    # numbered by the database (1, 2, 3: "news" has the highest key, which SQLite gives
    # again), so a PostgreSQL sequence goes on from there
    for name, uses in (("bug", 2), ("docs", 0), ("news", 1)):
        db.session.add(Label(name=name, uses=uses))
        db.session.flush()
    db.session.commit()


NAMES = st.sampled_from(["news", "misc", "bug"])

ENDPOINTS = [
    Endpoint("POST", "/labels", json=st.fixed_dictionaries({"name": NAMES})),
    Endpoint("DELETE", NAMES.map(lambda n: f"/labels/{n}"), name="DELETE /labels/<name>"),
    Endpoint("POST", NAMES.map(lambda n: f"/labels/{n}/apply"), name="POST /labels/<name>/apply"),
    Endpoint("GET", "/labels"),
]

buggy = Target(
    name="labels",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    max_requests=3,
    expected_findings=frozenset({"lost-update"}),
    description="labels deleted and made again (SQLite gives the freed key again); a use "
    "counted in Python",
)

fixed = Target(
    name="labels-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    max_requests=3,
    description="a use counted in the database (uses = uses + 1)",
)
