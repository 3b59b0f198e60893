"""A microblog shaped like the Flask Mega-Tutorial's, and three races such apps have.

``create_app(config_class=Config)`` builds it: Flask-SQLAlchemy, Flask-Login (sign-in
through a Flask-WTF form with CSRF, passwords hashed with a salt), blueprints ``auth``,
``main`` and ``api`` (JSON, with tokens: ``POST /api/tokens`` with a password gives
one, ``Authorization: Bearer <token>`` uses it), and ``flask seed`` (a click command on
a blueprint, as the tutorial's ``flask translate``) that creates users and posts.
Everything works while one person clicks at a time:

* ``POST /follow/<username>`` checks that the pair is not there yet and then inserts it
  into an association table without a primary key: a double click follows twice
  (duplicate-insert);
* ``POST /api/posts/<id>/like`` reads the count and writes it back plus one: two
  overlapping likes count one (lost-update);
* ``POST /auth/register`` checks in a form validator that the username is free: two
  sign-ups of one new name both pass it, and the second insert hits the unique index
  (IntegrityError, a 500: concurrency-error).

``create_app(FixedConfig)`` is the fixed twin: it follows with one statement that
inserts only when the pair is missing, likes with ``likes = likes + 1`` in SQL, and
takes the IntegrityError of a sign-up as "please use a different username".

``fuzzer init targets.microblog:create_app`` writes a spec that finds all three as
written; ``tests/fixtures/fuzz_microblog.py`` is that spec.
"""

from __future__ import annotations

from flask import Flask
from flask_login import LoginManager

from .config import Config
from .models import User, db

login = LoginManager()
login.login_view = "auth.login"


@login.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


def create_app(config_class: type[Config] = Config) -> Flask:
    app = Flask(__name__)
    app.config.from_object(config_class)
    db.init_app(app)
    login.init_app(app)

    from . import api, auth, cli, main

    app.register_blueprint(auth.bp, url_prefix="/auth")
    app.register_blueprint(main.bp)
    app.register_blueprint(api.bp, url_prefix="/api")
    app.register_blueprint(cli.bp)
    return app
