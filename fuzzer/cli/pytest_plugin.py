"""The pytest plugin (entry point ``pytest11``): fuzz a target inside an app's own suite.

::

    def test_no_races(fuzzer_run):
        fuzzer_run("myapp.fuzzspec:target")        # or a Target object

    @pytest.mark.fuzzer(max_examples=500, isolation="read-committed")
    def test_no_races_at_read_committed(fuzzer_run):
        fuzzer_run(target)

``fuzzer_run(target, **options)`` is ``fuzzer.fuzz`` with the run's settings taken, in
this order of precedence, from the command line (``--fuzzer-db``, ``--fuzzer-seed``,
``--fuzzer-examples``, ``--fuzzer-report-dir``), the test's ``fuzzer`` marker, the
call's keywords, then ``$FUZZER_DB`` and the library's defaults. Reports go under the
test's temporary directory unless ``--fuzzer-report-dir`` says where; Hypothesis's
example database lives in pytest's cache directory, keyed by the test's node id, so a
failure is tried first the next time that test runs. A failing test's report carries a
"fuzzer" section: where the reports are, and the command that replays each finding.

This module is imported in every pytest session of an environment the fuzzer is
installed in: it imports nothing of the fuzzer until a test asks for ``fuzzer_run``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from fuzzer.api import RunReport

MARKER = "fuzzer"
SECTION = "fuzzer"
_REPORTS = pytest.StashKey[list[str]]()  # what the test's runs wrote, for the section


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fuzzer", "flask-race-fuzzer")
    group.addoption(
        "--fuzzer-db",
        metavar="URL",
        default=None,
        help="database for fuzzer_run: sqlite, mariadb, postgres or a URL on 127.0.0.1 "
        "(default: $FUZZER_DB, else sqlite)",
    )
    group.addoption(
        "--fuzzer-seed", type=int, default=None, metavar="SEED", help="seed for every fuzzer_run"
    )
    group.addoption(
        "--fuzzer-examples",
        type=int,
        default=None,
        metavar="N",
        help="examples per fuzzer_run (over the marker's and the call's)",
    )
    group.addoption(
        "--fuzzer-report-dir",
        default=None,
        metavar="DIR",
        help="write the reports here (default: under each test's temporary directory)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**settings): settings for the test's fuzzer_run (fields of "
        "fuzzer.Settings: max_examples=, db=, isolation=, time_budget=, ...)",
    )


def command_line(config: pytest.Config) -> dict[str, Any]:
    """The settings given on pytest's command line."""
    given = {
        "db": config.getoption("fuzzer_db"),
        "seed": config.getoption("fuzzer_seed"),
        "max_examples": config.getoption("fuzzer_examples"),
        "report_dir": config.getoption("fuzzer_report_dir"),
    }
    return {name: value for name, value in given.items() if value is not None}


@pytest.fixture
def fuzzer_run(request: pytest.FixtureRequest, tmp_path: Any) -> Callable[..., RunReport]:
    """Fuzz a target (a ``Target`` or ``"package.module:attribute"``); fail the test with
    the text report of every finding. Keywords are fields of ``fuzzer.Settings``."""
    from fuzzer import api
    from fuzzer.settings import Settings, split

    node = request.node
    marker = node.get_closest_marker(MARKER)
    marked = dict(marker.kwargs) if marker is not None else {}
    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    examples = cache.mkdir("fuzzer-examples") if cache is not None else None
    written = node.stash.setdefault(_REPORTS, [])

    def run(target: Any, **options: Any) -> RunReport:
        __tracebackhide__ = True
        given, rest = split({**options, **marked, **command_line(request.config)})
        base = Settings.from_environment(
            Settings(
                report_dir=str(tmp_path / "fuzzer-reports"),
                example_db=str(examples) if examples is not None else None,
            )
        )
        rest.setdefault("example_key", node.nodeid)
        report = api.run(target, base.replace(**given), **rest)
        if report.findings:
            written.extend(section(report))
            raise AssertionError(api.failure_message(report))
        return report

    return run


def section(report: RunReport) -> list[str]:
    """Where a failing run's reports are, and how to replay each finding."""
    lines = [f"Reports in {report.directory}/"] if report.directory else []
    for finding in report.findings:
        lines.append(f"{finding.kind} · {' + '.join(finding.endpoints)}:")
        lines.extend(f"  {line}" for line in report.reproduce(finding))
    return lines


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    lines = item.stash.get(_REPORTS, [])
    if report.when == "call" and report.failed and lines:
        report.sections.append((SECTION, "\n".join(lines)))
