"""What `fuzzer init` prints for each endpoint it sent: for one it keeps, the status of
the request that wrote, not that of its simplest request (refused, it wrote nothing)."""

from __future__ import annotations

import sys
import textwrap
from typing import Any

from fuzzer.init.inputs.complaints import complaints
from fuzzer.init.spec import write_spec


def test_a_kept_endpoint_is_described_by_the_request_that_wrote(tmp_path: Any) -> None:
    written = write_spec("targets.tryout_kudos:create_app", str(tmp_path / "fuzz_kudos.py"))
    # its simplest request names no other member (400); another gives kudos (201)
    line = written.survey["POST /api/kudos"]
    assert line.startswith("201; writes kudos, members"), line
    assert "POST /api/kudos" in (written.plan.writers or ())
    # an endpoint that wrote nothing keeps its simplest request's status, and why
    assert written.plan.left_out["GET /api/kudos"].startswith("200 as mara; read only")


def test_a_json_field_only_an_answer_names_is_added_to_the_body(tmp_path: Any) -> None:
    """tryout_kudos reads a reward's fields in a helper's loop and names the first one
    missing ("'name' is required"), then says "'cost' must be a int" of a word: init adds
    each field named, as a number where the answer asks for one, and the request writes."""
    written = write_spec("targets.tryout_kudos:create_app", str(tmp_path / "fuzz_kudos.py"))
    assert written.survey["POST /api/rewards"].startswith("201; writes rewards"), written.survey
    source = (tmp_path / "fuzz_kudos.py").read_text(encoding="utf-8")
    assert '"cost": st.integers(1, 3),' in source
    assert '"stock": st.integers(1, 3),' in source
    assert "without them: name, cost, stock" in source


def test_fields_an_errors_mapping_names_missing_are_added(tmp_path: Any) -> None:
    """An app of its own shape: the fields read through ``data.get(name)`` of a list, and
    an answer ``{"errors": {"title": ["Missing data for required field."]}}``."""
    code = textwrap.dedent(
        """
        from flask import Flask, jsonify, request
        from flask_sqlalchemy import SQLAlchemy

        db = SQLAlchemy()
        REQUIRED = ("title", "pages")

        class Book(db.Model):
            id = db.Column(db.Integer, primary_key=True)
            title = db.Column(db.String(40), nullable=False)
            pages = db.Column(db.Integer, nullable=False)

        def read(data):
            found = {}
            for name in REQUIRED:
                if data.get(name) is None:
                    return {name: ["Missing data for required field."]}
                found[name] = data.get(name)
            if not isinstance(found["pages"], int):
                return {"pages": ["Not a valid integer."]}
            return found

        def create_app():
            app = Flask(__name__)
            app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
            db.init_app(app)

            @app.post("/books")
            def add_book():
                fields = read(request.get_json(silent=True) or {})
                if "title" not in fields or "pages" not in fields:
                    return jsonify(errors=fields), 422
                db.session.add(Book(**fields))
                db.session.commit()
                return jsonify(ok=True), 201

            return app
        """
    )
    (tmp_path / "shelf_app.py").write_text(code, encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        written = write_spec("shelf_app:create_app", str(tmp_path / "fuzz_shelf.py"))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("shelf_app", None)
    assert written.survey["POST /books"].startswith("201; writes book"), written.survey
    source = (tmp_path / "fuzz_shelf.py").read_text(encoding="utf-8")
    assert '"pages": st.integers(1, 3)' in source  # "Not a valid integer." of a word


def test_what_a_complaint_says_is_missing() -> None:
    def missing(body: Any) -> list[list[str]]:
        return [c.missing() for c in complaints(body)]

    assert missing({"error": "'name' is required"}) == [["name"]]
    assert missing({"message": "title is required"}) == [["title"]]
    assert missing({"errors": {"qty": ["Missing data for required field."]}}) == [["qty"]]
    assert missing({"errors": {"qty": ["Not a valid integer."]}}) == [[]]
    assert missing({"error": "kudos go to another member"}) == [[]]
    (said,) = complaints({"error": "'cost' must be a int"})
    assert said.number("cost") and not said.number("name")
