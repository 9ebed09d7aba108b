"""Service cost and throughput: the service's CPU per check beside the bare machinery's per
task, W2 (the AI Feynman job), W3 (many small checks) and POST /jobs under an offered rate,
each against a baseline measured in the same run. Prints the tables (and writes Markdown).

    .venv/bin/python benchmarks/service.py [--workers 2] [--api-processes 2]
        [--feynman-points 100] [--feynman-equations 0] [--small-checks 1000]
        [--post-rate 100] [--seconds 60] [--markdown service.md]

Everything runs on loopback like benchmarks/reliability.py: a throwaway PostgreSQL database,
Redis db 14 (emptied first), the real ``derivcheck serve`` (``--api-processes`` processes) and
``--workers`` real ``derivcheck worker`` processes. Rows:

- CPU per check, summed over every process (benchmarks/process_cpu.py: the API's, the
  workers' with their symbolic processes, PostgreSQL's backends of the run's database, the
  Redis server): ``--small-checks`` one-check jobs, and one job of that many checks, through
  the service; the same checks inline in this process (its own CPU and its symbolic
  process's); and the bare machinery (benchmarks/bare_machinery.py: an empty Celery task that
  inserts one PostgreSQL row, sent by a FastAPI endpoint that inserts one row, on the same
  Redis and PostgreSQL, with as many API and worker processes), as that many one-task
  requests and as one request of that many tasks. Target: the service's CPU per check, less
  the check's own inline CPU, <= 1.5 x the bare machinery's per task, for both.
- W3: the small checks inline (one process), as one job and as one-check jobs (submitted by
  10 threads), each timed from the first POST to the database saying the last job finished.
  Targets: one job >= 0.9 x the inline rate, one-check jobs >= 0.6 x.
- W2: the AI Feynman equations (../shared/corpora/feynman) x ``--feynman-points`` sampled
  points, inline in one process, then as one job. Target: service / inline <= 0.6.
- POST /jobs: one-check jobs offered at ``--post-rate`` per second for ``--seconds`` (open
  loop: each request leaves at its scheduled time whatever the earlier ones did, and its
  latency counts from then), with the rate limit off and 20 keys in turn. Target: p99 < 50 ms
  and no answer other than 202.

Redis is the machine's own and may serve other clients meanwhile; its CPU counts in full.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bare_machinery  # noqa: E402  (sibling scripts, not a package)
from process_cpu import (  # noqa: E402
    CpuMeter,
    Finder,
    postgres_backends,
    redis_server,
    this_process_tree,
    tree,
)
from reliability import (  # noqa: E402
    REDIS_URL,
    STARTUP_TIMEOUT_S,
    _empty_redis,
    make_keys,
    postgres_database,
    running_fleet,
)
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from verifier.cli.inputs import read_checks  # noqa: E402
from verifier.cli.processes import ChildProcess, free_port, wait_until_healthy  # noqa: E402
from verifier.store.engine import make_engine  # noqa: E402
from verifier.store.models import Job, JobStatus  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FEYNMAN_CSV = ROOT.parent / "shared" / "corpora" / "feynman" / "FeynmanEquations.csv"
SMALL = ["x**2 + 2*x", "3*x**2 + 2*x*y + y**2", "sin(x)*exp(y)", "log(1 + x**2)*y"]
POLL_S = 0.1
SERVICE_ENV = {
    # The service's own limits and delivery windows (the defaults where the reliability
    # run's are tight), not those of the reliability run's hostile inputs.
    "VERIFIER_MAX_CHECKS_PER_JOB": "10000",
    "VERIFIER_MAX_POINTS_PER_CHECK": "10000",
    "VERIFIER_MAX_BODY_BYTES": "20000000",
    "VERIFIER_RATE_LIMIT_PER_MINUTE": "0",
    "VERIFIER_CHECK_TIME_LIMIT_S": "120",
    "VERIFIER_SYMBOLIC_TIMEOUT_S": "30",
    "VERIFIER_WORKER_SOFT_SHUTDOWN_S": "130",
    "VERIFIER_BROKER_VISIBILITY_TIMEOUT_S": "140",
    "VERIFIER_CLAIM_LEASE_S": "60",
    "VERIFIER_REQUEUE_INTERVAL_S": "60",
    "VERIFIER_REQUEUE_AFTER_S": "900",
    "VERIFIER_MAX_ATTEMPTS": "3",
}
JOB_TIMEOUT_S = 1800.0
SUBMITTING_THREADS = 10
WARM_UP_CHECKS = 8
POST_KEYS = 20
POST_THREADS = 48
POST_TIMEOUT_S = 10.0
CPU_TARGET = 1.5
ONE_JOB_TARGET = 0.9
ONE_CHECK_JOBS_TARGET = 0.6
W2_TARGET = 0.6
P99_TARGET_MS = 50.0
GROUPS = ("API", "workers", "PostgreSQL", "Redis")


def small_checks(count: int, offset: int = 0) -> list[dict[str, Any]]:
    """``count`` one-point checks of cheap expressions at distinct points."""
    checks = []
    for n in range(offset, offset + count):
        expression = SMALL[n % len(SMALL)]
        point = {"x": round(0.1 + (n % 97) / 50, 3), "y": round(0.2 + (n % 89) / 60, 3)}
        names = [name for name in ("x", "y") if name in expression]
        checks.append({"expression": expression, "points": [{k: point[k] for k in names}]})
    return checks


@dataclass
class Measured:
    """Seconds of wall time and CPU seconds by group for ``count`` checks (or tasks)."""

    count: int
    seconds: float
    cpu: dict[str, float] = field(default_factory=dict)

    def per_check_ms(self, group: str | None = None) -> float:
        """CPU ms per check of one group, or of all together."""
        total = self.cpu[group] if group is not None else sum(self.cpu.values())
        return 1000 * total / self.count

    def split(self) -> str:
        """Each group's CPU ms per check."""
        return ", ".join(
            f"{name} {self.per_check_ms(name):.2f}" for name in GROUPS if name in self.cpu
        )


def inline(checks: list[dict[str, Any]]) -> Measured:
    """Run ``checks`` one after another in this process (warm), timing them and counting this
    process's CPU and its symbolic process's."""
    from verifier import check

    check("x**2", at={"x": 1.0})  # load torch and start the sandbox before timing
    with CpuMeter({"inline": this_process_tree()}) as meter:
        started = time.perf_counter()
        for spec in checks:
            options = {k: v for k, v in spec.items() if k not in ("expression", "points")}
            check(spec["expression"], spec.get("points"), **options)
        seconds = time.perf_counter() - started
    return Measured(len(checks), seconds, meter.seconds())


def wait_for_jobs(database_url: str, job_ids: list[str]) -> None:
    """Return once every job of ``job_ids`` is done, asking the database (polling each job
    over HTTP would load the API under test with thousands of requests)."""
    ids = [uuid.UUID(job) for job in job_ids]
    engine = make_engine(database_url)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    try:
        while True:
            finished = 0
            with engine.connect() as connection:
                for start in range(0, len(ids), 1000):
                    finished += (
                        connection.scalar(
                            select(func.count())
                            .select_from(Job)
                            .where(
                                Job.id.in_(ids[start : start + 1000]),
                                Job.status.in_([JobStatus.DONE, JobStatus.ERROR]),
                            )
                        )
                        or 0
                    )
            if finished == len(ids):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(ids) - finished} jobs did not finish")
            time.sleep(POLL_S)
    finally:
        engine.dispose()


def submitted(url: str, path: str, keys: list[str], bodies: list[Any]) -> list[str]:
    """POST each body (by SUBMITTING_THREADS threads, each with its own key of ``keys`` if
    any: a key's submissions are parsed one at a time), each answered 202; the ids."""
    local = threading.local()
    turn = iter(range(SUBMITTING_THREADS))
    lock = threading.Lock()

    def submit(body: Any) -> str:
        if not hasattr(local, "http"):
            with lock:
                number = next(turn)
            headers = {"Authorization": f"Bearer {keys[number % len(keys)]}"} if keys else {}
            local.http = httpx.Client(base_url=url, headers=headers, timeout=60)
        answer = local.http.post(path, json=body)
        if answer.status_code != 202:
            raise RuntimeError(f"POST {path} answered {answer.status_code}: {answer.text[:500]}")
        return str(answer.json()["id"])

    with ThreadPoolExecutor(SUBMITTING_THREADS) as pool:
        return list(pool.map(submit, bodies))


def service_run(
    url: str,
    database_url: str,
    keys: list[str],
    jobs: list[list[dict[str, Any]]],
    groups: dict[str, Finder],
) -> Measured:
    """``jobs`` through the service, from the first POST to the end of the last, with the CPU
    of ``groups``."""
    with CpuMeter(groups) as meter:
        started = time.perf_counter()
        job_ids = submitted(url, "/jobs", keys, [{"checks": checks} for checks in jobs])
        wait_for_jobs(database_url, job_ids)
        seconds = time.perf_counter() - started
    return Measured(sum(len(checks) for checks in jobs), seconds, meter.seconds())


def bare_results(database_url: str) -> int:
    """Rows the bare tasks inserted so far."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(
                connection.scalar(select(func.count()).select_from(bare_machinery.bare_results))
                or 0
            )
    finally:
        engine.dispose()


def bare_run(url: str, database_url: str, sizes: list[int], groups: dict[str, Finder]) -> Measured:
    """Requests of ``sizes`` tasks each to the bare machinery, to the last task's row."""
    before = bare_results(database_url)
    with CpuMeter(groups) as meter:
        started = time.perf_counter()
        submitted(url, "/bare", [], [{"tasks": size} for size in sizes])
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while bare_results(database_url) < before + sum(sizes):
            if time.monotonic() > deadline:
                raise TimeoutError("the bare tasks did not finish")
            time.sleep(POLL_S)
        seconds = time.perf_counter() - started
    return Measured(sum(sizes), seconds, meter.seconds())


def fleet_groups(database_url: str, api: int, workers: list[int]) -> dict[str, Finder]:
    """The CPU groups of a fleet: its API's process tree, its workers', PostgreSQL's backends
    of its database, the Redis server."""
    database = make_url(database_url).database or ""
    return {
        "API": tree(api),
        "workers": tree(*workers),
        "PostgreSQL": postgres_backends(database),
        "Redis": redis_server(),
    }


@contextmanager
def bare_fleet(
    workdir: Path, database_url: str, workers: int, api_processes: int
) -> Iterator[tuple[str, dict[str, Finder]]]:
    """The bare machinery's API (``api_processes`` uvicorn processes) and ``workers`` solo
    Celery workers; its URL and CPU groups."""
    bare_machinery.create_tables(database_url)
    port = free_port()
    env = {
        **os.environ,
        "BARE_DATABASE_URL": database_url,
        "BARE_BROKER_URL": REDIS_URL,
        "PYTHONPATH": str(Path(__file__).resolve().parent),
        "PYTHONUNBUFFERED": "1",
    }
    python = sys.executable
    api = ChildProcess(
        "bare API",
        [
            python,
            "-m",
            "uvicorn",
            "bare_machinery:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(api_processes),
            "--log-level",
            "warning",
        ],
        env=env,
        log_path=workdir / "bare-api.log",
    )
    children = [api]
    for n in range(workers):
        children.append(
            ChildProcess(
                f"bare worker {n}",
                [
                    python,
                    "-m",
                    "celery",
                    "--app",
                    "bare_machinery:celery_app",
                    "worker",
                    "--pool=solo",
                    "--concurrency=1",
                    f"--queues={bare_machinery.QUEUE}",
                    "--loglevel=WARNING",
                    "--without-gossip",
                    "--without-mingle",
                    f"--hostname=bare{n}@%h",
                ],
                env=env,
                log_path=workdir / f"bare-worker-{n}.log",
            )
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, children, STARTUP_TIMEOUT_S)
        yield (
            url,
            fleet_groups(
                database_url, api.process.pid, [child.process.pid for child in children[1:]]
            ),
        )
    finally:
        for child in children:
            child.stop(timeout_s=10)


@dataclass
class OpenLoop:
    """What an open-loop run of POST /jobs saw."""

    offered: int = 0
    latencies_s: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def errors(self) -> int:
        """Answers other than 202, and requests without an answer."""
        return self.transport_errors + sum(
            count for status, count in self.statuses.items() if status != 202
        )

    def percentile_ms(self, fraction: float) -> float:
        """The latency below which ``fraction`` of the answered requests fell, in ms."""
        ordered = sorted(self.latencies_s)
        if not ordered:
            return float("nan")
        return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def open_loop(url: str, keys: list[str], rate: float, seconds: float) -> OpenLoop:
    """One-check jobs offered at ``rate`` per second for ``seconds``, each sent at its time."""
    result = OpenLoop()
    count = int(rate * seconds)
    bodies = small_checks(count, offset=100_000)
    local = threading.local()
    start = time.monotonic() + 1.0

    def post(n: int) -> None:
        if not hasattr(local, "clients"):
            local.clients = {}
        key = keys[n % len(keys)]
        http = local.clients.get(key)
        if http is None:
            headers = {"Authorization": f"Bearer {key}"}
            http = local.clients[key] = httpx.Client(
                base_url=url, headers=headers, timeout=POST_TIMEOUT_S
            )
        due = start + n / rate
        time.sleep(max(0.0, due - time.monotonic()))
        try:
            answer = http.post("/jobs", json={"checks": [bodies[n]]})
        except httpx.HTTPError:
            with result.lock:
                result.transport_errors += 1
            return
        latency = time.monotonic() - due
        with result.lock:
            result.latencies_s.append(latency)
            result.statuses[answer.status_code] = result.statuses.get(answer.status_code, 0) + 1

    with ThreadPoolExecutor(POST_THREADS) as pool:
        list(pool.map(post, range(count)))
    result.offered = count
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--api-processes", type=int, default=2)
    parser.add_argument("--feynman-points", type=int, default=100)
    parser.add_argument("--feynman-equations", type=int, default=0, help="0: all")
    parser.add_argument("--small-checks", type=int, default=1000)
    parser.add_argument("--post-rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=60.0)
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
    w2_inline = inline(feynman)
    w3_inline = inline(small)

    _empty_redis(REDIS_URL)
    with tempfile.TemporaryDirectory() as tmp, postgres_database() as database_url:
        with bare_fleet(Path(tmp), database_url, args.workers, args.api_processes) as (url, groups):
            console.print("bare machinery: warming up ...")
            bare_run(url, database_url, [1] * WARM_UP_CHECKS, groups)
            console.print(f"bare machinery: {len(small)} one-task requests ...")
            bare_one = bare_run(url, database_url, [1] * len(small), groups)
            console.print(f"bare machinery: one request of {len(small)} tasks ...")
            bare_big = bare_run(url, database_url, [len(small)], groups)
        _empty_redis(REDIS_URL)
        with running_fleet(
            Path(tmp),
            database_url,
            REDIS_URL,
            workers=args.workers,
            overrides=SERVICE_ENV,
            api_processes=args.api_processes,
        ) as fleet:
            groups = fleet_groups(
                database_url,
                fleet.api.process.pid,
                [worker.process.pid for worker in fleet.workers],
            )
            keys = make_keys(database_url, SUBMITTING_THREADS)
            console.print("service: warming up ...")
            warm = small_checks(WARM_UP_CHECKS, offset=50_000)
            service_run(fleet.url, database_url, keys, [[spec] for spec in warm], groups)
            console.print(f"service: {len(small)} one-check jobs ...")
            one_check_jobs = service_run(
                fleet.url, database_url, keys, [[spec] for spec in small], groups
            )
            console.print(f"service: one job of {len(small)} checks ...")
            one_job = service_run(fleet.url, database_url, keys, [small], groups)
            console.print("service: the Feynman job ...")
            w2 = service_run(fleet.url, database_url, keys, [feynman], groups)
            console.print(f"service: POST /jobs at {args.post_rate:g}/s for {args.seconds:g} s ...")
            post_keys = make_keys(database_url, POST_KEYS)
            load = open_loop(fleet.url, post_keys, args.post_rate, args.seconds)

    rows = result_rows(
        args, w3_inline, w2_inline, bare_one, bare_big, one_check_jobs, one_job, w2, load
    )
    title = (
        f"{args.workers} workers, {args.api_processes} API processes, PostgreSQL + Redis, "
        f"{os.cpu_count()} cores"
    )
    table = Table(title=f"service cost and throughput ({title})")
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


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def result_rows(
    args: argparse.Namespace,
    w3_inline: Measured,
    w2_inline: Measured,
    bare_one: Measured,
    bare_big: Measured,
    one_check_jobs: Measured,
    one_job: Measured,
    w2: Measured,
    load: OpenLoop,
) -> list[tuple[str, str, str, str]]:
    """The table's rows: workload, service, baseline, ratio (with its target)."""
    rows: list[tuple[str, str, str, str]] = []
    check_ms = w3_inline.per_check_ms()
    rows.append(
        (
            f"inline: {w3_inline.count} small checks, CPU per check",
            f"{check_ms:.2f} ms",
            f"{w3_inline.count / w3_inline.seconds:.0f} checks/s",
            "",
        )
    )
    for label, service, bare, unit in (
        ("CPU per one-check job", one_check_jobs, bare_one, "one-task request"),
        (f"CPU per check of a {one_job.count}-check job", one_job, bare_big, "task"),
    ):
        own = service.per_check_ms() - check_ms
        ratio = own / bare.per_check_ms()
        rows.append(
            (
                label,
                f"{service.per_check_ms():.2f} ms ({service.split()}); less the check "
                f"inline: {own:.2f} ms",
                f"bare {bare.per_check_ms():.2f} ms per {unit} ({bare.split()})",
                f"{ratio:.2f} (target <= {CPU_TARGET}: {_met(ratio <= CPU_TARGET)})",
            )
        )
    inline_rate = w3_inline.count / w3_inline.seconds
    for label, measured, target in (
        ("one job", one_job, ONE_JOB_TARGET),
        ("one-check jobs", one_check_jobs, ONE_CHECK_JOBS_TARGET),
    ):
        rate = measured.count / measured.seconds
        ratio = rate / inline_rate
        rows.append(
            (
                f"W3: {measured.count} small checks, {label}",
                f"{rate:.0f} checks/s through {args.workers} workers",
                f"inline {inline_rate:.0f} checks/s (one process)",
                f"{ratio:.2f} (target >= {target}: {_met(ratio >= target)})",
            )
        )
    ratio = w2.seconds / w2_inline.seconds
    rows.append(
        (
            f"W2: {w2.count} Feynman equations x {args.feynman_points} points",
            f"{w2.seconds:.1f} s through {args.workers} workers",
            f"inline {w2_inline.seconds:.1f} s",
            f"{ratio:.2f} (target <= {W2_TARGET}: {_met(ratio <= W2_TARGET)})",
        )
    )
    p50 = 1000 * statistics.median(load.latencies_s) if load.latencies_s else float("nan")
    p99 = load.percentile_ms(0.99)
    answered = ", ".join(f"{count} x {status}" for status, count in sorted(load.statuses.items()))
    ok = p99 < P99_TARGET_MS and load.errors == 0
    rows.append(
        (
            f"POST /jobs offered at {args.post_rate:g}/s for {args.seconds:g} s (open loop)",
            f"p50 {p50:.0f} ms, p99 {p99:.0f} ms",
            f"{load.offered} offered: {answered}; {load.errors} errors",
            f"p99 < {P99_TARGET_MS:g} ms, 0 errors: {_met(ok)}",
        )
    )
    return rows


if __name__ == "__main__":
    main()
