"""A lending library's HTML pages: a member borrows a book by typing its code into a
Flask-WTF form whose field ``code`` names no column (the code is the book's ``isbn``).
The form's own validator looks the book up, and a code it does not know shows the
form again, answered 200, with the field's error in the page: a spec that sends
invented words never borrows anything. ``flask seed`` makes two members and two books,
one copy each. Pages share a layout with a long head (styles, navigation), as real
ones do, so a form's errors come late in the page.

The planted race: ``POST /borrow`` reads the book's free copies, checks one is left,
then writes the count minus one computed in Python and inserts the loan: two
overlapping loans of the last copy both pass the check (limit-overrun or
lost-update). ``create_app(fixed=True)`` is the fixed twin: one ``UPDATE … SET
copies = copies - 1 WHERE id = ? AND copies > 0`` first.

``POST /account/holiday`` takes a date that must lie after today: a request with any
fixed date in the past is shown the form again, and init says so.
"""

from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask, flash, redirect, render_template_string
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import DateField, PasswordField, StringField, ValidationError
from wtforms.validators import DataRequired

db = SQLAlchemy()
login = LoginManager()
login.login_view = "sign_in"


class Member(UserMixin, db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(40), unique=True, nullable=False)
    password_hash = db.Column(db.String(200), nullable=False)
    away_until = db.Column(db.Date)


class Book(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    isbn = db.Column(db.String(20), unique=True, nullable=False)
    title = db.Column(db.String(120), nullable=False)
    copies = db.Column(db.Integer, nullable=False)


class Loan(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    book_id = db.Column(db.Integer, db.ForeignKey("book.id"), nullable=False)
    member_id = db.Column(db.Integer, db.ForeignKey("member.id"), nullable=False)


class SignInForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


class BorrowForm(FlaskForm):
    code = StringField("Book code", validators=[DataRequired()])

    def validate_code(self, field: Any) -> None:
        if db.session.scalar(sa.select(Book.id).where(Book.isbn == field.data)) is None:
            raise ValidationError("No book has this code.")


class HolidayForm(FlaskForm):
    away_until = DateField("Away until", validators=[DataRequired()])

    def validate_away_until(self, field: Any) -> None:
        if field.data <= datetime.date.today():
            raise ValidationError("Pick a day after today.")


@login.user_loader
def load_user(user_id: str) -> Member | None:
    return db.session.get(Member, int(user_id))


LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Library</title>
<style>
body { font-family: Georgia, serif; margin: 0 auto; max-width: 48rem; color: #222; }
header { display: flex; justify-content: space-between; border-bottom: 1px solid #ccc; }
nav a { margin-right: 1rem; color: #245; text-decoration: none; }
nav a:hover { text-decoration: underline; }
form { margin: 1rem 0; padding: 1rem; border: 1px solid #ddd; border-radius: 4px; }
label { display: block; font-weight: bold; margin-bottom: .25rem; }
input[type=text], input[type=date], input[type=password] { width: 100%; padding: .4rem; }
ul.errors { color: #a00; margin: .25rem 0; padding-left: 1rem; }
.flashes { list-style: none; padding: 0; }
.flashes li.danger { background: #fdd; padding: .5rem; }
.flashes li.info { background: #def; padding: .5rem; }
table.books { border-collapse: collapse; width: 100%; }
table.books td, table.books th { border-bottom: 1px solid #eee; padding: .3rem; }
footer { margin-top: 3rem; font-size: .8rem; color: #777; border-top: 1px solid #ccc; }
</style></head>
<body><header><h1>The Lending Library</h1>
<nav><a href="/">Catalogue</a><a href="/borrow">Borrow</a><a href="/account/holiday">Holiday</a>
<a href="/sign-in">Sign in</a><a href="/opening-hours">Opening hours</a>
<a href="/rules">House rules</a><a href="/contact">Contact us</a></nav></header>
<p>Open Monday to Saturday. Books are lent for three weeks and may be renewed twice.
Members away on holiday keep their loans until they are back.</p>
{% with messages = get_flashed_messages(with_categories=true) %}
{% if messages %}<ul class="flashes">{% for category, message in messages %}
<li class="{{ category }}">{{ message }}</li>{% endfor %}</ul>{% endif %}{% endwith %}
<main>{{ body | safe }}</main>
<footer>The Lending Library, 1 High Street. Volunteers welcome.</footer></body></html>"""

FORM = """<form method="post">{% for field in form if field.name != "csrf_token" %}
{{ field.label() }} {{ field() }}
{% if field.errors %}<ul class="errors">{% for e in field.errors %}<li>{{ e }}</li>
{% endfor %}</ul>{% endif %}{% endfor %}<input type="submit" value="Send"></form>"""


def page(body: str, **context: Any) -> str:
    return render_template_string(LAYOUT, body=render_template_string(body, **context))


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite:///library.db", SECRET_KEY="shelves")
    db.init_app(app)
    login.init_app(app)

    @app.cli.command("seed")
    def seed() -> None:
        """Two members, two books with one copy each."""
        for name in ("ida", "ole"):
            hashed = generate_password_hash("pass-" + name, method="pbkdf2:sha256:1000")
            db.session.add(Member(username=name, password_hash=hashed))
        db.session.add(Book(isbn="978-0-14-044913-6", title="Crime and Punishment", copies=1))
        db.session.add(Book(isbn="978-0-19-953556-9", title="Middlemarch", copies=1))
        db.session.commit()

    @app.route("/sign-in", methods=["GET", "POST"])
    def sign_in() -> Any:
        form = SignInForm()
        if form.validate_on_submit():
            found = db.session.scalar(
                sa.select(Member).where(Member.username == form.username.data)
            )
            if found is not None and check_password_hash(found.password_hash, form.password.data):
                login_user(found)
                return redirect("/")
            flash("Wrong username or password.", "danger")
        return page(FORM, form=form)

    @app.get("/")
    def catalogue() -> Any:
        books = db.session.scalars(sa.select(Book).order_by(Book.title)).all()
        return page(
            "<table class='books'>{% for b in books %}<tr><td>{{ b.title }}</td>"
            "<td>{{ b.copies }}</td></tr>{% endfor %}</table>",
            books=books,
        )

    @app.route("/borrow", methods=["GET", "POST"])
    @login_required
    def borrow() -> Any:
        form = BorrowForm()
        if not form.validate_on_submit():
            return page(FORM, form=form)
        book = db.session.scalars(sa.select(Book).where(Book.isbn == form.code.data)).one()
        if fixed:
            taken = db.session.execute(
                sa.update(Book)
                .where(Book.id == book.id, Book.copies > 0)
                .values(copies=Book.copies - 1)
            )
            if not taken.rowcount:  # type: ignore[attr-defined]
                db.session.rollback()
                flash("No copy is left.", "danger")
                return redirect("/", 303)
        else:
            if book.copies < 1:
                flash("No copy is left.", "danger")
                return redirect("/", 303)
            book.copies = book.copies - 1
        db.session.add(Loan(book_id=book.id, member_id=current_user.id))
        db.session.commit()
        flash(f"Enjoy {book.title}.", "info")
        return redirect("/", 303)

    @app.route("/account/holiday", methods=["GET", "POST"])
    @login_required
    def holiday() -> Any:
        form = HolidayForm()
        if not form.validate_on_submit():
            return page(FORM, form=form)
        member = db.get_or_404(Member, current_user.id)
        member.away_until = form.away_until.data
        db.session.commit()
        return redirect("/", 303)

    return app
