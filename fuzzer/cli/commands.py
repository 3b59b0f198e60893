"""The command line: ``fuzzer run``, ``fuzzer replay``, ``fuzzer matrix``, ``fuzzer stress``,
``fuzzer soak``, ``fuzzer init``, ``fuzzer clean``.

Exit codes: 0 no finding (or, for replay, fixed); 1 findings (reproduced); 2 a usage,
target or environment error, as one line that says how to fix it; 3 a bug in the
fuzzer itself; 4 a replay that reproduced only sometimes (flaky); 130 interrupted
(Ctrl-C or SIGTERM). A reader that closes stdout early (``fuzzer run … | head -1``)
changes none of these: the run goes on, writes its reports, and exits with its code.
"""

from __future__ import annotations

from typing import Any

import click

from fuzzer.cli.init import clean_command, init_command
from fuzzer.cli.options import check_report_dir as _check_report_dir
from fuzzer.cli.replay import matrix_command, replay_command
from fuzzer.cli.run import judged_nothing, run_command, stress_command
from fuzzer.cli.soak import soak_command

__all__ = ["_check_report_dir", "judged_nothing", "main"]


class _Group(click.Group):
    """Usage errors exit with 2 and one line, like every other error."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("standalone_mode", True)
        return super().main(*args, **kwargs)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="flask-race-fuzzer", prog_name="fuzzer")
def main() -> None:
    """A concurrency fuzzer for Flask + SQLAlchemy apps: controlled interleavings over real
    HTTP and a real database, judged against serial runs, shrunk by Hypothesis."""


for _command in (
    run_command,
    replay_command,
    matrix_command,
    stress_command,
    soak_command,
    init_command,
    clean_command,
):
    main.add_command(_command)
