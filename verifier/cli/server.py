"""Commands that run the service: ``serve`` (the API), ``worker``, ``db upgrade`` and
``demo`` (everything on embedded defaults, with a built-in suite)."""

from __future__ import annotations

import os
from typing import Annotated, Any, NoReturn

import typer

from verifier.cli.client import CliError
from verifier.cli.toolkit import console, errors, friendly, load_settings
from verifier.errors import VerifierError


@friendly
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            help="API processes on the one port (rate limits are shared through the broker's "
            "Redis; on the embedded broker each process keeps its own)",
        ),
    ] = 1,
) -> None:
    """Run the HTTP API server (API keys: `derivcheck keys create`; README, "API keys")."""
    import logging.config
    import shutil
    import tempfile

    import uvicorn

    from verifier.api import create_app
    from verifier.api.auth import keys_required
    from verifier.delivery.logs import uvicorn_log_config

    settings = load_settings()
    try:
        required = keys_required(settings, host)
    except ValueError as error:
        raise CliError(str(error)) from None
    # With JSON logs, uvicorn writes JSON from its first line on, and so does this notice.
    log_config = uvicorn_log_config(log_level) if settings.log_format == "json" else None
    if log_config is not None:
        logging.config.dictConfig(log_config)
    _announce_keys(required, f"{host}:{port}", as_log=log_config is not None)
    logging_options: dict[str, Any] = {"log_level": log_level}
    if log_config is not None:
        logging_options["log_config"] = log_config
    # Forwarded headers are believed only from VERIFIER_TRUSTED_PROXIES (verifier/api/auth.py),
    # never by uvicorn on its own.
    if processes == 1:
        app = create_app(settings, keys_required=required)
        uvicorn.run(app, host=host, port=port, proxy_headers=False, **logging_options)
        return
    # Each process builds its app from the environment; the keys decision made here goes
    # with it, so every process answers the same. They count their metrics into one fresh
    # folder, so that a scrape reaching any of them gets the sum (verifier/api/metrics.py).
    os.environ["VERIFIER_API_KEYS"] = "required" if required else "off"
    from verifier.api.metrics import MULTIPROCESS_DIR_VARIABLE

    folder = tempfile.mkdtemp(prefix=API_METRICS_DIR_PREFIX)
    os.environ[MULTIPROCESS_DIR_VARIABLE] = folder
    try:
        uvicorn.run(
            "verifier.api.app:app_from_environment",
            factory=True,
            workers=processes,
            host=host,
            port=port,
            proxy_headers=False,
            **logging_options,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


API_METRICS_DIR_PREFIX = "derivcheck-api-metrics-"
"""The name of the temporary folder where ``serve --processes N`` keeps its metrics starts
with this."""


def _announce_keys(required: bool, address: str, *, as_log: bool) -> None:
    """Say whether the API at ``address`` requires keys: as a log line with JSON logs, else
    as a line for a person at a terminal."""
    if required:
        text = f"API keys are required at {address} (derivcheck keys create NAME)"
    else:
        text = (
            f"API keys are off: anyone who can reach {address} on this machine can use this "
            "API (local default; set VERIFIER_API_KEYS=required to change it)"
        )
    if as_log:
        import logging

        logging.getLogger("verifier.api").log(logging.INFO if required else logging.WARNING, text)
    elif required:
        console.print(text)
    else:
        console.print(
            text.replace("API keys are off", "[yellow]API keys are off[/]", 1), highlight=False
        )


@friendly
def worker(
    queues: Annotated[
        str | None, typer.Option(help="comma-separated queues [default: the cpu queue]")
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            min=1,
            help="checks run at once: supervised, one process per check (on the gpu queue at "
            "most one per GPU, each slot seeing its own); with --no-supervise, threads of one "
            "process",
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
    """Run a Celery worker that runs checks, one process per slot (docs/admission.md)."""
    settings = load_settings()
    names = [name.strip() for name in (queues or settings.cpu_queue).split(",") if name.strip()]
    if supervise:
        gpus = visible_gpus() if settings.gpu_queue in names else []
        envs = slot_environments(gpus, concurrency)
        _supervise_worker(names, concurrency, loglevel, envs)
        return
    from workers.app import create_celery, limit_memory, lower_priority, worker_arguments

    limit_memory(settings)
    lower_priority(settings)
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


def visible_gpus() -> list[str]:
    """The CUDA devices this machine shows a worker: ``CUDA_VISIBLE_DEVICES`` when set, else
    as many as torch counts, asked in a child process so that this one (which starts the
    slots) never initialises CUDA."""
    shown = os.environ.get("CUDA_VISIBLE_DEVICES")
    if shown is not None:
        return [name.strip() for name in shown.split(",") if name.strip()]
    from verifier.cli.processes import ask_torch

    counted = ask_torch("torch.cuda.device_count()")
    return [str(index) for index in range(int(counted) if counted.isdigit() else 0)]


def slot_environments(gpus: list[str], concurrency: int) -> list[dict[str, str] | None]:
    """Each slot's environment: on a machine with GPUs serving the ``gpu`` queue, slot ``i``
    sees GPU ``i`` alone (one check at a time per GPU), and more slots than GPUs is an error;
    otherwise every slot inherits this environment."""
    if not gpus:
        return [None] * concurrency
    if concurrency > len(gpus):
        raise CliError(
            f"--concurrency {concurrency} on the gpu queue, but this machine shows "
            f"{len(gpus)} GPU(s) ({', '.join(gpus)}): a GPU runs one check at a time"
        )
    return [{**os.environ, "CUDA_VISIBLE_DEVICES": gpu} for gpu in gpus[:concurrency]]


def _supervise_worker(
    queues: list[str], concurrency: int, loglevel: str, envs: list[dict[str, str] | None]
) -> NoReturn:
    """Run ``concurrency`` slots of ``worker --no-supervise``, one check at a time each, under
    supervisors until SIGTERM or SIGINT (slot ``i`` in ``envs[i]``); exit with the slots'
    last status."""
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
    slots = Slots("worker", commands, envs=envs)
    # Ctrl-C reaches the workers too (one process group); SIGTERM asks them for a warm stop.
    signal.signal(signal.SIGTERM, slots.stop)
    signal.signal(signal.SIGINT, slots.stop)
    raise typer.Exit(slots.run())


db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)


@db_app.command("upgrade", short_help="Create or update the schema.")
@friendly
def db_upgrade(
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
) -> None:
    """Create or update the schema through the Alembic migrations."""
    from verifier.store import migrate

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
