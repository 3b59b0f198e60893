"""Every difference between the supported stacks, in one place.

The fuzzer installs into the application's own environment, so it runs on what the
application pins: SQLAlchemy 1.4 or 2.x, Flask-SQLAlchemy 2.5 or 3.x, Flask and
Werkzeug 2.2 or later (pyproject.toml; CI runs the oldest, constraints/oldest.txt).
The rest of the code is written against SQLAlchemy 2.0's API and asks this module
for whatever differs; nothing else looks at a version number.

- Engines of the fuzzer's own are 2.0-style on 1.4 too (``future=True``:
  ``Connection.commit``/``rollback``, ``text()`` and ``select()`` as in 2.0), and get
  the pool 2.0 gives a SQLite file (1.4 gives it ``NullPool``, which refuses
  ``pool_size``).
- A dialect class hands out its DBAPI module with ``import_dbapi()`` (2.0) or
  ``dbapi()`` (1.4).
- PostgreSQL is spoken through psycopg 3, whose dialect SQLAlchemy 1.4 lacks.
- Flask-SQLAlchemy 3 registers itself in ``app.extensions["sqlalchemy"]``; 2.5
  registers a state object that holds it as ``.db``. Its metadata per bind, its
  engines and its ``create_all`` are asked for here.
"""

from __future__ import annotations

import importlib.util
import traceback
from typing import Any

import sqlalchemy
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool, QueuePool

__all__ = [
    "SQLALCHEMY_2",
    "Connection",
    "Engine",
    "create_all_source",
    "create_engine",
    "flask_sqlalchemy",
    "import_dbapi",
    "metadatas",
    "sqlalchemy_engines",
    "unsupported",
]

SQLALCHEMY_2 = int(sqlalchemy.__version__.split(".")[0]) >= 2


def unsupported(dialect: str) -> str:
    """Why this stack cannot fuzz on ``dialect`` ("sqlite", "mysql", "postgresql"), or ""."""
    if dialect == "postgresql" and not SQLALCHEMY_2:
        return (
            f"PostgreSQL needs SQLAlchemy 2.0 or later (the fuzzer speaks psycopg 3, whose "
            f"dialect SQLAlchemy {sqlalchemy.__version__} lacks): fuzz on sqlite or mariadb "
            f"here, or on PostgreSQL from an environment with SQLAlchemy 2"
        )
    if dialect == "postgresql" and importlib.util.find_spec("psycopg") is None:
        return (
            "PostgreSQL is spoken through psycopg 3, an optional dependency that is not "
            "installed: pip install 'flask-race-fuzzer[postgres]'"
        )
    return ""


def create_engine(url: Any, **options: Any) -> Engine:
    """``sqlalchemy.create_engine`` with SQLAlchemy 2.0's behaviour on 1.4 too."""
    if not SQLALCHEMY_2:
        options.setdefault("future", True)
        pooled = "pool_size" in options or "max_overflow" in options
        if pooled and "poolclass" not in options:
            parsed = make_url(url)
            dialect: Any = parsed.get_dialect()  # get_pool_class is 1.4's, untyped in 2.x
            if dialect.get_pool_class(parsed) is NullPool:  # a SQLite file
                options["poolclass"] = QueuePool
                connect_args = dict(options.get("connect_args", {}))
                connect_args.setdefault("check_same_thread", False)  # as 2.0 sets it
                options["connect_args"] = connect_args
    return sqlalchemy.create_engine(url, **options)


def import_dbapi(dialect: Any) -> Any:
    """The DBAPI module of a dialect class (``url.get_dialect()``)."""
    if hasattr(dialect, "import_dbapi"):
        return dialect.import_dbapi()
    return dialect.dbapi()


def flask_sqlalchemy(app: Any) -> Any:
    """The app's ``flask_sqlalchemy.SQLAlchemy`` object, or None when it has none."""
    extensions = getattr(app, "extensions", None) or {}
    extension = extensions.get("sqlalchemy")
    if extension is not None and not hasattr(extension, "create_all"):
        extension = getattr(extension, "db", None)  # Flask-SQLAlchemy 2.5's state
    return extension


def metadatas(db: Any) -> dict[str | None, Any]:
    """Flask-SQLAlchemy's metadata per bind key (None: the default database).

    Flask-SQLAlchemy 2.5 keeps one metadata and marks a table's bind in its ``info``;
    those tables are listed under their bind, in a metadata of the bind's own."""
    if hasattr(db, "metadatas"):
        return dict(db.metadatas)
    metadata = db.metadata
    binds = {table.info.get("bind_key") for table in metadata.tables.values()}
    if binds <= {None}:
        return {None: metadata}
    split: dict[str | None, Any] = {}
    for table in metadata.sorted_tables:
        key = table.info.get("bind_key")
        if key not in split:
            split[key] = sqlalchemy.MetaData()
        table.to_metadata(split[key])
    return split


def sqlalchemy_engines(app: Any) -> dict[str | None, Engine]:
    """The engines Flask-SQLAlchemy made for ``app``, by bind key (inside an app context)."""
    db = flask_sqlalchemy(app)
    if db is None:
        return {}
    engines = getattr(db, "engines", None)
    if engines is not None:  # Flask-SQLAlchemy 3: a mapping for the current app
        return dict(engines)
    binds = [None, *(app.config.get("SQLALCHEMY_BINDS") or {})]
    return {bind: db.get_engine(app, bind=bind) for bind in binds}


def create_all_source() -> str:
    """The line a generated spec's ``setup`` creates the app's tables with."""
    extension = 'app.extensions["sqlalchemy"]'
    try:
        from flask_sqlalchemy import SQLAlchemy
    except ImportError:  # pragma: no cover - init only writes it for Flask-SQLAlchemy apps
        return f"{extension}.create_all()"
    if hasattr(SQLAlchemy, "metadatas") or hasattr(SQLAlchemy, "engines"):
        return f"{extension}.create_all()"
    return f"{extension}.db.create_all()"  # Flask-SQLAlchemy 2.5


def clash(exc: BaseException) -> str:
    """For an ImportError raised inside one installed library because another moved on
    (Flask-Login 0.5 importing ``safe_str_cmp`` from Werkzeug 2.1 or later): which two,
    at which versions, and what to pin; "" for any other error."""
    if not isinstance(exc, ImportError) or isinstance(exc, ModuleNotFoundError):
        return ""
    provider = _distribution(exc.name.split(".")[0]) if exc.name else None
    importer = None
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        top = _installed_top_level(frame.filename)
        importer = _distribution(top) if top else None
        if importer is not None:
            break
    if importer is None or provider is None or importer[0] == provider[0]:
        return ""
    (name, version), (other, other_version) = importer, provider
    return (
        f"{name} {version} does not run with the installed {other} {other_version}: pin a "
        f"{name} release made for {other} {other_version}, or the {other} that {name} "
        f"{version} was made for"
    )


def _installed_top_level(filename: str) -> str | None:
    """The top-level package of a file installed in site-packages (None elsewhere)."""
    parts = filename.replace("\\", "/").split("/")
    for marker in ("site-packages", "dist-packages"):
        if marker in parts[:-1]:
            rest = parts[parts.index(marker) + 1 :]
            return rest[0].removesuffix(".py") if rest else None
    return None


def _distribution(top_level: str) -> tuple[str, str] | None:
    """The installed distribution that provides a top-level module, and its version."""
    from importlib import metadata

    names = metadata.packages_distributions().get(top_level) or []
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None
