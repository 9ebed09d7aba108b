"""The service commands of ``derivcheck``: serve, worker, db upgrade, submit, status,
reports, stats and demo, with ``keys`` (verifier/cli/keys.py) and ``reconcile``
(verifier/cli/reconcile.py). ``register(app)`` adds them to the main Typer app.

Commands that talk to a running service go through the HTTP API (``--url``); bad input or an
unreachable service is one line on stderr and exit status 2, never a traceback. ``submit
--wait`` exits as ``check`` does, over every check of the job: 0 when the job passed, 1 when a
check has an entry with a verdict of its fail-on policy, 2 when a check could not run.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from verifier.cli.check import FAIL_ON_HELP, PIPED_WIDTH, STRICT_HELP
from verifier.cli.client import ApiClient, CliError
from verifier.config import Settings
from verifier.core.verdict import VERDICT_ORDER, Verdict
from verifier.errors import VerifierError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAILING = 1
EXIT_BAD_INPUT = 2
DEFAULT_WAIT_TIMEOUT_S = 3600.0
VERDICT_HELP = ", ".join(VERDICT_ORDER)

# Piped output keeps whole table rows (rich would cut them to 80 columns).
console = Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)
errors = Console(stderr=True)

UrlOption = Annotated[
    str | None, typer.Option("--url", help="API address [default: VERIFIER_API_URL]")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON for programs")]


def _fail(message: str) -> NoReturn:
    errors.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def friendly(command: F) -> F:
    """Turn the project's errors into one line on stderr and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except VerifierError as error:
            _fail(str(error))

    return wrapper  # type: ignore[return-value]


def load_settings() -> Settings:
    """Settings from the environment; a bad variable is a one-line error."""
    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        name = "VERIFIER_" + str(first["loc"][0]).upper() if first["loc"] else "VERIFIER_*"
        raise CliError(f"invalid configuration {name}: {first['msg']}") from None


def _client(url: str | None) -> ApiClient:
    settings = load_settings()
    return ApiClient(url or settings.api_url, api_key=settings.api_key or None)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


@friendly
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Run the HTTP API server (API keys: see verifier/api/auth.py)."""
    import uvicorn

    from verifier.api import create_app
    from verifier.api.auth import keys_required

    settings = load_settings()
    try:
        required = keys_required(settings, host)
    except ValueError as error:
        raise CliError(str(error)) from None
    if required:
        console.print(f"API keys are required at {host}:{port} (derivcheck keys create NAME)")
    else:
        console.print(
            f"[yellow]API keys are off[/]: anyone who can reach {host}:{port} on this machine "
            "can use this API (local default; set VERIFIER_API_KEYS=required to change it)",
            highlight=False,
        )
    app = create_app(settings, keys_required=required)
    # Forwarded headers are believed only from VERIFIER_TRUSTED_PROXIES (verifier/api/auth.py),
    # never by uvicorn on its own.
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=False)


@friendly
def worker(
    queues: Annotated[
        str | None, typer.Option(help="comma-separated queues [default: the cpu queue]")
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            min=1,
            help="checks run at once: supervised, one process per check; with --no-supervise, "
            "threads of one process",
        ),
    ] = 1,
    loglevel: Annotated[str, typer.Option(help="Celery log level")] = "INFO",
    supervise: Annotated[
        bool,
        typer.Option(
            "--supervise/--no-supervise",
            help="run each slot in a child process and start it again whenever it exits "
            "unexpectedly (broker or disk errors, a check past its hard time limit)",
        ),
    ] = True,
    hostname: Annotated[
        str | None, typer.Option(hidden=True, help="Celery node name (one per slot)")
    ] = None,
) -> None:
    """Run a Celery worker that runs checks (never forks: see workers/app.py)."""
    settings = load_settings()
    names = [name.strip() for name in (queues or settings.cpu_queue).split(",") if name.strip()]
    if supervise:
        _supervise_worker(names, concurrency, loglevel)
        return
    from workers.app import create_celery, limit_memory, worker_arguments

    limit_memory(settings)
    app = create_celery(settings)
    try:
        app.worker_main(
            worker_arguments(
                settings,
                queues=names,
                concurrency=concurrency,
                loglevel=loglevel,
                hostname=hostname,
            )
        )
    finally:
        app.dispose()


def _supervise_worker(queues: list[str], concurrency: int, loglevel: str) -> NoReturn:
    """Run ``concurrency`` slots of ``worker --no-supervise``, one check at a time each, under
    supervisors until SIGTERM or SIGINT; exit with the slots' last status."""
    import logging
    import signal

    from verifier.cli.processes import Slots, service_command

    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s: %(levelname)s/supervisor] %(message)s"
    )
    pid = os.getpid()
    commands = [
        service_command(
            "worker",
            "--no-supervise",
            "--queues",
            ",".join(queues),
            "--concurrency",
            "1",
            "--loglevel",
            loglevel,
            "--hostname",
            f"slot{slot}-{pid}@%h",
        )
        for slot in range(1, concurrency + 1)
    ]
    slots = Slots("worker", commands)
    # Ctrl-C reaches the workers too (one process group); SIGTERM asks them for a warm stop.
    signal.signal(signal.SIGTERM, slots.stop)
    signal.signal(signal.SIGINT, slots.stop)
    raise typer.Exit(slots.run())


db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)


@db_app.command("upgrade")
@friendly
def db_upgrade(
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
) -> None:
    """Create or update the schema through the Alembic migrations."""
    from verifier import migrate

    settings = load_settings()
    try:
        migrate.upgrade(settings.database_url, revision)
    except Exception as error:  # alembic and drivers raise many types; show one line
        if isinstance(error, VerifierError):
            raise
        raise CliError(f"migration failed: {type(error).__name__}: {error}") from None
    current = migrate.current(settings.database_url)
    console.print(f"database {_masked(settings.database_url)} is at revision {current}")


def _masked(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@friendly
def submit(
    file: Annotated[Path, typer.Argument(help="JSON lines of checks, or an AI Feynman CSV")],
    url: UrlOption = None,
    file_format: Annotated[str, typer.Option("--format", help="auto, jsonl or csv")] = "auto",
    samples: Annotated[int, typer.Option(min=1, help="points drawn per CSV equation")] = 10,
    dtype: Annotated[str | None, typer.Option(help="dtype for every check")] = None,
    seed: Annotated[int, typer.Option(help="sampling seed for CSV equations")] = 0,
    label: Annotated[str | None, typer.Option(help="a label for the job")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="wait, with a progress bar")] = False,
    timeout: Annotated[float, typer.Option(help="seconds --wait waits")] = DEFAULT_WAIT_TIMEOUT_S,
    strict: Annotated[
        bool, typer.Option("--strict", help=f"For every check: {STRICT_HELP}")
    ] = False,
    fail_on: Annotated[
        str | None, typer.Option("--fail-on", help=f"For every check: {FAIL_ON_HELP}")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a file of checks as one job; with --wait, show progress then a summary."""
    from verifier.cli.inputs import read_checks
    from verifier.cli.render import print_job_summary, wait_for_job
    from verifier.cli.style import parse_fail_on

    failing = parse_fail_on(fail_on)
    checks = read_checks(file, file_format=file_format, samples=samples, dtype=dtype, seed=seed)
    if strict:
        checks = [{**check, "strict": True} for check in checks]
    if failing is not None:
        checks = [{**check, "fail_on": failing} for check in checks]
    with _client(url) as client:
        accepted = client.submit({"checks": checks, "label": label or file.name})
        job_id = str(accepted["id"])
        if not wait:
            if as_json:
                _print_json(accepted)
            else:
                console.print(f"job {job_id} queued ({len(checks)} checks)")
                console.print(f"follow it with: derivcheck status {job_id}")
            return
        target = errors if as_json else console
        job = wait_for_job(client, job_id, target, poll_interval_s=0.5, timeout_s=timeout)
        report = client.report(job_id, entries="all" if as_json else "none")
    if as_json:
        _print_json(report)
    else:
        print_job_summary(console, job, report)
    _exit_for(job)


def _exit_for(job: dict[str, Any]) -> None:
    """Exit 2 when a check could not run, 1 when the job did not pass its checks' fail-on."""
    if job.get("verdict") == Verdict.ERROR:  # the job's status is then "error" too
        raise typer.Exit(EXIT_BAD_INPUT)
    if job.get("passed") is False:
        raise typer.Exit(EXIT_FAILING)


@friendly
def status(
    job: Annotated[str, typer.Argument(help="job id")],
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a job's status, verdict and progress; once checks are done, their summary."""
    from verifier.cli.render import job_table, print_job_summary

    with _client(url) as client:
        state = client.job(job)
        report = None if as_json or not state["progress"]["done"] else client.report(job)
    if as_json:
        _print_json(state)
        return
    console.print(job_table(state))
    if report is not None:
        print_job_summary(console, state, report)


@friendly
def reports(
    url: UrlOption = None,
    verdict: Annotated[str | None, typer.Option(help=VERDICT_HELP)] = None,
    expression: Annotated[str | None, typer.Option(help="substring of the expression")] = None,
    function: Annotated[str | None, typer.Option(help="a function used, e.g. sinc")] = None,
    dtype: Annotated[str | None, typer.Option(help="float64, float32, ...")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda")] = None,
    job: Annotated[str | None, typer.Option(help="job id")] = None,
    since: Annotated[datetime | None, typer.Option(help="written at or after")] = None,
    until: Annotated[datetime | None, typer.Option(help="written before")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="reports per page")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page")] = None,
    as_json: JsonOption = False,
) -> None:
    """List stored reports, newest first, with filters."""
    from verifier.cli.render import reports_blamed_table, reports_table

    params = {
        "verdict": verdict,
        "expression": expression,
        "function": function,
        "dtype": dtype,
        "device": device,
        "job": job,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "limit": limit,
        "cursor": cursor,
    }
    with _client(url) as client:
        page = client.reports(params)
    if as_json:
        _print_json(page)
        return
    console.print(reports_table(page))
    blamed = reports_blamed_table(page)
    if blamed is not None:
        console.print(blamed)
    if page["next_cursor"]:
        console.print(f"more: derivcheck reports ... --cursor {page['next_cursor']}")


@friendly
def stats(
    url: UrlOption = None,
    by: Annotated[
        str | None, typer.Option("--by", help="function, dtype, device or verdict")
    ] = None,
    verdict: Annotated[str | None, typer.Option(help=f"only this verdict: {VERDICT_HELP}")] = None,
    dtype: Annotated[str | None, typer.Option(help="only this dtype")] = None,
    device: Annotated[str | None, typer.Option(help="only this device")] = None,
    function: Annotated[str | None, typer.Option(help="only checks calling it")] = None,
    job: Annotated[str | None, typer.Option(help="only this job")] = None,
    as_json: JsonOption = False,
) -> None:
    """Count reports by verdict, grouped by function, dtype or device."""
    from verifier.cli.render import stats_table

    params = {
        "group_by": by,
        "verdict": verdict,
        "dtype": dtype,
        "device": device,
        "function": function,
        "job": job,
    }
    with _client(url) as client:
        counts = client.stats(params)
    if as_json:
        _print_json(counts)
    else:
        console.print(stats_table(counts))


@friendly
def demo(
    port: Annotated[int | None, typer.Option(help="API port [default: a free one]")] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the suite")] = 900.0,
) -> None:
    """Run the whole service locally on embedded defaults with a built-in suite, then stop."""
    from verifier.cli.demo import run_demo

    try:
        run_demo(load_settings(), console, port=port, timeout_s=timeout)
    except KeyboardInterrupt:
        errors.print("interrupted; stopped the worker and the API")
        raise typer.Exit(130) from None


def register(app: typer.Typer) -> None:
    """Add the service commands to ``app``."""
    app.command("serve")(serve)
    app.command("worker")(worker)
    from verifier.cli.reconcile import reconcile

    app.command("reconcile")(reconcile)
    app.add_typer(db_app, name="db")
    from verifier.cli.keys import keys_app

    app.add_typer(keys_app, name="keys")
    app.command("submit")(submit)
    app.command("status")(status)
    app.command("reports")(reports)
    app.command("stats")(stats)
    app.command("demo")(demo)


def main() -> None:
    """Run the service commands alone (``python -m verifier.cli.service``)."""
    app = typer.Typer(no_args_is_help=True, add_completion=False)
    register(app)
    app()


if __name__ == "__main__":
    main()
