"""The app factory: ``create_app("development")``, or a config class."""

from __future__ import annotations

from flask import Flask
from flask_login import LoginManager

from . import auth, cli, social
from .config import Config, configs
from .models import User, db

login_manager = LoginManager()
login_manager.login_view = "auth.login"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


def create_app(config: str | type[Config] = "development") -> Flask:
    app = Flask(__name__)
    app.config.from_object(configs[config] if isinstance(config, str) else config)
    db.init_app(app)
    login_manager.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(social.bp)
    cli.register(app)
    return app
