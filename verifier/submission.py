"""Validation of a job request before anything is stored: every problem, with its location.

Expressions go through the core's safe parser (SymPy only, no torch), so a bad expression is
refused at the door with the problem and its position rather than failing later in a worker.
"""

from __future__ import annotations

import math
import re
from typing import Any

from verifier.config import Settings
from verifier.core.parse import ParsedExpression, parse_expression
from verifier.errors import ExpressionError, JobRejectedError
from verifier.schemas import CheckIn, JobIn

DECIMAL_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
"""A point given as text: a plain decimal number (no spaces, underscores or hex)."""


def validate_job(request: JobIn, settings: Settings) -> list[ParsedExpression]:
    """The parsed expression of every check; raises JobRejectedError listing every problem."""
    problems: list[dict[str, Any]] = []
    if len(request.checks) > settings.max_checks_per_job:
        raise JobRejectedError(
            [
                _problem(
                    ["body", "checks"],
                    f"{len(request.checks)} checks in one job, more than the limit of "
                    f"{settings.max_checks_per_job}",
                    "too_many_checks",
                )
            ]
        )
    parsed: list[ParsedExpression] = []
    for index, check in enumerate(request.checks):
        where: list[str | int] = ["body", "checks", index]
        try:
            expression = parse_expression(check.expression)
        except ExpressionError as error:
            problems.append(
                _problem(
                    [*where, "expression"],
                    f"check {index}: {error}",
                    "expression",
                    position=error.position,
                )
            )
            continue
        problems.extend(_check_options(check, expression, where, index, settings))
        parsed.append(expression)
    if problems:
        raise JobRejectedError(problems)
    return parsed


def _problem(
    loc: list[str | int], msg: str, kind: str, *, position: int | None = None
) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind, "position": position}


def _check_options(
    check: CheckIn,
    expression: ParsedExpression,
    where: list[str | int],
    index: int,
    settings: Settings,
) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    variables = set(expression.variables)
    if not check.points and check.samples is None:
        problems.append(
            _problem(
                [*where, "points"],
                f"check {index}: give points, or samples to draw them",
                "missing_points",
            )
        )
    points = check.points or []
    if len(points) > settings.max_points_per_check:
        problems.append(
            _problem(
                [*where, "points"],
                f"check {index}: {len(points)} points, more than the limit of "
                f"{settings.max_points_per_check}",
                "too_many_points",
            )
        )
        return problems
    for number, point in enumerate(points):
        problems.extend(_check_point(point, variables, expression, [*where, "points", number]))
    if check.samples is not None and check.samples > settings.max_samples_per_check:
        problems.append(
            _problem(
                [*where, "samples"],
                f"check {index}: {check.samples} samples, more than the limit of "
                f"{settings.max_samples_per_check}",
                "too_many_samples",
            )
        )
    for name, (low, high) in (check.domain or {}).items():
        loc = [*where, "domain", name]
        if name not in variables:
            problems.append(
                _problem(loc, f"check {index}: domain names {name!r}, not a variable", "domain")
            )
        elif not (math.isfinite(low) and math.isfinite(high) and low < high):
            problems.append(
                _problem(
                    loc,
                    f"check {index}: domain of {name!r} must be finite with low < high, "
                    f"got [{low}, {high}]",
                    "domain",
                )
            )
    return problems


def _check_point(
    point: dict[str, float | str],
    variables: set[str],
    expression: ParsedExpression,
    loc: list[str | int],
) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    label = f"check {loc[2]} point {loc[-1]}"
    for name in expression.variables:
        if name not in point:
            problems.append(_problem(loc, f"{label}: no value for variable {name!r}", "point"))
    for name, value in point.items():
        if name not in variables:
            problems.append(
                _problem(
                    [*loc, name],
                    f"{label}: {name!r} is not a variable of {expression.text!r}",
                    "point",
                )
            )
            continue
        try:
            number = float(value)
        except ValueError:
            number = math.nan
            problems.append(
                _problem([*loc, name], f"{label}: {name}={value!r} is not a number", "point")
            )
            continue
        if not math.isfinite(number):
            problems.append(
                _problem([*loc, name], f"{label}: {name}={value!r} is not finite", "point")
            )
        elif isinstance(value, str) and not DECIMAL_TEXT.fullmatch(value):
            problems.append(
                _problem(
                    [*loc, name], f"{label}: {name}={value!r} is not a decimal number", "point"
                )
            )
    return problems
