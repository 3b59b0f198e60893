"""``fuzzer init`` (a starting spec for an existing app) and ``fuzzer clean`` (the
scratch databases of runs that died)."""

from __future__ import annotations

import json
import os

import click

from fuzzer.cli.guard import guard
from fuzzer.report import reporting


def _setup_label(kind: str, name: str) -> str:
    if kind == "command":
        return f"flask {name}"
    if kind == "request":
        return f"POST {json.loads(name)['path']}"
    if kind == "fixture":
        return f"pytest_fixture({name.partition(':')[2]})"
    if kind == "fill" and name:
        return f"fill_tables(tables=[{name!r}])"
    return f"{name.partition(':')[2] or ('fill_tables' if kind == 'fill' else kind)}()"


@click.command("init")
@click.argument("factory")
@click.option(
    "--output",
    "-o",
    metavar="FILE",
    default=None,
    help="Where to write the spec (default: fuzz_<app>.py in this directory).",
)
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.option("--no-check", is_flag=True, help="Write the spec without trying it.")
@click.option(
    "--all-endpoints",
    is_flag=True,
    help="Keep the GET pages that only read (by default they are listed in a comment).",
)
def init_command(
    factory: str, output: str | None, force: bool, no_check: bool, all_endpoints: bool
) -> None:
    """Write a starting target spec for an existing Flask app.

    FACTORY is the app factory, package.module:create_app, or a call with config
    arguments: 'package.module:create_app("testing")'. The spec lists every URL rule
    with small domains for its variables, form and OpenAPI bodies, the users to act as,
    and a setup that runs the app's own init-db/seed commands; it runs as written, and
    its comments say what to check. Exit 0 when the spec is written, also when its check
    failed (then a warning says what failed, and so does the spec's first comment)."""
    from fuzzer.init import spec

    def action() -> int:
        written = spec.write_spec(
            factory, output, force=force, check=not no_check, all_endpoints=all_endpoints
        )
        plan = written.plan
        kept = [r for r in plan.routes if plan.kept(r)]
        left = len(plan.routes) - len(kept)
        reporting.note(
            f"Wrote {written.path}: {_count(len(kept), 'endpoint')}"
            + (f" ({left} more listed in a comment)" if left else "")
            + f", {_count(len(plan.identities), 'identity', 'identities')}, setup: "
            + (", ".join(_setup_label(k, n) for k, n in plan.setup) or "none (edit it)")
        )
        if written.failed:
            reporting.warning(
                f"fuzzer init's check of the spec failed: {written.failed}. The spec is "
                "written unchecked (every endpoint kept, a CHECK FIRST comment at its top) "
                "as a starting point; `fuzzer run` stops the same way until that is fixed."
            )
        elif not no_check:
            reporting.note("Each endpoint's requests, sent alone after setup:")
            sent = {f"{r.method} {r.rule}" for r in kept}
            for endpoint, line in written.survey.items():
                if endpoint in sent or endpoint not in plan.left_out:
                    reporting.note(f"  kept      {endpoint}: {line}")
                else:
                    reporting.note(f"  left out  {endpoint}: {plan.left_out[endpoint]}")
            for line in plan.proofs:
                reporting.note(f"Identity {line}")
            if plan.identity_notes and not plan.users:
                reporting.note(plan.identity_notes[0])
        if not kept:  # `fuzzer run` refuses an empty ENDPOINTS (exit 2): say so, not "Next"
            reporting.warning(
                f"the spec keeps no endpoint: none of the {len(plan.routes)} wrote when fuzzer "
                "init sent it, and `fuzzer run` stops (exit 2) until ENDPOINTS holds one. "
                + (
                    "Declare identities that sign in (see the spec's comments), then "
                    if not plan.users
                    else ""
                )
                + "move the endpoints to fuzz from the comment into ENDPOINTS, or write the "
                "spec again with `fuzzer init --all-endpoints --force` to keep them all."
            )
            return 0
        where = os.path.dirname(os.path.abspath(written.path))
        elsewhere = f"  (from {where})" if where != os.getcwd() else ""
        reporting.note(f"Next: fuzzer run {written.module}:target{elsewhere}")
        return 0

    guard(action)


@click.command("clean")
@click.option(
    "--db",
    "databases",
    multiple=True,
    metavar="URL",
    help="A server to clean (repeatable): mariadb, postgres or a URL on 127.0.0.1; "
    "default: the temporary SQLite files, MariaDB and PostgreSQL on their usual ports.",
)
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option("--include-kept", is_flag=True, help="Also remove databases kept with --keep-db.")
def clean_command(databases: tuple[str, ...], dry_run: bool, include_kept: bool) -> None:
    """Remove the scratch databases of fuzzer runs that died without cleaning up.

    A run killed with SIGKILL, or ended by a target calling os._exit(), leaves its
    scratch databases (and SQLite temporary directories) behind. Each is marked with
    its owner (host, pid, start time) and locked while its run lives: this lists every
    marked one and removes those whose run is gone and whose name is a scratch name the
    fuzzer gives (fuzz_<run>); another host's are listed and left. Runs also do this when
    they start."""
    from fuzzer.db import clean

    def action() -> int:
        given = list(databases) or list(clean.DEFAULTS)
        for line in clean.clean(
            given, dry_run=dry_run, include_kept=include_kept, explicit=bool(databases)
        ):
            reporting.note(line)
        return 0

    guard(action)


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"
