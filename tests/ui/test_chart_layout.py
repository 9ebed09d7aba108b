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
