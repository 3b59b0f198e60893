"""The app's own test helpers as setup candidates: the fixtures of a ``conftest.py`` and
the row-making functions of a ``factories.py`` or ``helpers.py`` in the ``tests`` folder
the app's package ships (inside the package, or beside it at the project's root when
its files import the package). Each is tried like any other candidate: alone, in the
child process, on a copy of the scratch database (trials.py).

A fixture is run with ``pytest_fixture`` (fuzzer/target/fixtures.py): the fuzzer gives
``app``, ``db``, ``session`` and ``client`` itself, so a fixture that builds an app or
a database of its own (one named so, or whose code calls the app's factory) is never
run. A function is a candidate when it is named like one that makes rows (``create_*``,
``make_*``, ``add_*``) and takes no required argument."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from fuzzer.errors import describe
from fuzzer.init.factory import Factory
from fuzzer.init.setup.seeding import callable_without_arguments
from fuzzer.target.fixtures import PROVIDED, fixtures_of

__all__ = ["helper_steps"]

_FOLDERS = ("tests", "test")
_FILES = ("conftest", "factories", "factory", "helpers", "utils", "fixtures", "fakes", "testing")
_HELPER = re.compile(r"^(create|make|add|new|insert|build|seed|populate)_?\w*$")

Step = tuple[str, str]


def helper_steps(factory: Factory, notes: list[str]) -> list[Step]:
    """``("fixture", "module:name")`` and ``("helper", "module:name")`` steps, fixtures
    first, for the test modules the app's package ships; a module that cannot be
    imported is said in ``notes``."""
    steps: list[Step] = []
    for module_name in _test_modules(factory):
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            notes.append(
                f"fuzzer init could not import the test module {module_name}: {describe(exc)}"
            )
            continue
        namespace = vars(module)
        fixtures = fixtures_of(namespace)
        for name in sorted(fixtures):
            if name not in PROVIDED and _runnable(name, fixtures, factory, ()):
                steps.append(("fixture", f"{module_name}:{name}"))
        for name, value in sorted(namespace.items()):
            if (
                _HELPER.match(name)
                and inspect.isfunction(value)
                and value.__module__ == module_name
                and name not in fixtures
                and callable_without_arguments(value)
            ):
                steps.append(("helper", f"{module_name}:{name}"))
    return steps


def _runnable(
    name: str, fixtures: Mapping[str, Any], factory: Factory, chain: tuple[str, ...]
) -> bool:
    """Whether the fixture's parameters are all the fuzzer's or the module's fixtures
    (no cycle), and none of them builds an app of its own."""
    if name in PROVIDED:
        return True
    function = fixtures.get(name)
    if function is None or name in chain:
        return False
    code = getattr(function, "__code__", None)
    if code is None or factory.name in code.co_names:
        return False  # it builds the app with its test config: another database
    return all(
        _runnable(p.name, fixtures, factory, (*chain, name))
        for p in inspect.signature(function).parameters.values()
        if p.default is p.empty
    )


def _test_modules(factory: Factory) -> Iterator[str]:
    """The dotted names of the test modules: those in a tests folder inside the app's
    package, then those in one at the project's root that import the package."""
    package, directory = _package(factory.module)
    if directory is None:
        return
    mention = re.compile(rf"^\s*(from|import)\s+{re.escape(package or factory.module)}\b", re.M)
    root, depth = directory, len(package.split(".")) if package else 0
    for _ in range(depth):
        root = os.path.dirname(root)
    places = [(directory, package, True)]
    if root != directory:
        places.append((root, "", False))
    for place, prefix, inside in places:
        for folder in _FOLDERS:
            for stem in _FILES:
                path = os.path.join(place, folder, f"{stem}.py")
                if not os.path.isfile(path):
                    continue
                if not inside and not mention.search(_read(path)):
                    continue
                yield ".".join(p for p in (prefix, folder, stem) if p)


def _package(module: str) -> tuple[str, str | None]:
    """The package that holds the factory's module, and its folder."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return "", None
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        return "", None
    directory = os.path.dirname(spec.origin)
    if spec.submodule_search_locations is not None:
        return module, directory
    return module.rpartition(".")[0], directory


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return ""
