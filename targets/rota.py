"""Someone must stay on call: every request refused (409), serially too, on correct code.

The production story: a hospital's rota. ``POST /doctors/<id>/off-call`` takes a doctor
off call, and answers ``409 Conflict`` ("someone must stay on call") when that would
leave the shift with nobody. The night shift has one doctor on call (Dana; Erin is off),
the day shift two (Alice and Bob; Carol is off). Many examples have every request
refused, serially too: Dana signing off twice, or Dana and Erin's shift emptied by
Dana. The fixed twin must give no finding for them, nor for any other example (issue 19
item 1: such examples were reported as a responses-only ``stale-read``).

The buggy twin counts the doctors on call in the shift, then writes only its own row:
Alice and Bob signing off at once both count two, both leave, and the day shift has
nobody (a ``write-skew``; see also ``targets.oncall``, which refuses with 422).

The fixed twin keeps the shift's count of doctors on call on the shift's row and lets
the database decide: it takes the doctor off call with ``UPDATE … WHERE on_call``
(no row: already off), then ``UPDATE shifts SET on_call = on_call - 1 WHERE on_call >=
2``; no row changed means that doctor was the last one: it rolls back and answers 409.
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
    on_call: Mapped[int]  # how many of its doctors are on call (kept by the fixed twin)


class Doctor(db.Model):  # type: ignore[name-defined]
    __tablename__ = "doctors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    shift_id: Mapped[int] = mapped_column(ForeignKey("shifts.id"))
    on_call: Mapped[bool]


def last_one() -> Any:
    return jsonify(error="someone must stay on call"), 409


def create_app(database_url: str, *, fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    @app.post("/doctors/<int:doctor_id>/off-call")
    def sign_off(doctor_id: int) -> Any:
        doctor = db.session.get(Doctor, doctor_id)
        if doctor is None:
            return jsonify(error="no such doctor"), 404
        shift_id = doctor.shift_id
        if fixed:
            left = db.session.execute(
                update(Doctor)
                .where(Doctor.id == doctor_id, Doctor.on_call)
                .values(on_call=False)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if left:
                kept = db.session.execute(
                    update(Shift)
                    .where(Shift.id == shift_id, Shift.on_call >= 2)
                    .values(on_call=Shift.on_call - 1)
                ).rowcount  # type: ignore[attr-defined]
                if not kept:
                    db.session.rollback()
                    return last_one()
            db.session.commit()
            return jsonify(doctor=doctor_id, on_call=False)
        if not doctor.on_call:
            db.session.rollback()
            return jsonify(doctor=doctor_id, on_call=False)
        on_call = db.session.scalar(
            select(func.count()).where(Doctor.shift_id == shift_id, Doctor.on_call)
        )
        if (on_call or 0) < 2:
            db.session.rollback()
            return last_one()
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
    return create_app(database_url, fixed=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all([Shift(id=1, name="night", on_call=1), Shift(id=2, name="day", on_call=2)])
    db.session.flush()  # the shifts first: the doctors' foreign key refers to them
    db.session.add_all(
        [
            Doctor(id=1, name="Dana", shift_id=1, on_call=True),
            Doctor(id=2, name="Erin", shift_id=1, on_call=False),
            Doctor(id=3, name="Alice", shift_id=2, on_call=True),
            Doctor(id=4, name="Bob", shift_id=2, on_call=True),
            Doctor(id=5, name="Carol", shift_id=2, on_call=False),
        ]
    )
    db.session.commit()


ENDPOINTS = [
    Endpoint(
        "POST",
        st.sampled_from([1, 2, 3, 4, 5]).map(lambda i: f"/doctors/{i}/off-call"),
        name="POST /doctors/<id>/off-call",
    ),
    Endpoint("GET", st.sampled_from(["/shifts/1", "/shifts/2"]), name="GET /shifts/<id>"),
]

buggy = Target(
    name="rota",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"write-skew"}),
    description="each sign-off counts the doctors on call, then writes only its own row; "
    "the last one is refused with 409",
)

fixed = Target(
    name="rota-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="the shift's count is decremented only while it is at least 2 (409 else)",
)
