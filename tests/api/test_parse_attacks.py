"""The input attacks of docs/hostile-load.md over real HTTP: no literal holds the API, and what
the worker would refuse is a 422 naming the check, the field and the position, never a 202 that
ends as error.

Sources of the expected values: [hostile-load] docs/hostile-load.md's rows (``1e-30000000*x``
held every request 31 s, ``1e-9999999999*x`` more than 110 s; the checks "accepted, then
refused"; hex literals and division past the limits) and what it states now (``/health``
under 1 s while the giant literal is refused); [limits] the named constants of
``verifier/core/expression/parse.py`` and ``verifier/core/floats/points.py``; [ieee] IEEE 754
binary32's largest finite number, about 3.4028e38; [tolerance] ``make_tolerance`` refuses 1e300 or
more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from slowness import SLOWNESS
from sqlalchemy import func, select

from verifier.api import create_app
from verifier.config import Settings
from verifier.core.expression.syntax import MAX_EXPONENT_ABS
from verifier.core.floats.points import MAX_DECIMAL_EXPONENT, SERVICE_POINTS_PER_CHECK
from verifier.store.engine import make_engine, make_session_factory
from verifier.store.models import Job

GIANT_LITERALS = ("1e-30000000*x", "1e-9999999999*x")
HEALTH_BUDGET_S = 1.0 * SLOWNESS
"""[hostile-load] "/health under 1 s" while giant literals are refused: a latency under load (the
attack, beside whatever else runs on the machine), so it scales with the slowness factor."""
ATTACK_S = 2.0  # how long the attack lasts: the size of the test, not a wait
ATTACKERS_PER_LITERAL = 2


@pytest.fixture
def live_api(
    settings: Settings, fresh_sqlite_url: str, server_thread: Any
) -> Iterator[tuple[str, Any]]:
    """A live API on its own SQLite database and embedded broker, keys and rate limits off
    (the attack is the load here); its URL and a function counting stored jobs. Its parse
    budget and its wait for a free parser process are generous: four attackers share two
    parser processes, whose first SymPy import can take seconds on a loaded machine, and the
    bounds are not what is tested here (test_a_parse_past_its_bound... and
    tests/api/test_parser_admission.py are)."""
    open_settings = settings.model_copy(
        update={
            "database_url": fresh_sqlite_url,
            "api_keys": "off",
            "rate_limit_per_minute": 0,
            "parse_timeout_s": 30.0 * SLOWNESS,
            "parse_wait_s": 30.0 * SLOWNESS,
        }
    )
    engine = make_engine(fresh_sqlite_url)
    sessions = make_session_factory(engine)

    def stored_jobs() -> int:
        with sessions() as session:
            return session.scalar(select(func.count()).select_from(Job)) or 0

    try:
        with server_thread(create_app(open_settings)) as url:
            yield url, stored_jobs
    finally:
        engine.dispose()


def test_health_answers_within_1_s_while_giant_literals_are_refused(
    live_api: tuple[str, Any],
) -> None:
    url, stored_jobs = live_api
    answers: list[httpx.Response] = []
    stop = threading.Event()

    def attack(expression: str) -> None:
        body = {"checks": [{"expression": expression, "points": [{"x": 1}]}]}
        with httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
            while not stop.is_set():
                answers.append(http.post("/jobs", json=body))

    attackers = [
        threading.Thread(target=attack, args=(expression,))
        for expression in GIANT_LITERALS
        for _ in range(ATTACKERS_PER_LITERAL)
    ]
    latencies: list[float] = []
    try:
        for attacker in attackers:
            attacker.start()
        with httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
            deadline = time.monotonic() + ATTACK_S
            while time.monotonic() < deadline:
                started = time.monotonic()
                assert http.get("/health").status_code == 200
                latencies.append(time.monotonic() - started)
    finally:
        stop.set()
        for attacker in attackers:
            attacker.join(timeout=30 * SLOWNESS)
    assert max(latencies) < HEALTH_BUDGET_S, f"slowest /health took {max(latencies):.2f} s"
    assert len(answers) >= len(attackers)  # every attacker was answered, at least once
    for response in answers:
        assert response.status_code == 422, response.text[:300]
        (problem,) = response.json()["detail"]
        assert problem["loc"] == ["body", "checks", 0, "expression"]
        # [limits] the literal's decimal exponent is beyond MAX_DECIMAL_EXPONENT; it starts at 0.
        assert problem["msg"] == (
            f"check 0: number literal with a decimal exponent beyond ±{MAX_DECIMAL_EXPONENT} "
            "at position 0"
        )
        assert problem["position"] == 0
    assert stored_jobs() == 0


# (check, loc after the check's index, words of the message, position). [hostile-load] each of
# these was answered 202 and then refused by the worker or its parser ("accepted, then refused").
ACCEPTED_THEN_REFUSED = [
    pytest.param(
        {"expression": "2*pi + 1", "points": [{}]},
        ["expression"],
        "no variables to differentiate by",
        None,
        id="no variables",
    ),
    pytest.param(
        # [limits] 1 given point plus SERVICE_POINTS_PER_CHECK samples.
        {"expression": "x", "points": [{"x": 1}], "samples": SERVICE_POINTS_PER_CHECK},
        ["samples"],
        f"{SERVICE_POINTS_PER_CHECK + 1} points, more than {SERVICE_POINTS_PER_CHECK} per check",
        None,
        id="points plus samples",
    ),
    pytest.param(
        {"expression": "x", "points": [{"x": 1e39}], "dtype": "float32"},  # [ieee]
        ["points", 0, "x"],
        "overflows float32",
        None,
        id="1e39 in float32",
    ),
    pytest.param(
        {"expression": "x", "points": [{"x": 1}], "rtol": 1e308},  # [tolerance]
        ["rtol"],
        "rtol must be",
        None,
        id="rtol 1e308",
    ),
    pytest.param(
        {"expression": "x", "points": [{"x": "1e-500"}]},  # [limits] beyond ±400
        ["points", 0, "x"],
        "out of range",
        None,
        id="1e-500 as text",
    ),
    pytest.param(
        {"expression": "x", "points": [{"x": "0." + "0" * 150 + "1"}]},  # 153 characters
        ["points", 0, "x"],
        "is not a decimal number",
        None,
        id="150 zeros as text",
    ),
    pytest.param(
        # [hostile-load] once an internal error: refused at the literal, column 2.
        {"expression": "x*1e-4400", "points": [{"x": 1}]},
        ["expression"],
        f"decimal exponent beyond ±{MAX_DECIMAL_EXPONENT}",
        2,
        id="1e-4400 literal",
    ),
    pytest.param(
        # [hostile-load] hex once bypassed the digit limit: refused by name at column 2.
        {"expression": "x*0x1e" + "f" * 100, "points": [{"x": 1}]},
        ["expression"],
        "is not a plain decimal number",
        2,
        id="hex literal",
    ),
    pytest.param(
        # [hostile-load] division once bypassed the exponent limit: 2/0.001 = 2000, at column 4.
        {"expression": "x**(2/0.001)", "points": [{"x": 1}]},
        ["expression"],
        f"constant exponent larger than {MAX_EXPONENT_ABS}",
        4,
        id="exponent by division",
    ),
]


@pytest.mark.parametrize(("check", "loc_tail", "words", "position"), ACCEPTED_THEN_REFUSED)
def test_what_the_worker_would_refuse_is_a_422_naming_check_field_and_position(
    client: httpx.Client,
    check: dict[str, object],
    loc_tail: list[object],
    words: str,
    position: int | None,
) -> None:
    ok = {"expression": "x", "points": [{"x": 1}]}
    response = client.post("/jobs", json={"checks": [ok, check]})
    assert response.status_code == 422, response.text[:300]
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "checks", 1, *loc_tail]
    assert problem["msg"].startswith("check 1")
    assert words in problem["msg"]
    assert problem["position"] == position


def test_a_parse_past_its_bound_is_a_422_and_holds_nothing(
    settings: Settings, fresh_sqlite_url: str, server_thread: Any
) -> None:
    # A bound shorter than any parse stands in for an expression that would parse slowly: the
    # API's parser processes are killed and replaced, the API itself never waits on SymPy.
    bounded = settings.model_copy(
        update={
            "database_url": fresh_sqlite_url,
            "api_keys": "off",
            "rate_limit_per_minute": 0,
            "parse_processes": 1,
            "parse_timeout_s": 1e-6,
        }
    )
    body = {"checks": [{"expression": "sin(x)", "points": [{"x": 1}]}]}
    with (
        server_thread(create_app(bounded)) as url,
        httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http,
    ):
        for _ in range(3):
            refused = http.post("/jobs", json=body)
            assert refused.status_code == 422
            (problem,) = refused.json()["detail"]
            assert problem["loc"] == ["body", "checks", 0, "expression"]
            assert "took more than 1e-06 s to parse" in problem["msg"]
            started = time.perf_counter()
            assert http.get("/health").status_code in (200, 503)
            assert time.perf_counter() - started < HEALTH_BUDGET_S
