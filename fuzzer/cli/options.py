"""The options the commands share: a click option for each setting a command takes, made
from its declaration in ``fuzzer/settings.py`` (``Flag``), and the ``Settings`` the
command's options make; the report directory checked before a search."""

from __future__ import annotations

import dataclasses
import importlib
import os
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

import click

from fuzzer.errors import InternalError, InvalidOption
from fuzzer.settings import LIBRARY_DEFAULT, Flag, Settings, flags
from fuzzer.settings import split as split_settings

F = TypeVar("F", bound=Callable[..., Any])


def settings_options(command: str) -> Callable[[F], F]:
    """A click option for each setting ``command`` takes (its ``Flag`` names the
    command), in the order of the fields of ``Settings``; each reaches the command's
    function under the setting's name."""

    def decorate(function: F) -> F:
        for f, flag in reversed(flags(command)):
            function = click_option(f, flag, command)(function)
        return function

    return decorate


def click_option(f: dataclasses.Field[Any], flag: Flag, command: str) -> Callable[[F], F]:
    """The click option of the setting ``f`` in ``command``."""
    default = flag.get(command, "default")
    if default is LIBRARY_DEFAULT:
        default = f.default
    declared = [flag.name, f.name]
    if flag.short:
        declared.insert(1, flag.short)
    more: dict[str, Any] = {}
    if flag.kind is bool:
        more["is_flag"] = True
    else:
        more["type"] = _click_type(flag)
        more["default"] = default
    if flag.alone is not None:
        more.update(is_flag=False, flag_value=flag.alone)
    if flag.get(command, "show_default"):
        more["show_default"] = True
    elif flag.show_default:
        more["show_default"] = False  # shown by other commands, not by this one
    if flag.envvar:
        more.update(envvar=flag.envvar, show_envvar=True)
    if flag.metavar:
        more["metavar"] = flag.metavar
    if flag.parse:
        more["callback"] = _parser(flag, f.default)
    text = flag.get(command, "help")
    return click.option(*declared, help=text or None, **more)


def _click_type(flag: Flag) -> Any:
    if flag.choices:
        return click.Choice(flag.choices)
    if flag.kind is int and (flag.low is not None or flag.high is not None):
        return click.IntRange(
            None if flag.low is None else int(flag.low),
            None if flag.high is None else int(flag.high),
        )
    if flag.kind is float and (flag.low is not None or flag.high is not None):
        return click.FloatRange(flag.low, flag.high)
    return flag.kind


def parse_function(flag: Flag) -> Callable[[str], Any]:
    """The function ``Flag.parse`` names ("module:function")."""
    module, _, name = (flag.parse or "").partition(":")
    function: Callable[[str], Any] = getattr(importlib.import_module(module), name)
    return function


def _parser(flag: Flag, unset: Any) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """``Flag.parse`` as a click callback: a bad value is a usage error naming the option;
    an option not given (None) is the setting's default, ``unset``."""

    def parse(context: click.Context, parameter: click.Parameter, value: Any) -> Any:
        if value is None:
            return unset
        try:
            return parse_function(flag)(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=flag.name) from None

    return parse


def settings_of(options: dict[str, Any], **more: Any) -> Settings:
    """The command's options as one ``Settings`` (the command line's defaults: reports in
    ``reports/``, the example database in ``.fuzzer/examples``)."""
    given, rest = split_settings({**options, **more})
    if rest:
        raise InternalError(f"options of no Settings field: {', '.join(sorted(rest))}")
    return Settings.for_cli(**given)


def check_report_dir(path: str) -> None:
    """Create the report directory now, or refuse it (exit 2): a directory that cannot be
    written fails before the search, not after it with the finding lost."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    where = f"--report-dir {path}"
    if not os.path.isdir(existing):
        inside = "" if existing == os.path.abspath(path) else f" ({existing} is)"
        raise InvalidOption(
            f"Cannot write reports to {where}: it is a file, not a directory{inside}; "
            f"give a directory (it is created if missing)"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidOption(
            f"Cannot write reports to {where}: {existing} is not writable; give a directory "
            f"you may write to"
        )
    try:
        os.makedirs(path, exist_ok=True)
        # a real write: root passes every access() check, and /proc refuses anyway
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InvalidOption(
            f"Cannot write reports to {where}: {reason.lower()}; give a directory you may "
            f"write to (it is created if missing)"
        ) from None
