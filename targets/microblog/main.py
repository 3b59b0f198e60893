"""The ``main`` blueprint: the timeline, posting, profiles, following."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from .forms import EditProfileForm, EmptyForm, PostForm
from .models import Post, User, db, followers

bp = Blueprint("main", __name__)


@bp.route("/", methods=["GET", "POST"])
@bp.route("/index", methods=["GET", "POST"])
@login_required
def index() -> Any:
    form = PostForm()
    if form.validate_on_submit():
        db.session.add(Post(body=form.post.data, author=current_user))
        db.session.commit()
        flash("Your post is now live!")
        return redirect(url_for("main.index"))
    posts = db.session.scalars(sa.select(Post).order_by(Post.id)).all()
    return render_template("page.html", title="Home", form=form, posts=posts)


@bp.route("/explore")
@login_required
def explore() -> Any:
    posts = db.session.scalars(sa.select(Post).order_by(Post.timestamp.desc())).all()
    return render_template("page.html", title="Explore", posts=posts)


@bp.route("/user/<username>")
@login_required
def user(username: str) -> Any:
    found = db.first_or_404(sa.select(User).where(User.username == username))
    posts = db.session.scalars(found.posts.select().order_by(Post.id)).all()
    return render_template("page.html", title=found.username, user=found, posts=posts)


@bp.route("/edit_profile", methods=["GET", "POST"])
@login_required
def edit_profile() -> Any:
    form = EditProfileForm()
    if form.validate_on_submit():
        current_user.about_me = form.about_me.data
        db.session.commit()
        flash("Your changes have been saved.")
        return redirect(url_for("main.edit_profile"))
    return render_template("page.html", title="Edit Profile", form=form)


@bp.route("/follow/<username>", methods=["POST"])
@login_required
def follow(username: str) -> Any:
    form = EmptyForm()
    if not form.validate_on_submit():
        return redirect(url_for("main.index"))
    found = db.session.scalar(sa.select(User).where(User.username == username))
    if found is None:
        flash(f"User {username} not found.")
        return redirect(url_for("main.index"))
    if found == current_user:
        flash("You cannot follow yourself!")
        return redirect(url_for("main.user", username=username))
    if current_app.config["RACES_FIXED"]:  # one statement: insert only if missing
        missing = ~sa.exists().where(
            followers.c.follower_id == current_user.id, followers.c.followed_id == found.id
        )
        pair = sa.select(sa.literal(current_user.id), sa.literal(found.id)).where(missing)
        db.session.execute(followers.insert().from_select(["follower_id", "followed_id"], pair))
    else:
        current_user.follow(found)
    db.session.commit()
    flash(f"You are following {username}!")
    return redirect(url_for("main.user", username=username))


@bp.route("/unfollow/<username>", methods=["POST"])
@login_required
def unfollow(username: str) -> Any:
    form = EmptyForm()
    if not form.validate_on_submit():
        return redirect(url_for("main.index"))
    found = db.session.scalar(sa.select(User).where(User.username == username))
    if found is None or found == current_user:
        return redirect(url_for("main.index"))
    db.session.execute(  # one DELETE that may match nothing: safe twice
        followers.delete().where(
            followers.c.follower_id == current_user.id, followers.c.followed_id == found.id
        )
    )
    db.session.commit()
    flash(f"You are not following {username}.")
    return redirect(url_for("main.user", username=username))
