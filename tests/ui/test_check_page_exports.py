"""The check page's exports: a ``derivcheck check`` command line for each point of its worst
entries, and the data of each scatter plot as CSV. Reports are stored directly from documents
built here in the core's format, over a live API answering real HTTP on a rolled-back
session (as tests/ui/test_job_page_errors.py does).
"""

from __future__ import annotations

import csv
import html as markup
import io
import re
import shlex
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from servers import ServerThread
from slowness import SLOWNESS
from sqlalchemy.orm import Session

from verifier.api import create_app
from verifier.api.deps import get_session
from verifier.api.ui.charts import MAX_DRAWN_MARKS, marks_per_plot, scatter_csv
from verifier.config import Settings
from verifier.delivery.sender import InMemorySender
from verifier.service.pages import PlotPoint
from verifier.store import repository
from verifier.store.documents import report_row


@pytest.fixture
def client(settings: Settings, session: Session) -> Iterator[httpx.Client]:
    """A live API, keys off, whose database work is rolled back after the test."""
    app = create_app(settings.model_copy(update={"api_keys": "off"}), InMemorySender())
    app.dependency_overrides[get_session] = lambda: session
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
        yield http


def _document(expression: str, points: list[dict[str, float]], failing_every: int) -> Any:
    """A report of ``expression`` with one gradient entry (of x) per point, every
    ``failing_every``-th failing, in the core's own format (``Report.to_dict()``)."""
    from verifier.core.judge.report import Entry, Report

    entries = [
        Entry(
            kind="gradient",
            wrt=("x",),
            node=None,
            point=number,
            autograd=6.0 + number,
            reference=6.0,
            reference_radius=0.0,
            abs_error=float(number),
            rel_error=0.0,
            ulp_error=float(number % 700 + 1),
            tolerance=1e-13,
            verdict="fail" if number % failing_every == 0 else "pass",
            ratio=4.0 if number % failing_every == 0 else 0.5,
            condition=1.0,
            correct_bits=53.0,
        )
        for number in range(len(points))
    ]
    report = Report(
        expression=expression,
        variables=list(points[0]),
        dtype="float64",
        device="cpu",
        verdict="fail",
        points=points,
        entries=entries,
        fail_on=["fail"],
        reference_method="test",
        tolerance={"rtol": 1e-14, "atol": 0.0, "ulps": 64.0},
        versions={"torch": "test-torch", "sympy": "test-sympy"},
        timings={"total": 0.25},
    )
    return report.to_dict()


def _stored_check(
    client: httpx.Client,
    session: Session,
    expression: str,
    points: list[dict[str, float]],
    every: int,
) -> str:
    """The id of a check of ``expression`` whose report (built here) is stored."""
    accepted = client.post(
        "/jobs", json={"checks": [{"expression": expression, "points": points[:1]}]}
    )
    assert accepted.status_code == 202, accepted.text
    (check,) = repository.checks_of_job(session, uuid.UUID(accepted.json()["id"]))
    assert repository.insert_report(
        session, report_row(check, _document(expression, points, every))
    )
    session.commit()
    return str(check.id)


def test_each_worst_point_has_a_command_that_parses_back_to_its_expression_and_floats(
    client: httpx.Client, session: Session
) -> None:
    # Floats whose shortest decimals are long, one subnormal: printed with 6 digits (as the
    # table does) they would not read back as the same floats.
    points = [{"x": 0.1 + 0.2, "y": -5e-324}, {"x": 1 / 3, "y": 2.0**-1074 * 3}]
    expression = "x * y + sin(x)"
    check_id = _stored_check(client, session, expression, points, every=1)

    answer = client.get(f"/ui/checks/{check_id}")
    assert answer.status_code == 200, answer.text[:2000]
    commands = [
        markup.unescape(found)
        for found in re.findall(r'<code class="reproduce">(.*?)</code>', answer.text, re.S)
    ]
    assert len(commands) == len(points)
    parsed = []
    for command in commands:
        words = shlex.split(command)
        assert words[:3] == ["derivcheck", "check", expression]
        assert words[3] == "--at" and words[5:] == ["--dtype", "float64"]
        parsed.append(
            {name: float(value) for name, value in (p.split("=") for p in words[4].split(","))}
        )
    # Float equality, not closeness: repr round-trips every float exactly.
    assert sorted(parsed, key=lambda p: p["x"]) == sorted(points, key=lambda p: p["x"])


def test_each_scatter_plot_links_its_drawn_points_as_csv_bounded_like_the_plot(
    client: httpx.Client, session: Session
) -> None:
    count = MAX_DRAWN_MARKS + 1000  # more entries than one plot draws
    points = [{"x": number * 0.1, "y": 1 / (number + 3)} for number in range(count)]
    check_id = _stored_check(client, session, "x * y", points, every=10)

    page = client.get(f"/ui/checks/{check_id}")
    assert page.status_code == 200, page.text[:2000]
    figure = re.search(
        r'<figure class="scatter"\s+data-variable="x">(.*?)</figure>', page.text, re.S
    )
    assert figure is not None
    drawn = len(re.findall(r'class="mark verdict-', figure.group(1)))
    link = re.search(r'<a class="csv" href="([^"]+)"', figure.group(1))
    assert link is not None
    answer = client.get(markup.unescape(link.group(1)))
    assert answer.status_code == 200, answer.text[:2000]
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == ["x", "entry", "autograd", "exact", "ulps", "err/allowed", "verdict"]
    # Two variables share the page's marks (charts.marks_per_plot), each plot at most
    # MAX_DRAWN_MARKS; the CSV is the plot's own sample, mark for mark.
    assert len(rows) - 1 == drawn == min(marks_per_plot(2), count) == MAX_DRAWN_MARKS
    # Every non-passing entry read is drawn first (the plot's thinning rule).
    failing = [row for row in rows[1:] if row[6] == "fail"]
    assert rows[1 : len(failing) + 1] == failing
    by_x = {point["x"]: number for number, point in enumerate(points)}
    for row in rows[1:]:
        number = by_x[float(row[0])]  # repr: the same float as the stored point
        assert row[1] == "gradient x" and float(row[2]) == 6.0 + number
        assert float(row[5]) == (4.0 if number % 10 == 0 else 0.5)


def test_the_csv_of_a_missing_check_or_variable_is_not_found(
    client: httpx.Client, session: Session
) -> None:
    check_id = _stored_check(client, session, "x * y", [{"x": 2.0, "y": 3.0}], every=2)
    assert client.get(f"/ui/checks/{check_id}/points.csv?variable=z").status_code == 404
    assert client.get(f"/ui/checks/{uuid.uuid4()}/points.csv?variable=x").status_code == 404
    assert client.get(f"/ui/checks/{check_id}/points.csv?variable=y").status_code == 200


def test_a_csv_text_cell_a_spreadsheet_would_read_as_a_formula_is_sent_as_text() -> None:
    # OWASP's CSV injection advice: a cell starting with = + - @ is prefixed with '.
    point = PlotPoint(x=-1.5, ulps=2.0, verdict="fail", entry='=HYPERLINK("http://x")')
    rows = list(csv.reader(io.StringIO(scatter_csv([point], "@y"))))
    assert rows[0][0] == "'@y"
    assert rows[1][:2] == ["-1.5", '\'=HYPERLINK("http://x")']  # numbers stay numbers
