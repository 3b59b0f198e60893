"""Users who follow each other and write posts, as in the tutorial; posts count likes."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import orm
from werkzeug.security import check_password_hash, generate_password_hash

db = SQLAlchemy()

# No primary key, as many association tables are written: nothing stops a pair twice.
followers = sa.Table(
    "followers",
    db.metadata,
    sa.Column("follower_id", sa.Integer, sa.ForeignKey("user.id"), nullable=False),
    sa.Column("followed_id", sa.Integer, sa.ForeignKey("user.id"), nullable=False),
)


def _now() -> datetime:
    return datetime.now(UTC)


class User(UserMixin, db.Model):  # type: ignore[name-defined]
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    username: orm.Mapped[str] = orm.mapped_column(sa.String(64), index=True, unique=True)
    email: orm.Mapped[str] = orm.mapped_column(sa.String(120), index=True, unique=True)
    password_hash: orm.Mapped[str | None] = orm.mapped_column(sa.String(256))
    about_me: orm.Mapped[str | None] = orm.mapped_column(sa.String(140))
    token: orm.Mapped[str | None] = orm.mapped_column(sa.String(32), index=True, unique=True)
    token_expiration: orm.Mapped[float | None] = orm.mapped_column(sa.Float)  # time.time()
    posts: orm.WriteOnlyMapped[Post] = orm.relationship(back_populates="author")
    following: orm.WriteOnlyMapped[User] = orm.relationship(
        secondary=followers,
        primaryjoin=(followers.c.follower_id == id),
        secondaryjoin=(followers.c.followed_id == id),
        back_populates="followers",
    )
    followers: orm.WriteOnlyMapped[User] = orm.relationship(
        secondary=followers,
        primaryjoin=(followers.c.followed_id == id),
        secondaryjoin=(followers.c.follower_id == id),
        back_populates="following",
    )

    def set_password(self, password: str) -> None:
        method = current_app.config["PASSWORD_HASH_METHOD"]
        self.password_hash = generate_password_hash(password, method=method)

    def check_password(self, password: str) -> bool:
        return self.password_hash is not None and check_password_hash(self.password_hash, password)

    def is_following(self, user: User) -> bool:
        query = self.following.select().where(User.id == user.id)
        return db.session.scalar(query) is not None

    def follow(self, user: User) -> None:
        if not self.is_following(user):  # check, then insert: two clicks both pass
            self.following.add(user)

    def unfollow(self, user: User) -> None:
        if self.is_following(user):
            self.following.remove(user)

    def get_token(self, expires_in: int = 3600) -> str:
        now = time.time()
        if self.token and self.token_expiration and self.token_expiration > now + 60:
            return self.token
        self.token = secrets.token_hex(16)
        self.token_expiration = now + expires_in
        db.session.add(self)
        return self.token

    def revoke_token(self) -> None:
        self.token_expiration = time.time() - 1

    @staticmethod
    def check_token(token: str) -> User | None:
        user = db.session.scalar(sa.select(User).where(User.token == token))
        if user is None or user.token_expiration is None or user.token_expiration < time.time():
            return None
        return user

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "about_me": self.about_me,
            "post_count": db.session.scalar(
                sa.select(sa.func.count()).select_from(self.posts.select().subquery())
            ),
        }


class Post(db.Model):  # type: ignore[name-defined]
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    body: orm.Mapped[str] = orm.mapped_column(sa.String(140))
    timestamp: orm.Mapped[datetime] = orm.mapped_column(index=True, default=_now)
    likes: orm.Mapped[int] = orm.mapped_column(default=0)
    user_id: orm.Mapped[int] = orm.mapped_column(sa.ForeignKey(User.id), index=True)
    author: orm.Mapped[User] = orm.relationship(back_populates="posts")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "body": self.body, "likes": self.likes, "author": self.user_id}
