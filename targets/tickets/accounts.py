"""Sign-in by email and sign-out."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, redirect, render_template_string, url_for
from flask_login import login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Email

from .models import Attendee, db

bp = Blueprint("accounts", __name__)


class SignInForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email(check_deliverability=False)])
    password = PasswordField("Password", validators=[DataRequired()])


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    form = SignInForm()
    if form.validate_on_submit():
        attendee = db.session.scalar(sa.select(Attendee).where(Attendee.email == form.email.data))
        if attendee is not None and attendee.check_password(form.password.data):
            login_user(attendee)
            return redirect(url_for("shop.events"))
    return render_template_string(
        "<form method=post>{{ form.email }}{{ form.password }}</form>", form=form
    )


@bp.post("/sign-out")
@login_required
def sign_out() -> Any:
    logout_user()
    return redirect(url_for("accounts.sign_in"))
