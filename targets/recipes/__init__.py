"""A recipe site whose seed draws random data with Faker: ``flask fake-data`` makes
cooks with random names and recipes with random titles, different in every setup.

``fuzzer init`` must still write the same spec every time: the identities named by
their key (``user2``, ``user1``), not by the names this setup happened to draw.

The planted race: ``POST /recipe/<int:recipe_id>/rate`` (JSON ``{"stars": n}``) reads
the recipe's count and total of stars and writes both back with the new rating added:
two overlapping ratings keep one (lost-update). ``create_app(fixed=True)`` is the fixed
twin: both sums in one ``UPDATE``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, abort, jsonify, request
from flask_login import LoginManager, UserMixin, login_required
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
login = LoginManager()


class Cook(UserMixin, db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(80), unique=True, nullable=False)


class Recipe(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(200), nullable=False)
    cook_id = db.Column(db.Integer, db.ForeignKey("cook.id"), nullable=False)
    ratings = db.Column(db.Integer, nullable=False, default=0)
    stars = db.Column(db.Integer, nullable=False, default=0)


@login.user_loader
def load_user(user_id: str) -> Cook | None:
    return db.session.get(Cook, int(user_id))


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite:///recipes.db", SECRET_KEY="recipes")
    db.init_app(app)
    login.init_app(app)

    @app.cli.command("fake-data")
    def fake_data() -> None:
        """Cooks and recipes with random names, as a demo needs."""
        from faker import Faker

        fake = Faker()
        for _ in range(3):
            cook = Cook(username=fake.unique.user_name())
            db.session.add(cook)
            db.session.flush()
            db.session.add(Recipe(title=fake.sentence(nb_words=3), cook_id=cook.id))
        db.session.commit()

    @app.get("/recipe/<int:recipe_id>")
    def show(recipe_id: int) -> Any:
        recipe = db.get_or_404(Recipe, recipe_id)
        return jsonify(title=recipe.title, ratings=recipe.ratings, stars=recipe.stars)

    @app.post("/recipe/<int:recipe_id>/rate")
    @login_required
    def rate(recipe_id: int) -> Any:
        stars = int(request.get_json()["stars"])
        if not 1 <= stars <= 5:
            abort(400)
        if fixed:
            db.session.execute(
                sa.update(Recipe)
                .where(Recipe.id == recipe_id)
                .values(ratings=Recipe.ratings + 1, stars=Recipe.stars + stars)
            )
            db.session.commit()
            return jsonify(ok=True)
        recipe = db.get_or_404(Recipe, recipe_id)
        recipe.ratings = recipe.ratings + 1
        recipe.stars = recipe.stars + stars
        db.session.commit()
        return jsonify(ratings=recipe.ratings)

    return app
