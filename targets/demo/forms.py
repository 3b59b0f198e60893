"""Flask-WTF forms. Usernames are unique: the registration form checks it in Python."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, PasswordField, StringField, SubmitField
from wtforms.validators import (
    DataRequired,
    EqualTo,
    Length,
    Optional,
    Regexp,
    ValidationError,
)

from .models import User, db


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])
    remember_me = BooleanField("Remember me")
    submit = SubmitField("Sign in")


class RegistrationForm(FlaskForm):
    username = StringField(
        "Username", validators=[DataRequired(), Length(3, 32), Regexp(r"^[a-z0-9_]+$")]
    )
    email = StringField("Email", validators=[Optional(), Length(3, 120)])
    password = PasswordField("Password", validators=[DataRequired(), Length(6, 128)])
    password2 = PasswordField("Repeat password", validators=[EqualTo("password")])
    submit = SubmitField("Register")

    def validate_username(self, username: Any) -> None:
        if db.session.scalar(select(User).where(User.username == username.data)) is not None:
            raise ValidationError("Please use a different username.")


class TagForm(FlaskForm):
    name = StringField("Tag", validators=[DataRequired(), Length(1, 32)])
    submit = SubmitField("Add tag")


class EmptyForm(FlaskForm):
    """For the buttons that post nothing but need the CSRF token (follow, like, ...)."""

    submit = SubmitField("Submit")
