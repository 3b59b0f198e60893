"""A team-recognition ("kudos") JSON API, written for a first try of ``fuzzer init``
(init was not tuned on it): an application factory, two blueprints, class-based views
(``MethodView``) for the reward catalogue, personal API keys stored in a table and sent
as ``Authorization: Bearer <key>`` (no Flask-Login, no token endpoint), an admin role,
and ``flask load-fixtures``, which prints each member's random key.

Planted races:

* ``POST /api/kudos`` checks the sender's monthly budget, then writes it back minus
  the points, computed in Python: two kudos at once spend the budget twice
  (lost-update, or limit-overrun);
* ``POST /api/kudos/<int:kudos_id>/reactions`` looks for the member's reaction, then
  inserts one (no unique constraint): a double click reacts twice (duplicate-insert);
* ``POST /api/rewards/<int:reward_id>/redeem`` checks the stock, then decrements it in
  Python: two members redeem the last lunch (limit-overrun).

``create_app(fixed=True)`` is the fixed twin: conditional ``UPDATE … WHERE budget_left
>= ?`` and ``WHERE stock >= 1``, and the reaction checked under the kudos row's lock.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify

from .fixtures import load_fixtures
from .models import db


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI=os.environ.get("KUDOS_DATABASE_URL", "sqlite:///kudos.db"),
        KUDOS_FIXED=fixed,
    )
    db.init_app(app)

    from .kudos import bp as kudos
    from .rewards import bp as rewards

    app.register_blueprint(kudos)
    app.register_blueprint(rewards)
    app.cli.add_command(load_fixtures)

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok")

    return app
