"""The versions an app may pin (issue 22, item 4): what the fuzzer reaches into works at
them, or is refused at start with the pin to change — never exit 3."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzzer.execute.stores.caches import Stores

ROOT = Path(__file__).resolve().parent.parent

#: the pins of the CTF platform of issue 22
APP_PINS = {
    "flask": "2.1.3",
    "werkzeug": "2.2.3",
    "sqlalchemy": "1.4.54",
    "flask-sqlalchemy": "2.5.1",
    "cachelib": "0.9.0",
}


def test_a_simple_cache_without_a_lock_is_reset_as_cachelib_0_9_keeps_it() -> None:
    """cachelib 0.9.0's SimpleCache has no ``_lock``: the reset took it for granted and
    both ``fuzzer init`` and ``fuzzer run`` exited 3 (AttributeError)."""
    from flask import Flask
    from flask_caching import Cache

    app = Flask(__name__)
    cache = Cache(app, config={"CACHE_TYPE": "SimpleCache"})
    backend = cache.cache

    @contextlib.contextmanager
    def as_in_cachelib_0_9() -> Iterator[None]:
        """No ``_lock`` while the fuzzer snapshots and resets (the installed cachelib's
        own methods need theirs)."""
        lock = backend._lock
        del backend._lock
        try:
            yield
        finally:
            backend._lock = lock

    with app.app_context():
        cache.set("kept", 1, timeout=0)
        stores = Stores(app)
        with as_in_cachelib_0_9():
            stores.take_snapshot()
        cache.set("kept", 5)
        cache.set("added", 3)
        with as_in_cachelib_0_9():
            stores.reset()
        assert (cache.get("kept"), cache.get("added")) == (1, None)


def _run(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, **options)  # type: ignore[call-overload]


@pytest.mark.slow
def test_an_app_pinned_to_flask_21_keeps_its_pins_and_the_old_stack_catalog_is_found(
    tmp_path: Path,
) -> None:
    """A fresh environment holding the app's pins; ``pip install`` of the built wheel
    changes none of them, and the catalog's old-stack targets are found there."""
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FUZZER_DB")}
    wheels = tmp_path / "wheels"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("flask_race_fuzzer-*.whl")
    venv = tmp_path / "app"
    assert _run([sys.executable, "-m", "venv", str(venv)], timeout=300).returncode == 0
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    pins = [f"{name}=={version}" for name, version in APP_PINS.items()]
    done = _run([*pip, "install", "-q", *pins], env=environment, timeout=900)
    assert done.returncode == 0, done.stderr
    before = _run([*pip, "freeze"], env=environment).stdout.splitlines()
    done = _run([*pip, "install", "-q", str(wheel)], env=environment, timeout=900)
    assert done.returncode == 0, done.stderr
    after = _run([*pip, "freeze"], env=environment).stdout.splitlines()
    assert set(before) <= set(after), sorted(set(before) - set(after))  # nothing changed
    # the catalog stays in the repository: run from a clone, with the installed fuzzer
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "targets").symlink_to(ROOT / "targets")
    for name, kind in (("profile", "lost-update"), ("stock", "limit-overrun"), ("tags", "")):
        summary = tmp_path / f"{name}.json"
        command = ["run", f"targets.{name}:buggy", "-n", "150", "--seed", "1"]
        ran = _run(
            [str(venv / "bin" / "fuzzer"), *command, "--summary-file", str(summary)],
            cwd=clone,
            env=environment,
            timeout=600,
        )
        assert ran.returncode == 1, ran.stderr
        kinds = [f["kind"] for f in json.loads(summary.read_text())["findings"]]
        assert kinds and (not kind or kind in kinds), kinds


def _raised_in(filename: str, source: str) -> BaseException:
    try:
        exec(compile(source, filename, "exec"), {})
    except BaseException as exc:
        return exc
    raise AssertionError("nothing raised")


def test_a_library_that_no_longer_imports_is_named_with_the_pin_to_change() -> None:
    """Flask-Login 0.5 imports ``safe_str_cmp``, which Werkzeug 2.1 removed: the app
    cannot be imported, and the message names both libraries and their versions."""
    from importlib.metadata import version

    import flask_login

    from fuzzer.compat import clash

    source = "raise ImportError(\"cannot import name 'safe_str_cmp'\", name='werkzeug.security')"
    inside = str(Path(flask_login.__file__).parent / "utils.py")
    hint = clash(_raised_in(inside, source))
    assert hint == (
        f"Flask-Login {version('flask-login')} does not run with the installed Werkzeug "
        f"{version('werkzeug')}: pin a Flask-Login release made for Werkzeug "
        f"{version('werkzeug')}, or the Werkzeug that Flask-Login {version('flask-login')} "
        "was made for"
    )
    assert clash(_raised_in("/srv/app/views.py", source)) == ""  # the app's own import
    assert clash(_raised_in(inside, "raise ValueError('x')")) == ""
