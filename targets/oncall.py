"""Two-row invariant write skew: the last two doctors on call both sign off.

The production story: a hospital's rota app must keep at least one doctor on call
per shift. ``POST /doctors/<id>/off-call`` counts the doctors on call in that
shift, refuses (422) if the requester is the last one, and otherwise takes the
requester off call. Each request writes only its *own* row, so no update is lost
and no row lock ever conflicts; but each decided on a count that the other was
about to change. When Alice and Bob sign off at the same time, both see "2 on call",
both leave, and the night shift has nobody. One after the other, the second is
refused. That is ``write-skew``.

The fixed twin materializes the conflict: before it counts, it bumps the shift's
own row (``UPDATE shifts SET changes = changes + 1``), so two sign-offs in one
shift take the same row lock (SQLite: the write lock) and the second counts after
the first committed. On MariaDB the count must also not read a snapshot older than
that lock: the twin's only read before it is a locking one (``SELECT … FOR
UPDATE``), which starts no snapshot there. (``FOR UPDATE`` on the doctors' rows alone
would do on MariaDB and PostgreSQL, but compiles to nothing on SQLite.)
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import ForeignKey, String, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Shift(db.Model):  # type: ignore[name-defined]
    __tablename__ = "shifts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))
    changes: Mapped[int] = mapped_column(default=0)


class Doctor(db.Model):  # type: ignore[name-defined]
    __tablename__ = "doctors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    shift_id: Mapped[int] = mapped_column(ForeignKey("shifts.id"))
    on_call: Mapped[bool]


def create_app(database_url: str, *, lock_the_shift: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    def on_call_in(shift_id: int) -> int:
        query = select(func.count()).where(Doctor.shift_id == shift_id, Doctor.on_call)
        return int(db.session.scalar(query) or 0)

    @app.post("/doctors/<int:doctor_id>/off-call")
    def sign_off(doctor_id: int) -> Any:
        which = select(Doctor.shift_id).where(Doctor.id == doctor_id)
        if lock_the_shift:
            # a locking read: on MariaDB it does not start the transaction's snapshot,
            # which must not be older than the shift lock taken next
            which = which.with_for_update()
        shift_id = db.session.scalar(which)
        if shift_id is None:
            return jsonify(error="no such doctor"), 404
        if lock_the_shift:
            db.session.execute(
                update(Shift).where(Shift.id == shift_id).values(changes=Shift.changes + 1)
            )
        on_call = on_call_in(shift_id)
        doctor = db.session.get(Doctor, doctor_id)
        assert doctor is not None
        if not doctor.on_call:
            db.session.rollback()
            return jsonify(doctor=doctor_id, on_call=False)
        if on_call < 2:
            db.session.rollback()
            return jsonify(error="you are the last doctor on call in this shift"), 422
        doctor.on_call = False
        db.session.commit()
        return jsonify(doctor=doctor_id, on_call=False)

    @app.get("/shifts/<int:shift_id>")
    def shift(shift_id: int) -> Any:
        names = db.session.scalars(
            select(Doctor.name).where(Doctor.shift_id == shift_id, Doctor.on_call)
        ).all()
        return jsonify(shift=shift_id, on_call=sorted(names))

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, lock_the_shift=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add(Shift(id=1, name="night", changes=0))
    db.session.flush()  # the shift first: the doctors' foreign key refers to it
    db.session.add_all(
        [
            Doctor(id=1, name="Alice", shift_id=1, on_call=True),
            Doctor(id=2, name="Bob", shift_id=1, on_call=True),
            Doctor(id=3, name="Carol", shift_id=1, on_call=False),
        ]
    )
    db.session.commit()


ENDPOINTS = [
    Endpoint(
        "POST",
        st.sampled_from([1, 2, 3]).map(lambda i: f"/doctors/{i}/off-call"),
        name="POST /doctors/<id>/off-call",
    ),
    Endpoint("GET", "/shifts/1", name="GET /shifts/<id>"),
]

buggy = Target(
    name="oncall",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"write-skew"}),
    description="each sign-off counts the others on call, then writes only its own row",
)

fixed = Target(
    name="oncall-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="each sign-off first takes the shift row's lock",
)
