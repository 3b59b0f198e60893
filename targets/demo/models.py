"""The models: users who follow each other, posts they like and tag.

Three association tables: ``follows`` (who follows whom), ``likes`` (who liked which
post) and ``post_tags``; each has a composite primary key, so a pair appears once.
``posts.views`` and ``posts.like_count`` are counters kept on the row.
"""

from __future__ import annotations

from hashlib import sha256

from flask import current_app
from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Column, ForeignKey, String, Table, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

#: Tests hash passwords fast and repeatably (no salt): never in production.
TEST_HASH = "unsalted-sha256"


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)

follows = Table(
    "follows",
    db.metadata,
    Column("follower_id", ForeignKey("users.id"), primary_key=True),
    Column("followed_id", ForeignKey("users.id"), primary_key=True),
)

likes = Table(
    "likes",
    db.metadata,
    Column("user_id", ForeignKey("users.id"), primary_key=True),
    Column("post_id", ForeignKey("posts.id"), primary_key=True),
)

post_tags = Table(
    "post_tags",
    db.metadata,
    Column("post_id", ForeignKey("posts.id"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id"), primary_key=True),
)


class User(UserMixin, db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    email: Mapped[str | None] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(256))

    posts: Mapped[list[Post]] = relationship(back_populates="author")
    following: Mapped[list[User]] = relationship(
        secondary=follows,
        primaryjoin=lambda: follows.c.follower_id == User.id,
        secondaryjoin=lambda: follows.c.followed_id == User.id,
        back_populates="followers",
    )
    followers: Mapped[list[User]] = relationship(
        secondary=follows,
        primaryjoin=lambda: follows.c.followed_id == User.id,
        secondaryjoin=lambda: follows.c.follower_id == User.id,
        back_populates="following",
    )

    def set_password(self, password: str) -> None:
        method = current_app.config["PASSWORD_HASH"]
        if method == TEST_HASH:
            self.password_hash = f"{TEST_HASH}${sha256(password.encode()).hexdigest()}"
        else:
            self.password_hash = generate_password_hash(password, method=method)

    def check_password(self, password: str) -> bool:
        if self.password_hash.startswith(f"{TEST_HASH}$"):
            return self.password_hash == f"{TEST_HASH}${sha256(password.encode()).hexdigest()}"
        return check_password_hash(self.password_hash, password)

    def is_following(self, user: User) -> bool:
        return user in self.following


class Post(db.Model):  # type: ignore[name-defined]
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    views: Mapped[int] = mapped_column(default=0)
    like_count: Mapped[int] = mapped_column(default=0)

    author: Mapped[User] = relationship(back_populates="posts")
    liked_by: Mapped[list[User]] = relationship(secondary=likes)
    tags: Mapped[list[Tag]] = relationship(secondary=post_tags, order_by="Tag.name")


class Tag(db.Model):  # type: ignore[name-defined]
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
