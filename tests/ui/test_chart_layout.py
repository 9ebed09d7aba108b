"""The charts' layout in a real headless Chromium: nice tick values, and every label (ticks,
axes, legends) inside the box it belongs to, measured from the browser's own layout."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from chromium_driver import Chromium
from markupsafe import Markup
from test_pages import job_report, sign_in
from ui_site import Site

from verifier.api.ui import charts
from verifier.api.ui.templates import BASE
from verifier.core.judge.verdict import VERDICT_ORDER
from verifier.service.pages import PlotPoint

OUTSIDE_TEXTS = """(() => {
    const outside = [];
    for (const svg of document.querySelectorAll('svg.chart')) {
        const box = svg.getBoundingClientRect();
        for (const text of svg.querySelectorAll('text')) {
            const r = text.getBoundingClientRect();
            if (r.left < box.left - 0.5 || r.right > box.right + 0.5 ||
                r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5) {
                outside.push([svg.querySelector('title').textContent, text.textContent,
                              [r.left, r.right], [box.left, box.right]]);
            }
        }
    }
    return outside;
})()"""


def _pages(site: Site) -> list[str]:
    """Every page with a chart: both of alice's jobs, each of their checks, the stats."""
    paths = ["/ui/stats"]
    for name in ("float32", "sine"):
        paths.append(f"/ui/jobs/{site.jobs[name]}")
        report = job_report(site, site.jobs[name], site.alice)
        paths += [f"/ui/checks/{check['check']}" for check in report["checks"]]
    return paths


def test_every_label_of_every_chart_lies_inside_its_svg(site: Site, browser: Chromium) -> None:
    sign_in(browser, site, site.alice)
    outside: dict[str, Any] = {}
    for path in _pages(site):
        assert browser.open(site.url + path) == 200
        found = browser.evaluate(OUTSIDE_TEXTS)
        if found:
            outside[path] = found
    assert outside == {}


def test_a_scatter_plots_x_axis_is_ticked_at_nice_values_with_zero(
    site: Site, browser: Chromium
) -> None:
    # tanh(x)*y samples x in [-10, 10] (ui_site.py); d3-scale's nice() widens the points'
    # range to [-10, 10] and d3-array's ticks(-10, 10, 5) are -10, -5, 0, 5, 10.
    check = job_report(site, site.jobs["float32"], site.alice)["checks"][0]
    sign_in(browser, site, site.alice)
    browser.open(f"{site.url}/ui/checks/{check['check']}")
    ticks = browser.evaluate(
        "[...document.querySelectorAll('figure.scatter[data-variable=\"x\"] text.x-tick')]"
        ".map(tick => [Number(tick.dataset.value), tick.textContent])"
    )
    assert ticks == [[-10, "-10"], [-5, "-5"], [0, "0"], [5, "5"], [10, "10"]]


def _open_chart(browser: Chromium, folder: Path, chart: Markup) -> None:
    """Open a page holding ``chart`` alone, styled as the report pages are."""
    style = re.search(r"<style>.*?</style>", BASE, re.DOTALL)
    assert style is not None
    page = folder / "chart.html"
    page.write_text(f"<!doctype html><html><head>{style.group(0)}</head><body>{chart}</body>")
    browser.open(page.as_uri())


def test_a_scatter_over_a_small_range_ticks_zero_and_keeps_its_last_label_inside(
    browser: Chromium, tmp_path: Path
) -> None:
    # Points over [-0.000891, 0.00389]: the raw ends were the first and last labels before,
    # "-0.000891" where 0 belongs and "0.00389" cut by the right edge. d3-array's
    # ticks(-0.001, 0.004, 5) are -0.001, 0, 0.001, ..., 0.004.
    xs = [-0.000891 + number * (0.00389 + 0.000891) / 20 for number in range(21)]
    points = [
        PlotPoint(x=x, ulps=10.0 ** (number % 4), verdict="pass") for number, x in enumerate(xs)
    ]
    _open_chart(browser, tmp_path, charts.error_scatter(points, "x", "errors", 64.0))
    assert browser.evaluate(OUTSIDE_TEXTS) == []
    ticks = browser.evaluate(
        "[...document.querySelectorAll('text.x-tick')].map(tick => tick.textContent)"
    )
    assert ticks == ["-0.001", "0", "0.001", "0.002", "0.003", "0.004"]


LEGENDS_OUTSIDE = """(() => {
    const outside = [];
    for (const legend of document.querySelectorAll('ul.legend')) {
        const box = legend.getBoundingClientRect();
        for (const item of legend.querySelectorAll('li')) {
            const r = item.getBoundingClientRect();
            if (r.width === 0 || r.left < box.left - 0.5 || r.right > box.right + 0.5 ||
                r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5) {
                outside.push([item.textContent, [r.left, r.right], [box.left, box.right]]);
            }
        }
    }
    return outside;
})()"""


def test_the_stats_legends_name_every_verdict_inside_their_boxes(
    site: Site, browser: Chromium
) -> None:
    # The legend was cut after "nonf" when its widths were guessed at 7 px a character; the
    # names come from the verdict table (verifier/core/judge/verdict.py).
    sign_in(browser, site, site.alice)
    browser.open(f"{site.url}/ui/stats")
    for figure in ("by-dtype", "by-function"):
        names = browser.evaluate(
            f"[...document.querySelectorAll('#{figure} ul.legend li')].map(i => i.textContent)"
        )
        assert names == [str(verdict) for verdict in VERDICT_ORDER]
    assert browser.evaluate(LEGENDS_OUTSIDE) == []
    assert browser.evaluate(OUTSIDE_TEXTS) == []


def test_gradient_and_hessian_entries_have_their_own_marker_named_in_a_legend(
    site: Site, browser: Chromium
) -> None:
    # tanh(x)*y: 200 points x 2 gradient entries and 3 drawn Hessian elements (d2/dy2 is 0,
    # test_pages.py); each kind's marks share one shape, and the two shapes differ.
    check = job_report(site, site.jobs["float32"], site.alice)["checks"][0]
    sign_in(browser, site, site.alice)
    browser.open(f"{site.url}/ui/checks/{check['check']}")
    figure = "document.querySelector('figure.scatter[data-variable=\"x\"]')"
    shapes = browser.evaluate(
        f"[...{figure}.querySelectorAll('svg.chart .mark')]"
        ".map(mark => [mark.dataset.kind, mark.tagName])"
    )
    by_kind: dict[str, set[str]] = {}
    for kind, tag in shapes:
        by_kind.setdefault(kind, set()).add(tag)
    assert sum(kind == "gradient" for kind, _ in shapes) == 400
    assert sum(kind == "hessian" for kind, _ in shapes) == 600
    assert by_kind == {"gradient": {"circle"}, "hessian": {"rect"}}
    legend = browser.evaluate(
        f"[...{figure}.querySelectorAll('ul.legend li[data-kind]')]"
        ".map(item => [item.textContent, item.querySelector('svg :last-child').tagName])"
    )
    assert legend == [["gradient", "circle"], ["hessian", "rect"]]
    assert browser.evaluate(LEGENDS_OUTSIDE) == []


def test_the_jobs_list_shows_each_jobs_short_id_as_a_link_to_it(
    site: Site, browser: Chromium
) -> None:
    # The CLI prints a job as its first 8 hex digits ("job beb21642") and accepts them.
    sign_in(browser, site, site.alice)
    cells = browser.evaluate(
        "[...document.querySelectorAll('tr.job a.job-id')]"
        ".map(link => [link.textContent, new URL(link.href).pathname])"
    )
    assert cells == [
        [site.jobs[name][:8], f"/ui/jobs/{site.jobs[name]}"] for name in ("sine", "float32")
    ]


def _x_axis(browser: Chromium, variable: str) -> dict[str, Any]:
    """The scale, tick labels and switch link of the scatter plot against ``variable``."""
    figure = f"document.querySelector('figure.scatter[data-variable=\"{variable}\"]')"
    found: dict[str, Any] = browser.evaluate(
        f"""(() => {{
            const figure = {figure};
            const link = figure.querySelector('a.xscale');
            return {{
                scale: figure.querySelector('text.x-axis').dataset.scale,
                ticks: [...figure.querySelectorAll('text.x-tick')].map(tick => tick.textContent),
                link: link ? [link.textContent, link.href] : null,
                note: figure.querySelector('span.xscale')?.textContent ?? null,
            }};
        }})()"""
    )
    return found


POWER_OF_TEN = re.compile(r"1e(-?\d+)")


def test_a_plots_log_link_draws_its_variable_on_a_log_axis_ticked_at_powers_of_ten(
    site: Site, browser: Chromium, screenshots: Path
) -> None:
    # tanh(x)*y samples y in [0.5, 2] (ui_site.py); widened to whole decades that is
    # [1e-1, 1e1], and matplotlib's LogLocator ticks 2 decades every decade: 1e-1, 1e0, 1e1.
    check = job_report(site, site.jobs["float32"], site.alice)["checks"][0]
    ys = [point["y"] for point in check["points"]]
    assert 0.1 < min(ys) < 1 < max(ys) < 10  # the derivation's premise
    sign_in(browser, site, site.alice)
    page = f"{site.url}/ui/checks/{check['check']}"
    assert browser.open(page) == 200
    linear = _x_axis(browser, "y")
    assert linear["scale"] == "linear"
    assert linear["link"][0] == "log scale for y"

    assert browser.open(linear["link"][1]) == 200  # following the link, as a person would
    assert browser.evaluate("location.search") == "?log=y"
    logarithmic = _x_axis(browser, "y")
    assert logarithmic["scale"] == "log"
    assert logarithmic["ticks"] == ["1e-1", "1e0", "1e1"]
    for label in logarithmic["ticks"]:
        assert POWER_OF_TEN.fullmatch(label), label
    assert browser.evaluate(OUTSIDE_TEXTS) == []
    assert _x_axis(browser, "x")["scale"] == "linear"  # the other plot keeps its own scale
    browser.screenshot(screenshots / "check-log-axis.png", max_height=1450)

    assert logarithmic["link"][0] == "linear scale for y"
    assert browser.open(logarithmic["link"][1]) == 200
    assert browser.evaluate("location.search") == ""
    assert _x_axis(browser, "y")["scale"] == "linear"


def test_a_log_axis_for_a_variable_with_values_at_or_below_zero_is_refused_on_the_page(
    site: Site, browser: Chromium
) -> None:
    # x is sampled in [-10, 10] (ui_site.py): no log axis can hold its values below 0.
    check = job_report(site, site.jobs["float32"], site.alice)["checks"][0]
    sign_in(browser, site, site.alice)
    page = f"{site.url}/ui/checks/{check['check']}"
    assert browser.open(f"{page}?log=x") == 422
    problem = browser.evaluate("document.getElementById('problem').textContent")
    assert "log='x'" in problem
    assert "every plotted value of x above 0" in problem
    refused = _x_axis(browser, "x")
    assert refused["scale"] == "linear"
    assert refused["ticks"] == ["-10", "-5", "0", "5", "10"]
    assert refused["link"] is None
    assert refused["note"].startswith("no log scale: a log axis needs every plotted value of x")

    assert browser.open(f"{page}?log=nosuch&log=y") == 422
    problem = browser.evaluate("document.getElementById('problem').textContent")
    assert problem == "log='nosuch': this check has no plot against it"
    assert _x_axis(browser, "y")["scale"] == "log"  # the name that can be drawn still is


def test_a_scatter_over_many_decades_ticks_every_other_one_inside_its_box(
    browser: Chromium, tmp_path: Path
) -> None:
    # Points over [3e-5, 2e3]: widened to [1e-5, 1e4], 9 decades; matplotlib's LogLocator
    # strides (9 + 1) // 9 + 1 = 2 decades from the bottom: 1e-5, 1e-3, 1e-1, 1e1, 1e3.
    xs = [3e-5 * (2e3 / 3e-5) ** (number / 20) for number in range(21)]
    points = [PlotPoint(x=x, ulps=1.0 + number, verdict="pass") for number, x in enumerate(xs)]
    _open_chart(browser, tmp_path, charts.error_scatter(points, "x", "errors", 64.0, x_scale="log"))
    assert browser.evaluate(OUTSIDE_TEXTS) == []
    ticks = browser.evaluate(
        "[...document.querySelectorAll('text.x-tick')].map(tick => tick.textContent)"
    )
    assert ticks == ["1e-5", "1e-3", "1e-1", "1e1", "1e3"]
    # Each mark lies between the labelled powers of ten around its value, left to right.
    marks = browser.evaluate(
        "[...document.querySelectorAll('.mark')].map(mark => {"
        " const r = mark.getBoundingClientRect();"
        " return [Number(mark.dataset.x), (r.left + r.right) / 2]; })"
    )
    labelled = browser.evaluate(
        "[...document.querySelectorAll('text.x-tick')].map(tick => {"
        " const r = tick.getBoundingClientRect();"
        " return [Number(tick.textContent), (r.left + r.right) / 2]; })"
    )
    assert len(marks) == len(xs)
    for x, centre in marks:
        below = [at for value, at in labelled if value <= x]
        above = [at for value, at in labelled if value > x]
        assert below and below[-1] - 0.5 <= centre, x
        assert not above or centre <= above[0] + 0.5, x
    assert [centre for _, centre in sorted(marks)] == sorted(centre for _, centre in marks)
