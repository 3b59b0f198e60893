"""The ``api`` blueprint: JSON, signed with tokens (``POST /api/tokens`` with the
user's password as HTTP Basic auth gives one; ``Authorization: Bearer <token>`` uses
it), as the tutorial's ``api/tokens.py``, ``api/users.py`` and ``api/auth.py``."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, current_app, g, request, url_for

from .models import Post, User, db

bp = Blueprint("api", __name__)


def token_auth(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        user = User.check_token(token) if scheme.lower() == "bearer" and token else None
        if user is None:
            return {"error": "Unauthorized"}, 401
        g.current_user = user
        return view(*args, **kwargs)

    return wrapper


def bad_request(message: str) -> tuple[dict[str, str], int]:
    return {"error": "Bad Request", "message": message}, 400


@bp.route("/tokens", methods=["POST"])
def get_token() -> Any:
    auth = request.authorization
    user = None
    if auth is not None and auth.username:
        user = db.session.scalar(sa.select(User).where(User.username == auth.username))
    if user is None or not user.check_password(auth.password or ""):  # type: ignore[union-attr]
        return {"error": "Unauthorized"}, 401
    token = user.get_token()
    db.session.commit()
    return {"token": token}


@bp.route("/tokens", methods=["DELETE"])
@token_auth
def revoke_token() -> Any:
    g.current_user.revoke_token()
    db.session.commit()
    return "", 204


@bp.route("/users/<int:id>", methods=["GET"])
@token_auth
def get_user(id: int) -> Any:
    return db.get_or_404(User, id).to_dict()


@bp.route("/users/<int:id>/followers", methods=["GET"])
@token_auth
def get_followers(id: int) -> Any:
    user = db.get_or_404(User, id)
    return {"items": [u.to_dict() for u in db.session.scalars(user.followers.select())]}


@bp.route("/users", methods=["POST"])
def create_user() -> Any:
    data = request.get_json() or {}
    if "username" not in data or "email" not in data or "password" not in data:
        return bad_request("must include username, email and password fields")
    if db.session.scalar(sa.select(User).where(User.username == data["username"])):
        return bad_request("please use a different username")
    if db.session.scalar(sa.select(User).where(User.email == data["email"])):
        return bad_request("please use a different email address")
    user = User(username=data["username"], email=data["email"], about_me=data.get("about_me"))
    user.set_password(data["password"])
    db.session.add(user)
    db.session.commit()
    return user.to_dict(), 201, {"Location": url_for("api.get_user", id=user.id)}


@bp.route("/posts/<int:id>/like", methods=["POST"])
@token_auth
def like(id: int) -> Any:
    post = db.get_or_404(Post, id)
    if current_app.config["RACES_FIXED"]:  # one UPDATE that adds where the row is
        db.session.execute(sa.update(Post).where(Post.id == id).values(likes=Post.likes + 1))
    else:
        post.likes = post.likes + 1  # read, add, write back: two likes may count one
    db.session.commit()
    db.session.refresh(post)
    return post.to_dict()
