"""Config classes, one per environment, as ``create_app(config)`` looks them up by name."""

from __future__ import annotations

import os


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY", "change-me")
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL", "sqlite:///demo.db")
    PASSWORD_HASH = "scrypt"  # werkzeug's default: slow on purpose
    POSTS_PER_PAGE = 10
    RACES_FIXED = False  # the catalog's switch: True runs the fixed code paths


class DevelopmentConfig(Config):
    DEBUG = True


class TestingConfig(Config):
    TESTING = True
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite://")
    WTF_CSRF_ENABLED = False  # tests post forms without fetching a token first
    PASSWORD_HASH = "unsalted-sha256"  # fast and repeatable, for tests only


class FixedTestingConfig(TestingConfig):
    RACES_FIXED = True


class ProductionConfig(Config):
    pass


configs: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "testing-fixed": FixedTestingConfig,
    "production": ProductionConfig,
}
