"""The ``social`` blueprint: posts with view and like counters, tags, following.

Each racy spot has its fixed code path beside it, chosen by ``RACES_FIXED`` (the
catalog's switch between the buggy app and its fixed twin).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from .forms import EmptyForm, TagForm
from .models import Post, Tag, User, db, follows, likes, post_tags

bp = Blueprint("social", __name__)


def _fixed() -> bool:
    return bool(current_app.config["RACES_FIXED"])


@bp.route("/")
def index() -> Any:
    posts = db.session.scalars(select(Post).order_by(Post.id).limit(10)).all()
    return render_template("index.html", posts=posts)


@bp.route("/post/<int:post_id>")
def post(post_id: int) -> Any:
    post = db.get_or_404(Post, post_id)
    if _fixed():
        post.views = Post.views + 1  # UPDATE posts SET views = views + 1
    else:
        post.views += 1  # read in Python, written back: two overlapping views count once
    db.session.flush()
    page = render_template("post.html", post=post, form=TagForm())
    db.session.commit()  # after rendering: the page shows the count this view made
    return page


@bp.route("/post/<int:post_id>/like", methods=["POST"])
@login_required
def like(post_id: int) -> Any:
    post = db.get_or_404(Post, post_id)
    if EmptyForm().validate_on_submit():
        if _fixed():
            try:
                # the post's row lock first: inserting the like first takes a shared lock on
                # the post (the foreign key), and two such likes deadlock on MariaDB when
                # both then update the count
                post.like_count = Post.like_count + 1
                db.session.flush()
                db.session.execute(insert(likes).values(user_id=current_user.id, post_id=post_id))
                db.session.commit()
            except IntegrityError:  # a double click: it is liked already
                db.session.rollback()
        elif current_user not in post.liked_by:
            post.liked_by.append(current_user)
            post.like_count += 1
            db.session.commit()
    return redirect(url_for("social.post", post_id=post_id))


@bp.route("/post/<int:post_id>/tags", methods=["POST"])
@login_required
def tag(post_id: int) -> Any:
    post = db.get_or_404(Post, post_id)
    form = TagForm()
    if form.validate_on_submit():
        name = form.name.data.strip().lower()
        if _fixed():
            tag_id = _get_or_create_tag(name)
            try:
                db.session.execute(insert(post_tags).values(post_id=post_id, tag_id=tag_id))
                db.session.commit()
            except IntegrityError:  # tagged so already
                db.session.rollback()
        else:
            tag = db.session.scalar(select(Tag).where(Tag.name == name))
            if tag is None:  # get-or-create, checked in Python
                tag = Tag(name=name)
                db.session.add(tag)
            if tag not in post.tags:
                post.tags.append(tag)
            db.session.commit()
    return redirect(url_for("social.post", post_id=post_id))


def _get_or_create_tag(name: str) -> int:
    """The tag's id, creating it in its own transaction if it is new."""
    tag_id = db.session.scalar(select(Tag.id).where(Tag.name == name))
    if tag_id is None:
        try:
            db.session.add(Tag(name=name))
            db.session.commit()
        except IntegrityError:  # created by someone else meanwhile
            db.session.rollback()
        tag_id = db.session.scalars(select(Tag.id).where(Tag.name == name)).one()
    return tag_id


@bp.route("/user/<username>")
def user(username: str) -> Any:
    user = db.first_or_404(select(User).where(User.username == username))
    return render_template("user.html", user=user, form=EmptyForm())


@bp.route("/user/<username>/follow", methods=["POST"])
@login_required
def follow(username: str) -> Any:
    user = db.first_or_404(select(User).where(User.username == username))
    if EmptyForm().validate_on_submit():
        if user == current_user:
            flash("You cannot follow yourself!")
        elif _fixed():
            try:
                db.session.execute(
                    insert(follows).values(follower_id=current_user.id, followed_id=user.id)
                )
                db.session.commit()
            except IntegrityError:  # a double click: followed already
                db.session.rollback()
        elif not current_user.is_following(user):
            current_user.following.append(user)
            db.session.commit()
    return redirect(url_for("social.user", username=username))


@bp.route("/user/<username>/unfollow", methods=["POST"])
@login_required
def unfollow(username: str) -> Any:
    user = db.first_or_404(select(User).where(User.username == username))
    if EmptyForm().validate_on_submit():
        if _fixed():
            db.session.execute(
                delete(follows).where(
                    follows.c.follower_id == current_user.id, follows.c.followed_id == user.id
                )
            )
            db.session.commit()
        elif current_user.is_following(user):
            current_user.following.remove(user)  # the flush expects to delete one row
            db.session.commit()
    return redirect(url_for("social.user", username=username))
