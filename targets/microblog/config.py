"""Config classes, as the tutorial's ``config.py``: ``create_app(Config)``."""

from __future__ import annotations

import os


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY", "you-will-never-guess")
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL", "sqlite:///microblog.db")
    POSTS_PER_PAGE = 10
    # salted, like werkzeug's default, but cheap: a development setting
    PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"
    RACES_FIXED = False  # the catalog's switch: True runs the fixed code paths


class FixedConfig(Config):
    RACES_FIXED = True
