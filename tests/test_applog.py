"""Quiet runs: the app's logging and stderr go to app.log in the run directory, with one
line saying how much it logged; -v shows them live as well."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fuzz(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = ["run", "targets.noisy:buggy", "-n", "20", "--seed", "1", "--no-progress"]
    return subprocess.run(
        [sys.executable, "-m", "fuzzer", *command, "--report-dir", str(tmp_path), *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_an_app_that_logs_every_request_and_error_leaves_the_terminal_to_the_fuzzer(
    tmp_path: Path,
) -> None:
    # issue 19: an app logging a traceback for every 500 printed 21,749 lines in one run;
    # this one printed 2,900 lines in 20 examples (stderr), now none of them
    result = fuzz(tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert len(output.splitlines()) < 100, output[-3000:]
    assert "Traceback" not in output and "INFO:shop" not in output
    (run,) = tmp_path.iterdir()
    log = (run / "app.log").read_text()
    assert "Traceback" in log and "ValueError" in log
    assert "POST /cart/ann/items -> " in log
    line = next(x for x in result.stdout.splitlines() if x.startswith("The app logged"))
    assert "of them errors" in line and str(run / "app.log") in line.replace("\n", "")


def test_verbose_shows_the_app_output_live_and_still_keeps_it(tmp_path: Path) -> None:
    result = fuzz(tmp_path, "-v")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" in result.stderr and "INFO:shop" in result.stderr
    (run,) = tmp_path.iterdir()
    assert "Traceback" in (run / "app.log").read_text()


def test_the_log_takes_handlers_made_before_and_after_and_puts_everything_back(
    tmp_path: Path,
) -> None:
    import logging

    from fuzzer.modes.applog import AppLog

    terminal = sys.stderr
    early = logging.getLogger("tests.applog.early")
    made_before = logging.StreamHandler(terminal)  # an app's handler made at import
    early.addHandler(made_before)
    early.propagate = False
    log = AppLog()
    try:
        with log:
            assert sys.stderr is not terminal
            early.error("boom from import time")
            logging.getLogger("tests.applog.late").warning("late warning")  # counted
            print("printed to stderr", file=sys.stderr)
            sys.stderr.flush()
            os.write(sys.stderr.fileno(), b"written to the descriptor\n")
        summary = log.summary(lambda: str(tmp_path))
    finally:
        early.removeHandler(made_before)
    assert sys.stderr is terminal and made_before.stream is terminal
    assert (summary.records, summary.errors) == (2, 1)
    text = (tmp_path / "app.log").read_text()
    for line in ("boom from import time", "printed to stderr", "descriptor"):
        assert line in text
    assert "2 record(s), 1 of them errors" in summary.line()


def test_a_run_without_findings_keeps_the_log_and_lists_no_reports(tmp_path: Path) -> None:
    command = ["run", "targets.noisy:fixed", "-n", "5", "--seed", "1", "--no-progress"]
    result = subprocess.run(
        [sys.executable, "-m", "fuzzer", *command, "--report-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = tmp_path.iterdir()
    assert [p.name for p in run.iterdir()] == ["app.log"]
    assert "Reports:" not in result.stdout  # no report.html nor junit.xml to point at
    assert f"{run / 'app.log'}" in result.stdout.replace("\n", "")


def test_a_handler_the_app_makes_during_the_run_writes_to_the_terminal_after_it() -> None:
    # logging.StreamHandler() takes sys.stderr when made: during the run that is the log,
    # whose file is closed when the run ends; the app goes on logging after it (a library
    # run, the pytest plugin) and must not get "--- Logging error ---"
    import io
    import logging

    from fuzzer.modes.applog import AppLog

    logger = logging.getLogger("tests.applog.during")
    logger.propagate = False
    saved = sys.stderr
    terminal = io.StringIO()
    sys.stderr = terminal
    try:
        with AppLog():
            made_during = logging.StreamHandler()  # on the log's stream
            logger.addHandler(made_during)
        logger.error("after the run")
        assert made_during.stream is terminal
        assert "after the run" in terminal.getvalue()
        assert "Logging error" not in terminal.getvalue()
    finally:
        sys.stderr = saved
        logger.handlers.clear()


def fuzzer(tmp_path: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """The command in ``tmp_path`` (a soak keeps its campaign under the working
    directory), its scratch SQLite files there too."""
    scratch = tmp_path / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "fuzzer", *command, "--no-progress"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ROOT, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_soak_keeps_the_app_log_in_its_run_directory(tmp_path: Path) -> None:
    # issue 19 item 6: the soak printed every line the app logged (some 2,000 per second
    # of this app); now they are in app.log, and one line counts them
    result = fuzzer(tmp_path, "soak", "targets.noisy:buggy", "--duration", "3", "--seed", "1")
    assert result.returncode == 1, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "INFO:shop" not in output
    (run,) = (tmp_path / "reports").iterdir()
    assert "Traceback" in (run / "app.log").read_text()
    line = next(x for x in result.stdout.splitlines() if x.startswith("The app logged"))
    assert "of them errors" in line and "app.log" in line


def test_a_matrix_keeps_the_app_log_and_shows_it_live_with_v(tmp_path: Path) -> None:
    matrix = ["matrix", "targets.noisy:buggy", "--db", "sqlite", "-n", "5", "--seed", "1"]
    quiet = fuzzer(tmp_path / "quiet", *matrix)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "Traceback" not in quiet.stdout + quiet.stderr
    (run,) = (tmp_path / "quiet" / "reports").iterdir()
    assert run.name.startswith("targets.noisy-buggy-matrix-")
    assert "Traceback" in (run / "app.log").read_text()
    assert "The app logged" in quiet.stdout
    live = fuzzer(tmp_path / "live", *matrix, "-v")
    assert live.returncode == 0, live.stderr[-2000:]
    assert "Traceback" in live.stderr and "INFO:shop" in live.stderr
    (run,) = (tmp_path / "live" / "reports").iterdir()
    assert "Traceback" in (run / "app.log").read_text()


def test_each_worker_s_log_moves_into_the_run_directory(tmp_path: Path) -> None:
    from fuzzer.modes.nightly.workers import _worker_logs

    run = tmp_path / "run"
    run.mkdir()
    summaries = {}
    for index, lines in ((0, 3), (1, 0)):
        own = tmp_path / f"worker{index}"
        own.mkdir()
        path = None
        if lines:  # a worker whose app logged nothing kept no file
            path = own / "app.log"
            path.write_text("line\n" * lines)
        log = {"records": lines, "errors": 1, "lines": lines, "path": str(path) if path else None}
        summaries[index] = {"app_log": log}
    summary = _worker_logs(summaries, str(run))
    assert summary is not None and (summary.records, summary.errors, summary.lines) == (3, 2, 3)
    assert [p.name for p in run.iterdir()] == ["app-w1.log"]
    assert not (tmp_path / "worker0").exists()  # its own directory removed
    assert summary.path == str(run / "app-w*.log")
