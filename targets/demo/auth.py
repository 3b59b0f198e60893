"""The ``auth`` blueprint: sign in and out, register."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .forms import LoginForm, RegistrationForm
from .models import User, db

bp = Blueprint("auth", __name__, url_prefix="/auth")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("social.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.scalar(select(User).where(User.username == form.username.data))
        if user is None or not user.check_password(form.password.data):
            flash("Invalid username or password")
            return redirect(url_for("auth.login"))
        login_user(user, remember=form.remember_me.data)
        return redirect(url_for("social.index"))
    return render_template("login.html", form=form)


@bp.route("/logout")
def logout() -> Any:
    logout_user()
    return redirect(url_for("social.index"))


@bp.route("/register", methods=["GET", "POST"])
def register() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("social.index"))
    form = RegistrationForm()
    if form.validate_on_submit():  # validate_username checked the name is free...
        user = User(username=form.username.data, email=form.email.data or None)
        user.set_password(form.password.data)
        db.session.add(user)
        if current_app.config["RACES_FIXED"]:
            try:
                db.session.commit()
            except IntegrityError:  # ...but another sign-up took it since: say so
                db.session.rollback()
                form.username.errors.append("Please use a different username.")
                return render_template("register.html", form=form)
        else:
            db.session.commit()  # ...a sign-up that took it since makes this an IntegrityError
        flash("Congratulations, you are now a registered user!")
        return redirect(url_for("auth.login"))
    return render_template("register.html", form=form)
