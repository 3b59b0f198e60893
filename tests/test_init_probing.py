"""Values by probing and what answers complain about (issue 20 items 4 and 5), fast: each
piece on an app of the catalog built here, or on a page written here."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from fuzzer.init.inputs.complaints import Complaint, complaints, summary
from fuzzer.init.plan import Plan, Route, Table
from fuzzer.init.pysource import flat


def _set_up(name: str, tmp_path: Any) -> tuple[Any, Any, dict[str, Table]]:
    """targets.<name> built on a scratch file, its tables made and ``flask seed`` run."""
    import importlib

    from fuzzer.init.setup.seeding import read_all_rows
    from fuzzer.target.apps import flask_command, pinned_config

    module = importlib.import_module(f"targets.{name}")
    url = f"sqlite:///{tmp_path}/{name}.db"
    with pinned_config(SQLALCHEMY_DATABASE_URI=url, WTF_CSRF_ENABLED=False):
        app = module.create_app()
    with app.app_context():
        module.db.create_all()
    flask_command(app, "seed")
    return module, app, read_all_rows({"default": url})


def _routes(app: Any, plan: Plan, rows: dict[str, Table]) -> dict[str, Route]:
    from fuzzer.init.inputs.routes import routes

    return {f"{r.method} {r.rule}": r for r in routes(app, plan, rows, None)}


def test_a_json_field_that_names_no_column_gets_one_by_probing(tmp_path: Any) -> None:
    """targets.warehouse: ``item`` is an integer code that names no table; by names it
    draws 1 to 3 (404 each). The probe sends the key a foreign key points to, and the
    order writes; the scratch database is put back after each request that wrote."""
    module, app, rows = _set_up("warehouse", tmp_path)
    assert rows["product"].referenced == {"code"} and "name" in rows["product"].unique
    plan = Plan(None, "warehouse")  # type: ignore[arg-type]
    route = _routes(app, plan, rows)["POST /api/orders"]
    assert flat(route.body) == (
        '{"item": values_of("product.code", limit=3), "quantity": st.integers(1, 3)}'
    )
    assert any("field 'item': the values of product.code, by probing" in c for c in route.checks)
    assert route.said == ""
    with app.app_context():  # what the probes wrote is gone
        assert [p.stock for p in module.db.session.scalars(module.db.select(module.Product))] == [
            3,
            3,
        ]
        assert module.db.session.scalars(module.db.select(module.OrderLine)).all() == []


def test_a_form_field_rejected_until_it_holds_a_columns_value_gets_it_by_probing(
    tmp_path: Any,
) -> None:
    """targets.library: the form shows itself again with "No book has this code." until
    ``code`` holds an ISBN; the probe tries the unique text columns first. A field that
    no column fixes keeps its value, and the route keeps what the page said of it."""
    _, app, rows = _set_up("library", tmp_path)
    plan = Plan(None, "library")  # type: ignore[arg-type]
    plan.user_keys = [2]
    found = _routes(app, plan, rows)
    borrow = found["POST /borrow"]
    assert flat(borrow.body) == '{"code": values_of("book.isbn", limit=3)}'
    holiday = found["POST /account/holiday"]
    assert flat(holiday.body) == '{"away_until": "2024-01-01"}'
    assert holiday.said == "away_until: Pick a day after today."


def test_the_probe_keeps_a_value_that_quiets_the_fields_complaint() -> None:
    """Two fields that each need a column's value: neither alone makes the request
    write, but each stops the answer complaining about its field."""
    import sqlalchemy as sa
    from flask import Flask, jsonify, request

    from fuzzer.init.inputs.probing import Field, Prober
    from fuzzer.init.pysource import Call, literal

    app = Flask(__name__)
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE pairs (left INTEGER, right TEXT)"))

    @app.post("/pair")
    def pair() -> Any:
        data = request.get_json()
        errors = {
            name: ["unknown"]
            for name, wanted in (("left", 20), ("right", "kiwi"))
            if data.get(name) != wanted
        }
        if errors:
            return jsonify(errors=errors), 400
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO pairs VALUES (:l, :r)"), {"l": 20, "r": "kiwi"})
        return jsonify(ok=True)

    rows = {
        "fruit": Table(("id", "name"), ("id",), ("INTEGER", "VARCHAR"), [(20, "kiwi")]),
    }
    probe = Prober(app, Plan(None, "pair"), rows)  # type: ignore[arg-type]
    words = Call("st.sampled_from", (literal(["alpha", "bravo"]),))
    fields = [Field("left", Call("st.integers", ("1", "3")), True), Field("right", words, False)]
    found = probe.body("POST", "/pair", "json", fields)
    assert found.columns == {"left": ("fruit", "id"), "right": ("fruit", "name")}
    assert found.quieted == {"left"} and found.said == ""


def test_a_forms_errors_are_read_from_the_page() -> None:
    page = """<html><head><style>.errors { color: red }</style></head><body>
    <ul class="flashes"><li class="danger">Could not lend it.</li></ul>
    <form method="post">
    <label>Name <span class="text-danger">*</span></label><input name="name">
    <ul class="errors"><li>Field must be between 3 and 20 characters long.</li>
    <li>Taken.</li></ul>
    <input name="amount" class="form-control is-invalid">
    <div class="invalid-feedback">Not a valid integer value.</div>
    <div class="form-group has-error"><select name="room"></select>
    <p class="help-block">Not a valid choice.</p></div>
    <p class="help-block">We never share it.</p>
    <input type="hidden" name="csrf_token"><input type="submit"></form></body></html>"""
    assert complaints(page) == [
        Complaint("", "Could not lend it."),
        Complaint("name", "Field must be between 3 and 20 characters long."),
        Complaint("name", "Taken."),
        Complaint("amount", "Not a valid integer value."),
        Complaint("room", "Not a valid choice."),
    ]
    flashed = '<div class="alert alert-danger" role="alert"><b>Oops!</b> No copy left.</div>'
    assert complaints(flashed) == [Complaint("", "Oops! No copy left.")]
    assert summary(complaints(page)) == (
        "name: Field must be between 3 and 20 characters long.; amount: Not a valid integer "
        "value.; room: No…"
    )


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"errors": {"amount": ["Too big"]}}, [Complaint("amount", "Too big")]),
        ('{"error": "not enough money"}', [Complaint("", "not enough money")]),
        ({"message": "Invalid input", "errors": []}, [Complaint("", "Invalid input")]),
        ("<p>Saved.</p>", []),
        ("plain text", []),
    ],
)
def test_a_json_answers_complaints(body: Any, said: list[Complaint]) -> None:
    assert complaints(body) == said


def test_a_left_out_form_says_its_fields_error_even_when_the_page_was_cut_short() -> None:
    """The survey keeps the first 2000 characters of a page; the error came later. The
    request init sent at inspection read the whole page (``Route.said``)."""
    from fuzzer.init.reasons import why_left_out
    from fuzzer.model import Request, Response

    request = Request("POST /holiday", "POST", "/holiday", form={"day": "x"}, identity="ole")
    cut = Response(200, "<html>" + "<p>news</p>" * 200 + "…")
    e = SimpleNamespace(
        endpoint="POST /holiday",
        request=request,
        status=200,
        response=cut,
        writes=frozenset(),
        reads=frozenset({"member"}),
        statements=1,
    )
    assert why_left_out(e) == "200 as ole; read only (member)"
    plan = Plan(None, "x")  # type: ignore[arg-type]
    plan.routes = [Route("POST", "/holiday", "holiday", "", said="day: Not a valid date.")]
    assert why_left_out(e, plan) == "validation error (200 as ole): day: Not a valid date."
    whole = Response(200, '<form><input name="day"><ul class="errors"><li>Too late.</ul></form>')
    assert why_left_out(SimpleNamespace(**{**vars(e), "response": whole}), plan) == (
        "validation error (200 as ole): day: Too late."
    )


def test_dates_choices_and_ranges_are_typed_from_the_fields() -> None:
    """WTForms date and time fields send their own format; marshmallow's ``OneOf``
    gives the choices, ``Range`` the low end, and dates, times and UUIDs a fixed value."""
    from flask_wtf import FlaskForm
    from marshmallow import Schema, fields, validate
    from wtforms import DateField, DateTimeLocalField, StringField, TimeField, URLField

    from fuzzer.init.inputs.bodies import form_body
    from fuzzer.init.inputs.values import schema_value
    from fuzzer.init.inputs.viewcode import _marshmallow_fields

    class TripForm(FlaskForm):
        day = DateField(format="%d/%m/%Y")
        start = TimeField()
        leaves = DateTimeLocalField()
        link = URLField()
        title = StringField()

    assert flat(form_body(TripForm).node) == (
        '{"day": "01/01/2024", "start": "10:00", "leaves": "2024-01-01T10:00", '
        '"link": st.sampled_from(["https://example.com/alpha", "https://example.com/bravo"]), '
        '"title": st.sampled_from(["alpha", "bravo"])}'
    )

    class TripSchema(Schema):
        size = fields.String(validate=validate.OneOf(["S", "M", "L", "XL"]))
        seats = fields.Integer(validate=validate.Range(min=10))
        on = fields.Date()
        ref = fields.UUID()

    declared = _marshmallow_fields(TripSchema) or {}
    sources = {name: flat(schema_value(name, d, {})) for name, d in declared.items()}
    assert sources == {
        "size": 'st.sampled_from(["S", "M", "L"])',
        "seats": "st.integers(10, 12)",
        "on": '"2024-01-01"',
        "ref": '"00000000-0000-4000-8000-000000000001"',
    }


def test_two_fields_that_each_need_a_row_are_probed_together() -> None:
    """A transfer names two accounts by number in ``source`` and ``target``, and says
    only "unknown account": no one field's value makes it write, nor quiets a
    complaint about that field. Two rows of one column, one in each, do."""
    import sqlalchemy as sa
    from flask import Flask, jsonify, request

    from fuzzer.init.inputs.probing import Field, Prober
    from fuzzer.init.pysource import Call

    app = Flask(__name__)
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE moves (source INTEGER, target INTEGER)"))

    @app.post("/move")
    def move() -> Any:
        data = request.get_json()
        if {data["source"], data["target"]} != {7001, 7002}:
            return jsonify(error="unknown account"), 404
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO moves VALUES (:source, :target)"), data)
        return jsonify(ok=True)

    rows = {
        "account": Table(
            ("number", "balance"),
            ("number",),
            ("INTEGER", "INTEGER"),
            [(7001, 5), (7002, 5)],
            referenced=frozenset({"number"}),
        ),
    }
    probe = Prober(app, Plan(None, "move"), rows)  # type: ignore[arg-type]
    numbers = Call("st.integers", ("1", "3"))
    fields = [Field("source", numbers, True), Field("target", numbers, True)]
    found = probe.body("POST", "/move", "json", fields)
    assert found.wrote and found.columns == {
        "source": ("account", "number"),
        "target": ("account", "number"),
    }


def test_a_field_gets_the_values_its_answer_names_sent_as_the_spec_identity() -> None:
    """No Flask-Login: the probe sends the headers of the spec's first identity that has
    some (HTTP Basic here). The answer names the field and the values it allows
    ("emoji must be one of ['clap', 'tada']"): those are tried first, and drawn."""
    import sqlalchemy as sa
    from flask import Flask, jsonify, request

    from fuzzer.init.inputs.probing import Field, Prober
    from fuzzer.init.pysource import Call, literal

    app = Flask(__name__)
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE reactions (emoji TEXT)"))

    @app.post("/react")
    def react() -> Any:
        if request.authorization is None or request.authorization.password != "pw":
            return jsonify(error="sign in"), 401
        emoji = request.get_json()["emoji"]
        if emoji not in ("clap", "tada"):
            return jsonify(error="emoji must be one of ['clap', 'tada']"), 400
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO reactions VALUES (:e)"), {"e": emoji})
        return jsonify(ok=True), 201

    plan = Plan(None, "react")  # type: ignore[arg-type]
    plan.identities = ['Identity("ann", headers=basic_auth("ann", "pw"))', 'Identity("x")']
    probe = Prober(app, plan, {})
    words = Call("st.sampled_from", (literal(["alpha", "bravo"]),))
    found = probe.body("POST", "/react", "json", [Field("emoji", words, False)])
    assert found.wrote and found.named == {"emoji": ["clap", "tada"]}
    assert Complaint("", "Must be one of: S, M, L.").allowed() == ["S", "M", "L"]
    assert Complaint("", "amount must be positive").allowed() == []
