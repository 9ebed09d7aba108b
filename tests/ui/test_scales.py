"""Which plots of a check page get a log axis from its ``?log=`` query, and the links that
switch them (verifier/api/ui/scales.py); the pages themselves are driven in Chromium by
test_chart_layout.py."""

from __future__ import annotations

from verifier.api.ui import scales
from verifier.service.pages import PlotPoint

PATH = "/ui/checks/c"
SERIES = {
    "x": [PlotPoint(x=-1.0, ulps=1.0, verdict="pass"), PlotPoint(x=2.0, ulps=1.0, verdict="pass")],
    "y": [PlotPoint(x=0.5, ulps=1.0, verdict="pass"), PlotPoint(x=2.0, ulps=3.0, verdict="fail")],
    "z": [PlotPoint(x=0.5, ulps=4.0, verdict="pass")],
}


def test_each_plots_link_switches_its_own_axis_and_keeps_the_others() -> None:
    chosen = scales.choose(["z"], SERIES, PATH)
    assert chosen.log == ["z"] and chosen.problems == []
    assert chosen.switches["y"] == scales.Switch(f"{PATH}?log=y&log=z", "log scale for y")
    assert chosen.switches["z"] == scales.Switch(PATH, "linear scale for z")


def test_a_variable_with_a_value_at_or_below_zero_has_no_link_and_is_refused_by_name() -> None:
    chosen = scales.choose(["x", "y"], SERIES, PATH)
    assert chosen.log == ["y"]
    (problem,) = chosen.problems
    assert problem.startswith("log='x': a log axis needs every plotted value of x above 0")
    assert chosen.switches["x"].url is None
    assert chosen.scale("x") == "linear" and chosen.scale("y") == "log"


def test_a_query_naming_many_unknown_plots_gets_a_bounded_message() -> None:
    chosen = scales.choose([f"v{number}" for number in range(1000)], SERIES, PATH)
    assert len(chosen.problems) == scales.MAX_PROBLEMS + 1
    assert chosen.problems[-1] == f"{1000 - scales.MAX_PROBLEMS} more log= names refused"
    assert chosen.log == []
