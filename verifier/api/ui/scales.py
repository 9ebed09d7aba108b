"""Which scatter plots of a check's page draw their variable on a logarithmic axis.

The page's query names them, ``?log=x&log=y`` (a link under each plot switches its own), so
the choice needs no script. A log axis is drawn only where every plotted value of the variable
is above 0; a variable with a value at or below 0 (or a name with no plot) is refused with a
message on the page and its plot stays linear. There is no symmetric log scale: a variable
that spans 0 is best read on its linear axis, which always ticks 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from verifier.service.pages import PlotPoint

LOG_PARAMETER = "log"
"""The query parameter naming a variable whose plot has a log axis (repeatable)."""
MAX_NAME_CHARS = 100
"""A refused name is quoted in the page's message up to this many characters."""
MAX_PROBLEMS = 5
"""Refused names the page's message explains one by one; the rest are counted."""


def plotted_values(points: Sequence[PlotPoint]) -> list[float]:
    """The variable's values of the entries a scatter plot draws (those with an error in
    ulps), the values its axis spans."""
    return [point.x for point in points if point.ulps is not None]


def log_axis_problem(points: Sequence[PlotPoint], variable: str) -> str | None:
    """Why the plot of ``points`` against ``variable`` cannot have a log axis (None: it can)."""
    values = plotted_values(points)
    if not values:
        return "no entry has an error in ulps to plot"
    lowest = min(values)
    if not (lowest > 0 and math.isfinite(max(values))):
        return f"a log axis needs every plotted value of {variable} above 0, and {lowest!r} is not"
    return None


@dataclass(frozen=True)
class Switch:
    """What stands under one plot: the link that switches its axis (``url``) and its text,
    or no link and the reason why its axis cannot be logarithmic."""

    url: str | None
    text: str


@dataclass
class Scales:
    """The variables drawn on a log axis, the names refused and why, each plot's switch."""

    log: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    switches: dict[str, Switch] = field(default_factory=dict)

    def scale(self, variable: str) -> str:
        """``log`` or ``linear``: the scale of ``variable``'s axis."""
        return "log" if variable in self.log else "linear"


def choose(
    requested: Sequence[str], series: Mapping[str, Sequence[PlotPoint]], path: str
) -> Scales:
    """The scales of the plots of the check page at ``path`` for the names its query gave
    (``requested``): each refused name with its reason, and each plot's switch."""
    scales = Scales()
    problems = {name: log_axis_problem(points, name) for name, points in series.items()}
    for name in dict.fromkeys(requested):
        shown = repr(name[:MAX_NAME_CHARS])
        if name not in series:
            scales.problems.append(f"{LOG_PARAMETER}={shown}: this check has no plot against it")
        elif problems[name] is not None:
            scales.problems.append(
                f"{LOG_PARAMETER}={shown}: {problems[name]}; its plot stays linear"
            )
        else:
            scales.log.append(name)
    if len(scales.problems) > MAX_PROBLEMS:
        more = len(scales.problems) - MAX_PROBLEMS
        scales.problems[MAX_PROBLEMS:] = [f"{more} more {LOG_PARAMETER}= names refused"]
    for name in series:
        problem = problems[name]
        if problem is not None:
            scales.switches[name] = Switch(None, f"no log scale: {problem}")
            continue
        on = name in scales.log
        chosen = [other for other in series if (other in scales.log) != (other == name)]
        query = urlencode([(LOG_PARAMETER, other) for other in chosen])
        text = f"{'linear' if on else 'log'} scale for {name}"
        scales.switches[name] = Switch(f"{path}?{query}" if query else path, text)
    return scales
