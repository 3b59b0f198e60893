"""An event-ticketing site, written last and tried once with ``fuzzer init`` as it is
(init was not tuned on it): an application factory, blueprints, Flask-Login with
sign-in by email, Flask-WTF forms, and a ``flask events load-demo`` command in a
group.

Planted races:

* ``POST /events/<int:event_id>/buy`` (a form: tier and quantity; the tiers are the
  event's, set in the view) checks the tier's seats left, then writes the count back
  minus the quantity, computed in Python: two buyers of the last seats both get them
  (limit-overrun or lost-update);
* ``POST /events/<int:event_id>/waitlist`` checks that the user is not on the list,
  then inserts: a double click joins twice (duplicate-insert).

``create_app(fixed=True)`` is the fixed twin: seats taken with ``UPDATE … WHERE left >=
?``, and the waitlist insert guarded in one statement.
"""

from __future__ import annotations

from flask import Flask
from flask_login import LoginManager

from .models import Attendee, db

login_manager = LoginManager()
login_manager.login_view = "accounts.sign_in"


@login_manager.user_loader
def _load(user_id: str) -> Attendee | None:
    return db.session.get(Attendee, int(user_id))


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY="tickets-dev",
        SQLALCHEMY_DATABASE_URI="sqlite:///tickets.db",
        TICKETS_FIXED=fixed,
    )
    db.init_app(app)
    login_manager.init_app(app)

    from .accounts import bp as accounts
    from .cli import events_cli
    from .shop import bp as shop

    app.register_blueprint(accounts, url_prefix="/accounts")
    app.register_blueprint(shop)
    app.cli.add_command(events_cli)
    return app
