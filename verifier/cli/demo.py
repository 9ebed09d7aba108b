"""``derivcheck demo``: the whole service on embedded defaults, started, used and stopped.

Runs the migrations, starts the API server and one worker as child processes (the worker
under ``derivcheck worker``'s supervisor, which starts it again if it exits), submits the
built-in suite over HTTP, shows progress and a summary, says where the reports are and how to
query them, then stops what it started, also on Ctrl-C.
"""

from __future__ import annotations

import os

from rich.console import Console

from verifier.cli.client import ApiClient
from verifier.cli.processes import ChildProcess, free_port, service_command, wait_until_healthy
from verifier.cli.render import print_job_summary, wait_for_job
from verifier.config import Settings
from verifier.service.suite import demo_suite
from verifier.store import migrate

STARTUP_TIMEOUT_S = 90.0
POLL_INTERVAL_S = 0.5


def run_demo(settings: Settings, console: Console, *, port: int | None, timeout_s: float) -> None:
    """Run the demo end to end; raises CliError if a part does not come up."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    logs = settings.data_dir / "logs"
    console.print(f"[bold]derivcheck demo[/]: data in {settings.data_dir}")
    migrate.upgrade(settings.database_url)
    console.print(f"  database migrated: {settings.database_url}")
    env = {
        **os.environ,
        "VERIFIER_DATA_DIR": str(settings.data_dir),
        "VERIFIER_DATABASE_URL": settings.database_url,
        "VERIFIER_BROKER_URL": settings.broker_url,
        "VERIFIER_API_URL": url,
        "PYTHONUNBUFFERED": "1",
    }
    children: list[ChildProcess] = []
    try:
        children.append(
            ChildProcess(
                "API",
                service_command("serve", "--host", "127.0.0.1", "--port", str(port)),
                env=env,
                log_path=logs / "api.log",
            )
        )
        children.append(
            ChildProcess(
                "worker",
                service_command("worker", "--queues", settings.cpu_queue, "--concurrency", "1"),
                env=env,
                log_path=logs / "worker.log",
            )
        )
        console.print(
            f"  started the API at {url} and one worker, restarted if it exits (logs in {logs})"
        )
        wait_until_healthy(url, children, STARTUP_TIMEOUT_S)
        checks = demo_suite()
        with ApiClient(url) as client:
            accepted = client.submit({"checks": checks, "label": "derivcheck demo"})
            job_id = str(accepted["id"])
            console.print(f"  submitted {len(checks)} checks as job {job_id}")
            job = wait_for_job(
                client, job_id, console, poll_interval_s=POLL_INTERVAL_S, timeout_s=timeout_s
            )
            report = client.report(job_id)
        print_job_summary(console, job, report)
        _print_where(console, settings, job_id)
    finally:
        if children:
            console.print("stopping the worker and the API ...")
        for child in reversed(children):
            child.stop()


def _print_where(console: Console, settings: Settings, job_id: str) -> None:
    database = settings.database_url
    console.print(f"\n[bold]Reports[/] are stored in {database}")
    console.print("Query them through the API (start it again first):")
    console.print("  derivcheck serve &")
    console.print(f"  derivcheck status {job_id}")
    console.print("  derivcheck reports --verdict fail")
    console.print("  derivcheck stats --by function")
    console.print("  curl -s 'http://127.0.0.1:8000/reports?verdict=fail'")
    if database.startswith("sqlite:///"):
        path = database.removeprefix("sqlite:///")
        console.print("or read the SQLite file directly:")
        console.print(f"  sqlite3 {path} 'select verdict, count(*) from reports group by verdict'")
