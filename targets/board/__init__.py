"""A message board whose forms are out of the view's sight: replies are posted to a
``MethodView`` class (``ReplyView.post``), and polls are voted on with a form that a
helper builds for the poll (``vote_form_for(poll)``, a subclass made at request time
with the poll's options as the choices). ``fuzzer init`` finds both forms through the
view's code, and the helper's.

The planted races: ``POST /topic/<int:topic_id>/reply`` counts replies on the topic by
reading the count and writing it back plus one (lost-update); ``POST
/poll/<int:poll_id>/vote`` checks that the user has not voted on the poll, then inserts
the vote: a double click votes twice (duplicate-insert). ``create_app(fixed=True)`` is
the fixed twin: ``replies = replies + 1`` in SQL, and a vote inserted only when none is
there, in one statement.
"""

from __future__ import annotations

from typing import Any, ClassVar

import sqlalchemy as sa
from flask import Flask, abort, current_app, jsonify
from flask.views import MethodView
from flask_login import LoginManager, UserMixin, current_user, login_required
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import FlaskForm
from wtforms import RadioField, StringField
from wtforms.validators import DataRequired, Length

db = SQLAlchemy()
login = LoginManager()


class Member(UserMixin, db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(40), unique=True, nullable=False)


class Topic(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(80), nullable=False)
    replies = db.Column(db.Integer, nullable=False, default=0)


class Reply(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    topic_id = db.Column(db.Integer, db.ForeignKey("topic.id"), nullable=False)
    text = db.Column(db.String(200), nullable=False)


class Poll(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    question = db.Column(db.String(80), nullable=False)


class Option(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    poll_id = db.Column(db.Integer, db.ForeignKey("poll.id"), nullable=False)
    label = db.Column(db.String(40), nullable=False)


class Vote(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    poll_id = db.Column(db.Integer, db.ForeignKey("poll.id"), nullable=False)
    member_id = db.Column(db.Integer, db.ForeignKey("member.id"), nullable=False)
    option_id = db.Column(db.Integer, db.ForeignKey("option.id"), nullable=False)


class ReplyForm(FlaskForm):
    text = StringField("Reply", validators=[DataRequired(), Length(max=200)])


class VoteForm(FlaskForm):
    option = RadioField("Option", coerce=int)


def vote_form_for(poll: Poll) -> VoteForm:
    """The vote form of one poll: its options are the choices."""
    form = VoteForm()
    form.option.choices = [
        (o.id, o.label)
        for o in db.session.scalars(sa.select(Option).where(Option.poll_id == poll.id))
    ]
    return form


@login.user_loader
def load_user(user_id: str) -> Member | None:
    return db.session.get(Member, int(user_id))


class ReplyView(MethodView):
    decorators: ClassVar[list[Any]] = [login_required]

    def post(self, topic_id: int) -> Any:
        topic = db.get_or_404(Topic, topic_id)
        form = ReplyForm()
        if not form.validate_on_submit():
            return jsonify(errors=form.errors), 400
        if current_app.config["BOARD_FIXED"]:
            # the topic's row first: inserting the reply takes a shared lock on it (its
            # foreign key), and two requests that both then update it deadlock (MariaDB)
            db.session.execute(
                sa.update(Topic).where(Topic.id == topic_id).values(replies=Topic.replies + 1)
            )
            db.session.add(Reply(topic_id=topic.id, text=form.text.data))
        else:
            db.session.add(Reply(topic_id=topic.id, text=form.text.data))
            topic.replies = topic.replies + 1
        db.session.commit()
        return jsonify(ok=True)


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI="sqlite:///board.db", SECRET_KEY="board", BOARD_FIXED=fixed
    )
    db.init_app(app)
    login.init_app(app)

    @app.cli.command("seed")
    def seed() -> None:
        db.session.add_all([Member(username="kim"), Member(username="lee")])
        db.session.add_all([Topic(title="Welcome"), Topic(title="Rules")])
        poll = Poll(question="Tea or coffee?")
        db.session.add(poll)
        db.session.flush()
        db.session.add_all(
            [Option(poll_id=poll.id, label="tea"), Option(poll_id=poll.id, label="coffee")]
        )
        db.session.commit()

    app.add_url_rule("/topic/<int:topic_id>/reply", view_func=ReplyView.as_view("reply"))

    @app.post("/poll/<int:poll_id>/vote")
    @login_required
    def vote(poll_id: int) -> Any:
        poll = db.get_or_404(Poll, poll_id)
        form = vote_form_for(poll)
        if not form.validate_on_submit():
            return jsonify(errors=form.errors), 400
        if fixed:
            db.session.execute(
                sa.insert(Vote).from_select(
                    ["poll_id", "member_id", "option_id"],
                    sa.select(
                        sa.literal(poll.id),
                        sa.literal(current_user.id),
                        sa.literal(form.option.data),
                    ).where(
                        ~sa.exists().where(
                            Vote.poll_id == poll.id, Vote.member_id == current_user.id
                        )
                    ),
                )
            )
            db.session.commit()
            return jsonify(ok=True)
        mine = sa.select(Vote).where(Vote.poll_id == poll.id, Vote.member_id == current_user.id)
        if db.session.scalar(mine) is not None:
            abort(409)
        db.session.add(Vote(poll_id=poll.id, member_id=current_user.id, option_id=form.option.data))
        db.session.commit()
        return jsonify(ok=True)

    return app
