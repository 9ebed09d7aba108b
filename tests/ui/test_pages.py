"""The report pages in a real headless Chromium, against a live API with real reports.

What a page drew is read from the browser's rendered DOM and layout (the SVG marks' boxes and
attributes), and compared with the JSON API's report of the same job (another reader of the
database than the pages' own) or with values derived by hand in the test.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from chromium_driver import Chromium
from slowness import SLOWNESS
from ui_site import HOSTILE_LABEL, Site

from verifier.api.ui.charts import VERDICT_COLOURS
from verifier.core.judge.verdict import VERDICT_ORDER


def sign_in(browser: Chromium, site: Site, key: str) -> int:
    """Sign in through the form, as a person would; the status of the page it leads to."""
    browser.clear_cookies()
    browser.open(f"{site.url}/ui/")
    assert browser.evaluate("location.pathname") == "/ui/login"
    return browser.submit(
        f"document.getElementById('api_key').value = {json.dumps(key)};"
        "document.getElementById('login').submit()"
    )


def job_report(site: Site, job: str, key: str) -> dict[str, Any]:
    """The job's report from the JSON API (every entry of every check)."""
    with httpx.Client(base_url=site.url, timeout=60 * SLOWNESS) as http:
        answer = http.get(f"/jobs/{job}/report", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    assert report["next_cursor"] is None
    return report


def listed_jobs(browser: Chromium) -> list[str]:
    return list(
        browser.evaluate("[...document.querySelectorAll('tr.job')].map(row => row.dataset.job)")
    )


def test_every_verdict_has_its_own_colour() -> None:
    # The verdict table (verifier/core/judge/verdict.py) is the source of the names.
    assert set(VERDICT_COLOURS) == {str(verdict) for verdict in VERDICT_ORDER}
    assert len(set(VERDICT_COLOURS.values())) == len(VERDICT_COLOURS)


def test_signing_in_keeps_a_session_not_the_key_in_an_http_only_cookie_and_lists_the_jobs(
    site: Site, browser: Chromium, screenshots: Path
) -> None:
    assert sign_in(browser, site, site.alice) == 200
    assert browser.evaluate("location.pathname") == "/ui/"
    (cookie,) = [c for c in browser.cookies() if c["name"] == "derivcheck_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/ui"
    assert all(site.alice not in c["value"] for c in browser.cookies())
    assert site.alice not in browser.evaluate("document.cookie")
    # Newest first: the sine job was submitted after the float32 one.
    assert listed_jobs(browser) == [site.jobs["sine"], site.jobs["float32"]]
    browser.screenshot(screenshots / "jobs.png")


def test_a_wrong_key_is_refused_with_the_form_again(site: Site, browser: Chromium) -> None:
    assert sign_in(browser, site, "dck_not-a-key") == 401
    assert "not valid" in browser.evaluate("document.getElementById('problem').textContent")
    # Only the form's CSRF token is kept, for the next try; no sign-in.
    assert [c["name"] for c in browser.cookies()] == ["derivcheck_csrf"]


def test_a_hostile_label_is_shown_as_text(site: Site, browser: Chromium) -> None:
    sign_in(browser, site, site.alice)
    cell = f"document.querySelector('tr.job[data-job=\"{site.jobs['float32']}\"] td.label')"
    assert browser.evaluate(f"{cell}.textContent") == HOSTILE_LABEL
    assert browser.evaluate(f"{cell}.children.length") == 0
    assert browser.evaluate("document.querySelectorAll('script, img, b').length") == 0
    browser.open(f"{site.url}/ui/jobs/{site.jobs['float32']}")
    assert browser.evaluate("document.querySelector('#job td.label').textContent") == HOSTILE_LABEL
    assert browser.evaluate("document.querySelectorAll('script, img, b').length") == 0


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("dtype", "float32", ["float32"]),
        ("expression", "sin", ["sine"]),
        ("function", "tanh", ["float32"]),
        ("verdict", "fail", ["float32"]),
        ("verdict", "pass", ["sine"]),
        ("dtype", "bfloat16", []),
    ],
)
def test_filters_narrow_the_list(
    site: Site, browser: Chromium, field: str, value: str, expected: list[str]
) -> None:
    # Which job matches follows from what each job holds (conftest.py): the float32 job is
    # the only one with a float32 check, a tanh, a failing entry (docs/survey-torch-2.13-cpu.md
    # lists tanh's float32 gradient as failing); sin and x**2 in float64 pass.
    sign_in(browser, site, site.alice)
    status = browser.submit(
        f"const form = document.getElementById('filters');"
        f"form.elements[{json.dumps(field)}].value = {json.dumps(value)};"
        "form.submit()"
    )
    assert status == 200
    assert f"{field}={value}" in browser.evaluate("location.search")
    assert listed_jobs(browser) == [site.jobs[name] for name in expected]


def test_a_date_range_filters_by_submission_day(site: Site, browser: Chromium) -> None:
    sign_in(browser, site, site.alice)
    browser.open(f"{site.url}/ui/?until=2000-01-01")
    assert listed_jobs(browser) == []
    browser.open(f"{site.url}/ui/?since=2000-01-01")
    assert len(listed_jobs(browser)) == 2
    assert browser.open(f"{site.url}/ui/?since=yesterday") == 422
    assert "is not a date" in browser.evaluate("document.getElementById('problem').textContent")


def test_another_key_sees_none_of_the_jobs(site: Site, browser: Chromium) -> None:
    sign_in(browser, site, site.bob)
    assert listed_jobs(browser) == [site.jobs["bob"]]
    assert browser.open(f"{site.url}/ui/jobs/{site.jobs['float32']}") == 404
    check = job_report(site, site.jobs["float32"], site.alice)["checks"][0]["check"]
    assert browser.open(f"{site.url}/ui/checks/{check}") == 404
    assert "tanh" not in browser.evaluate("document.body.textContent")
    browser.open(f"{site.url}/ui/stats")
    assert "tanh" not in browser.evaluate("document.body.textContent")


def test_without_signing_in_every_page_leads_to_the_form(site: Site, browser: Chromium) -> None:
    browser.clear_cookies()
    for path in ("/ui/", f"/ui/jobs/{site.jobs['float32']}", "/ui/stats"):
        browser.open(site.url + path)
        assert browser.evaluate("location.pathname") == "/ui/login"


def test_the_job_page_charts_its_checks_verdicts(
    site: Site, browser: Chromium, screenshots: Path
) -> None:
    report = job_report(site, site.jobs["float32"], site.alice)
    expected: dict[str, int] = {}
    for check in report["checks"]:
        expected[check["verdict"]] = expected.get(check["verdict"], 0) + 1
    sign_in(browser, site, site.alice)
    browser.open(f"{site.url}/ui/jobs/{site.jobs['float32']}")
    bars = browser.evaluate(
        "[...document.querySelectorAll('#verdict-chart rect.mark')].map(bar => "
        "[bar.dataset.verdict, Number(bar.dataset.count), bar.getBoundingClientRect().width])"
    )
    assert {verdict: count for verdict, count, _ in bars} == expected == {"fail": 1, "pass": 1}
    assert all(width > 0 for _, _, width in bars)
    rows = browser.evaluate(
        "[...document.querySelectorAll('tr.check')].map(row => row.dataset.check)"
    )
    assert rows == [check["check"] for check in report["checks"]]
    browser.screenshot(screenshots / "job.png")


def _scatter(browser: Chromium, variable: str) -> dict[str, Any]:
    """What the scatter plot of ``variable`` drew: its marks with their data and centres on
    the screen, and the box of its frame."""
    found: dict[str, Any] = browser.evaluate(
        f"""(() => {{
        const figure = document.querySelector('figure.scatter[data-variable="{variable}"]');
        const frame = figure.querySelector('rect.frame').getBoundingClientRect();
        const marks = [...figure.querySelectorAll('svg .mark')].map(mark => {{
            const box = mark.getBoundingClientRect();
            return {{verdict: mark.dataset.verdict, kind: mark.dataset.kind,
                     x: Number(mark.dataset.x),
                     ulps: Number(mark.dataset.ulps), cx: box.x + box.width / 2,
                     cy: box.y + box.height / 2, width: box.width,
                     fill: getComputedStyle(mark).fill}};
        }});
        return {{frame: {{left: frame.left, right: frame.right, top: frame.top,
                          bottom: frame.bottom}}, marks: marks}};
        }})()"""
    )
    return found


def test_the_check_page_shows_the_expression_and_draws_its_errors(
    site: Site, browser: Chromium, screenshots: Path
) -> None:
    report = job_report(site, site.jobs["float32"], site.alice)
    check = report["checks"][0]
    assert check["expression"] == "tanh(x)*y" and check["dtype"] == "float32"
    entries = check["entries"]
    # 200 points x (2 gradient + 4 Hessian elements); d2/dy2 of tanh(x)*y is exactly 0, so
    # its 200 entries have no error in ulps and are not drawn (docs/report-format.md).
    assert len(entries) == 200 * 6
    drawn = [entry for entry in entries if entry["ulp_error"] is not None]
    assert len(drawn) == 1000
    expected = {name: sum(e["verdict"] == name for e in drawn) for name in ("pass", "fail")}
    assert expected["fail"] > 0 and expected["pass"] > 0

    sign_in(browser, site, site.alice)
    browser.open(f"{site.url}/ui/checks/{check['check']}")
    assert browser.evaluate("document.getElementById('expression').textContent") == "tanh(x)*y"
    options = browser.evaluate("document.getElementById('options').textContent")
    assert "float32" in options and "arb ball arithmetic" in options and "64 ulps" in options
    for variable in ("x", "y"):
        plot = _scatter(browser, variable)
        marks = plot["marks"]
        assert len(marks) == 1000
        counts = {name: sum(m["verdict"] == name for m in marks) for name in expected}
        assert counts == expected
        frame = plot["frame"]
        for mark in marks:
            assert mark["width"] > 0
            assert frame["left"] - 1 <= mark["cx"] <= frame["right"] + 1
            assert frame["top"] - 1 <= mark["cy"] <= frame["bottom"] + 1
        # Coloured by verdict: a failing mark is drawn red, a passing one green.
        fills = {mark["verdict"]: mark["fill"] for mark in marks}
        assert fills["fail"] == "rgb(224, 49, 49)" and fills["pass"] == "rgb(47, 158, 68)"
        # A log scale: ten times the error is the same height higher wherever it is.
        finite = sorted(
            (m for m in marks if math.isfinite(m["ulps"]) and m["ulps"] > 1e-3),
            key=lambda m: m["ulps"],
        )
        low, high = finite[0], finite[-1]
        decade = (low["cy"] - high["cy"]) / math.log10(high["ulps"] / low["ulps"])
        middle = finite[len(finite) // 2]
        assert middle["cy"] == pytest.approx(
            low["cy"] - decade * math.log10(middle["ulps"] / low["ulps"]), abs=1.0
        )
    # The x plot puts each mark at its point's x, left to right.
    by_x = sorted(_scatter(browser, "x")["marks"], key=lambda m: m["x"])
    assert all(a["cx"] <= b["cx"] + 0.01 for a, b in zip(by_x, by_x[1:], strict=False))

    histogram = browser.evaluate(
        "[...document.querySelectorAll('#histogram rect.mark')].map(bar => "
        "[bar.dataset.verdict, Number(bar.dataset.count), bar.getBoundingClientRect().height])"
    )
    assert sum(count for _, count, _ in histogram) == 1000
    assert all(height > 0 for _, _, height in histogram)

    cells = browser.evaluate(
        "[...document.querySelectorAll('#hessian rect.mark')].map(cell => "
        "[cell.dataset.row, cell.dataset.column, cell.dataset.verdict])"
    )
    worst: dict[tuple[str, str], str] = {}
    order = [str(verdict) for verdict in VERDICT_ORDER]
    for entry in entries:
        if entry["kind"] == "hessian":
            cell = (entry["wrt"][0], entry["wrt"][1])
            held = worst.get(cell, "pass")
            worst[cell] = max(held, entry["verdict"], key=order.index)
    assert {(row, column): verdict for row, column, verdict in cells} == worst

    # The entries table: worst first, by verdict and then by error over the tolerance.
    rows = browser.evaluate(
        "[...document.querySelectorAll('#entries tr.entry')].map(row => row.dataset.verdict)"
    )
    failing = sum(entry["verdict"] == "fail" for entry in entries)
    assert rows == ["fail"] * min(100, failing) + ["pass"] * (100 - min(100, failing))
    ratios = browser.evaluate(
        "[...document.querySelectorAll('#entries tr.entry td:nth-child(8)')]"
        ".map(cell => Number(cell.textContent))"
    )
    largest = sorted((e["ratio"] for e in entries if e["verdict"] == "fail"), reverse=True)
    assert ratios[0] == pytest.approx(largest[0], rel=1e-3)
    browser.screenshot(screenshots / "check-float32.png", max_height=1450)


def test_marks_sit_where_a_hand_computed_scale_puts_them(site: Site, browser: Chromium) -> None:
    # x**2 at x = 1, 2, 3 in float64: autograd's 2x and 2 are exact, so every error is 0 ulps,
    # drawn at the floor of the scale; x = 1, 2, 3 are equally spaced, so are their marks.
    report = job_report(site, site.jobs["sine"], site.alice)
    (square,) = [check for check in report["checks"] if check["expression"] == "x**2"]
    sign_in(browser, site, site.alice)
    browser.open(f"{site.url}/ui/checks/{square['check']}")
    marks = _scatter(browser, "x")["marks"]
    assert len(marks) == 6  # 3 gradient and 3 Hessian entries
    assert {mark["verdict"] for mark in marks} == {"pass"}
    assert len({round(mark["cy"], 3) for mark in marks}) == 1
    centres = sorted({round(mark["cx"], 3) for mark in marks})
    assert len(centres) == 3
    assert centres[1] - centres[0] == pytest.approx(centres[2] - centres[1], abs=0.01)


def test_the_stats_page_charts_verdicts_by_function_and_dtype(
    site: Site, browser: Chromium, screenshots: Path
) -> None:
    # Alice's four checks: tanh(x)*y in float32 (fail), the seed polynomial, sin(x) and x**2
    # in float64 (all pass); bob's exp(x) is not hers.
    sign_in(browser, site, site.alice)
    browser.open(f"{site.url}/ui/stats")
    dtype_bars = browser.evaluate(
        "[...document.querySelectorAll('#by-dtype rect.mark')].map(bar => "
        "[bar.dataset.group, bar.dataset.verdict, Number(bar.dataset.count)])"
    )
    assert sorted(map(tuple, dtype_bars)) == [("float32", "fail", 1), ("float64", "pass", 3)]
    function_bars = browser.evaluate(
        "[...document.querySelectorAll('#by-function rect.mark')].map(bar => bar.dataset.group)"
    )
    assert "tanh" in function_bars and "sin" in function_bars and "exp" not in function_bars
    browser.screenshot(screenshots / "stats.png")


def test_pages_send_no_script_and_forbid_any(site: Site, browser: Chromium) -> None:
    sign_in(browser, site, site.alice)
    (cookie,) = [c for c in browser.cookies() if c["name"] == "derivcheck_session"]
    with httpx.Client(
        base_url=site.url, cookies={"derivcheck_session": cookie["value"]}, timeout=30 * SLOWNESS
    ) as http:
        answer = http.get("/ui/")
    assert answer.status_code == 200
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert re.search(r"<script", answer.text, re.IGNORECASE) is None
