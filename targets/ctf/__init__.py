"""A capture-the-flag platform that, like CTFd, sends every page to ``/setup`` until
its first-start wizard is completed: a form with the event's name, the admin's email
and password. Nothing else seeds it. ``fuzzer init`` finds the wizard (every page
redirects there), posts its form once in setup, and signs in as the admin the wizard
made; each redirect before that counts the visit in the cache (a session-like key), so
the requests wrote something and still exercised nothing.

The planted race: ``POST /challenges/<int:challenge_id>/solve`` (JSON ``{"flag": …}``)
checks that the user has not solved the challenge, then inserts the solve and adds the
challenge's points to the user's score, read and written back in Python: a double
submit scores twice (duplicate-insert, lost-update). ``create_app(fixed=True)`` is the
fixed twin: the solve inserted only when none is there, and the score added in SQL.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify, redirect, request
from flask_caching import Cache
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import FlaskForm
from werkzeug.security import generate_password_hash
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired

db = SQLAlchemy()
login = LoginManager()
cache = Cache()


class Config(db.Model):  # type: ignore[name-defined]
    key = db.Column(db.String(40), primary_key=True)
    value = db.Column(db.String(200))


class Player(UserMixin, db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(120), unique=True, nullable=False)
    password_hash = db.Column(db.String(256), nullable=False)
    score = db.Column(db.Integer, nullable=False, default=0)


class Challenge(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)
    flag = db.Column(db.String(80), nullable=False)
    points = db.Column(db.Integer, nullable=False)


class Solve(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    player_id = db.Column(db.Integer, db.ForeignKey("player.id"), nullable=False)
    challenge_id = db.Column(db.Integer, db.ForeignKey("challenge.id"), nullable=False)


class SetupForm(FlaskForm):
    ctf_name = StringField("Event name", validators=[DataRequired()])
    admin_email = EmailField("Admin email", validators=[DataRequired()])
    admin_password = PasswordField("Admin password", validators=[DataRequired()])


@login.user_loader
def load_user(user_id: str) -> Player | None:
    return db.session.get(Player, int(user_id))


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI="sqlite:///ctf.db",
        SECRET_KEY="ctf",
        CACHE_TYPE="SimpleCache",
    )
    db.init_app(app)
    login.init_app(app)
    cache.init_app(app)
    with app.app_context():
        db.create_all()

    @app.before_request
    def first_start() -> Any:
        if request.path.startswith(("/setup", "/static")):
            return None
        if db.session.get(Config, "setup") is None:
            seen = f"visits:{request.path}"
            cache.set(seen, (cache.get(seen) or 0) + 1)
            return redirect("/setup")
        return None

    @app.route("/setup", methods=["GET", "POST"])
    def setup() -> Any:
        if db.session.get(Config, "setup") is not None:
            return redirect("/")
        form = SetupForm()
        if not form.validate_on_submit():
            return "the first-start wizard", 200
        admin = Player(
            email=form.admin_email.data,
            password_hash=generate_password_hash(form.admin_password.data, "pbkdf2:sha256:1000"),
        )
        db.session.add_all([admin, Config(key="setup", value=form.ctf_name.data)])
        db.session.add_all(
            [
                Challenge(name="warmup", flag="flag{a}", points=10),
                Challenge(name="crypto", flag="flag{b}", points=50),
            ]
        )
        db.session.commit()
        login_user(admin)
        return redirect("/")

    @app.get("/")
    def index() -> Any:
        return jsonify(challenges=[c.name for c in db.session.scalars(sa.select(Challenge))])

    @app.get("/scoreboard")
    def scoreboard() -> Any:
        return jsonify({p.email: p.score for p in db.session.scalars(sa.select(Player))})

    @app.post("/challenges/<int:challenge_id>/solve")
    @login_required
    def solve(challenge_id: int) -> Any:
        challenge = db.get_or_404(Challenge, challenge_id)
        data = request.get_json() or {}
        if data.get("flag") != challenge.flag:
            return jsonify(correct=False)
        mine = sa.select(Solve.id).where(
            Solve.player_id == current_user.id, Solve.challenge_id == challenge.id
        )
        if fixed:
            done = db.session.execute(
                sa.insert(Solve).from_select(
                    ["player_id", "challenge_id"],
                    sa.select(sa.literal(current_user.id), sa.literal(challenge.id)).where(
                        ~sa.exists(mine)
                    ),
                )
            )
            if done.rowcount:  # type: ignore[attr-defined]
                db.session.execute(
                    sa.update(Player)
                    .where(Player.id == current_user.id)
                    .values(score=Player.score + challenge.points)
                )
            db.session.commit()
            return jsonify(correct=True)
        if db.session.scalar(mine) is not None:
            return jsonify(correct=True, already=True)
        db.session.add(Solve(player_id=current_user.id, challenge_id=challenge.id))
        player = db.get_or_404(Player, current_user.id)
        player.score = player.score + challenge.points
        db.session.commit()
        return jsonify(correct=True)

    return app
