"""Service throughput: W2 (the AI Feynman job) and W3 (many small checks, POST latency), each
against the inline core measured in the same run. Prints the tables (and writes Markdown).

    .venv/bin/python benchmarks/service.py [--workers 2] [--api-processes 1]
        [--feynman-points 100] [--small-checks 1000] [--clients 50] [--seconds 30]
        [--markdown throughput.md]

Everything runs on loopback like benchmarks/reliability.py: a throwaway PostgreSQL database,
Redis db 14 (emptied first), the real ``derivcheck serve`` and ``--workers`` real
``derivcheck worker`` processes. Rows:

- W2: the 100 AI Feynman equations (../shared/corpora/feynman) x ``--feynman-points`` sampled
  points, inline in one process, then as one job through the service, timed from the POST to
  the job's end. Target: service <= 1.25 x (inline / workers).
- W3: ``--small-checks`` one-point checks inline, then as one job of that many checks, then as
  that many one-check jobs (submitted by 10 threads), each timed to the last report. Target:
  service >= 1.6 x the inline rate with 2 workers.
- POST /jobs latency: ``--clients`` clients, each with its own key (rate limit off for the
  run: VERIFIER_RATE_LIMIT_PER_MINUTE=0), submitting one-check jobs for ``--seconds``. Target:
  p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reliability import (  # noqa: E402  (a sibling script, not a package)
    REDIS_URL,
    _empty_redis,
    make_keys,
    postgres_database,
    run_load,
    running_fleet,
)
from sqlalchemy import func, select  # noqa: E402

from verifier.cli.inputs import read_checks  # noqa: E402
from verifier.store.engine import make_engine  # noqa: E402
from verifier.store.models import Job, JobStatus  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FEYNMAN_CSV = ROOT.parent / "shared" / "corpora" / "feynman" / "FeynmanEquations.csv"
SMALL = ["x**2 + 2*x", "3*x**2 + 2*x*y + y**2", "sin(x)*exp(y)", "log(1 + x**2)*y"]
POLL_S = 0.2
SERVICE_ENV = {
    # The service's own limits, not the tight ones of the reliability run's hostile inputs.
    "VERIFIER_MAX_CHECKS_PER_JOB": "1000",
    "VERIFIER_MAX_POINTS_PER_CHECK": "10000",
    "VERIFIER_MAX_BODY_BYTES": "20000000",
    "VERIFIER_RATE_LIMIT_PER_MINUTE": "0",
    "VERIFIER_CHECK_TIME_LIMIT_S": "120",
    "VERIFIER_SYMBOLIC_TIMEOUT_S": "30",
    "VERIFIER_WORKER_SOFT_SHUTDOWN_S": "130",
    "VERIFIER_BROKER_VISIBILITY_TIMEOUT_S": "140",
}
JOB_TIMEOUT_S = 1800.0


def small_checks(count: int) -> list[dict[str, Any]]:
    """``count`` one-point checks of cheap expressions at distinct points."""
    checks = []
    for n in range(count):
        expression = SMALL[n % len(SMALL)]
        point = {"x": round(0.1 + (n % 97) / 50, 3), "y": round(0.2 + (n % 89) / 60, 3)}
        names = [name for name in ("x", "y") if name in expression]
        checks.append({"expression": expression, "points": [{k: point[k] for k in names}]})
    return checks


def inline_seconds(checks: list[dict[str, Any]]) -> float:
    """Seconds to run ``checks`` one after another in this process (warm)."""
    from verifier import check

    check("x**2", at={"x": 1.0})  # load torch and start the sandbox before timing
    started = time.perf_counter()
    for spec in checks:
        options = {k: v for k, v in spec.items() if k not in ("expression", "points")}
        check(spec["expression"], spec.get("points"), **options)
    return time.perf_counter() - started


def wait_for_jobs(database_url: str, job_ids: list[str]) -> None:
    """Return once every job of ``job_ids`` is done, asking the database (polling each job
    over HTTP would load the API under test with thousands of requests)."""
    ids = [uuid.UUID(job) for job in job_ids]
    engine = make_engine(database_url)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    try:
        while True:
            with engine.connect() as connection:
                finished = connection.scalar(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.id.in_(ids), Job.status.in_([JobStatus.DONE, JobStatus.ERROR]))
                )
            if finished == len(ids):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(ids) - (finished or 0)} jobs did not finish")
            time.sleep(POLL_S)
    finally:
        engine.dispose()


def service_seconds(
    url: str, database_url: str, key: str, jobs: list[list[dict[str, Any]]]
) -> float:
    """Seconds from the first submission to the end of the last of ``jobs``."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        started = time.perf_counter()

        def submit(checks: list[dict[str, Any]]) -> str:
            answer = http.post("/jobs", json={"checks": checks})
            if answer.status_code != 202:
                raise RuntimeError(f"POST /jobs answered {answer.status_code}: {answer.text[:500]}")
            return str(answer.json()["id"])

        with ThreadPoolExecutor(10) as pool:
            job_ids = list(pool.map(submit, jobs))
        wait_for_jobs(database_url, job_ids)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--api-processes", type=int, default=1)
    parser.add_argument("--feynman-points", type=int, default=100)
    parser.add_argument("--feynman-equations", type=int, default=0, help="0: all")
    parser.add_argument("--small-checks", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    console = Console()

    feynman = read_checks(
        FEYNMAN_CSV, file_format="csv", samples=args.feynman_points, dtype=None, seed=0
    )
    if args.feynman_equations:
        feynman = feynman[: args.feynman_equations]
    small = small_checks(args.small_checks)
    console.print(f"inline: {len(feynman)} Feynman checks, {len(small)} small checks ...")
    w2_inline = inline_seconds(feynman)
    w3_inline = inline_seconds(small)

    rows: list[tuple[str, str, str, str]] = []
    _empty_redis(REDIS_URL)
    with tempfile.TemporaryDirectory() as tmp, postgres_database() as database_url:
        with running_fleet(
            Path(tmp),
            database_url,
            REDIS_URL,
            workers=args.workers,
            overrides=SERVICE_ENV,
            api_processes=args.api_processes,
        ) as fleet:
            (key,) = make_keys(database_url, 1)
            console.print("service: the Feynman job ...")
            w2 = service_seconds(fleet.url, database_url, key, [feynman])
            console.print("service: one job of small checks ...")
            w3_one = service_seconds(fleet.url, database_url, key, [small])
            console.print("service: one-check jobs ...")
            w3_many = service_seconds(fleet.url, database_url, key, [[spec] for spec in small])
            console.print(f"service: {args.clients} clients for {args.seconds:g} s ...")
            load = run_load(fleet, clients=args.clients, seconds=args.seconds)
    share = w2_inline / args.workers
    rows.append(
        (
            f"W2: {len(feynman)} Feynman equations x {args.feynman_points} points",
            f"{w2:.1f} s through {args.workers} workers",
            f"inline {w2_inline:.1f} s; / {args.workers} = {share:.1f} s",
            f"{w2 / share:.2f} (target <= 1.25)",
        )
    )
    inline_rate = len(small) / w3_inline
    for label, seconds in (("one job", w3_one), ("one-check jobs", w3_many)):
        rate = len(small) / seconds
        rows.append(
            (
                f"W3: {len(small)} small checks, {label}",
                f"{rate:.0f} checks/s",
                f"inline {inline_rate:.0f} checks/s",
                f"{rate / inline_rate:.2f} (target >= 1.6)",
            )
        )
    posts = sorted(load.latencies_s)
    p50 = 1000 * statistics.median(posts) if posts else float("nan")
    p99 = load.percentile_ms(0.99)
    rows.append(
        (
            f"POST /jobs and polls, {args.clients} clients for {args.seconds:g} s",
            f"p50 {p50:.0f} ms, p99 {p99:.0f} ms",
            f"{load.requests} requests, {load.server_errors} 5xx",
            f"p99 {'<' if p99 < 50 else '>='} 50 ms",
        )
    )
    title = f"{args.workers} workers, {args.api_processes} API processes, PostgreSQL + Redis"
    table = Table(title=f"service throughput ({title})")
    for name in ("workload", "service", "baseline", "ratio"):
        table.add_column(name)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if args.markdown:
        lines = [
            "| workload | service | baseline | ratio |",
            "| --- | --- | --- | --- |",
            *(f"| {' | '.join(row)} |" for row in rows),
        ]
        command = "python benchmarks/service.py " + " ".join(sys.argv[1:])
        args.markdown.write_text(f"`{command}`\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
