"""The ``auth`` blueprint: sign in and out, register."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy.exc import IntegrityError

from .forms import LoginForm, RegistrationForm
from .models import User, db

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.scalar(sa.select(User).where(User.username == form.username.data))
        if user is None or not user.check_password(form.password.data):
            flash("Invalid username or password")
            return redirect(url_for("auth.login"))
        login_user(user, remember=form.remember_me.data)
        return redirect(url_for("main.index"))
    return render_template("page.html", title="Sign In", form=form)


@bp.route("/logout")
def logout() -> Any:
    logout_user()
    return redirect(url_for("main.index"))


@bp.route("/register", methods=["GET", "POST"])
def register() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = RegistrationForm()
    if form.validate_on_submit():  # validate_username found the name free...
        user = User(username=form.username.data, email=form.email.data)
        user.set_password(form.password.data)
        db.session.add(user)
        if current_app.config["RACES_FIXED"]:
            try:
                db.session.commit()
            except IntegrityError:  # ...and another sign-up took it since: say so
                db.session.rollback()
                form.username.errors.append("Please use a different username.")
                return render_template("page.html", title="Register", form=form)
        else:
            db.session.commit()  # ...a sign-up that took it since: IntegrityError
        flash("Congratulations, you are now a registered user!")
        return redirect(url_for("auth.login"))
    return render_template("page.html", title="Register", form=form)
