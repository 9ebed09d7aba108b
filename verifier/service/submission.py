"""Validation of a job request before anything is stored: every problem, with its location.

What a worker would refuse, the API refuses first, through the very functions the worker's
``check()`` calls (verifier/core): the safe parser and its variables, the tolerance, every
point's rounding to the dtype, the sampling options and the points limit. The core needs SymPy
only, not torch, so the API image stays small. Sampled points are not drawn here: their
options are validated, and their number counts against the limit of points per check.
Expressions are parsed by ``parse`` (the API passes its pool of parser processes, so that no
expression can hold the API; see verifier/core/guard.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from verifier.config import Settings
from verifier.core.floats.dtypes import DType, get_dtype
from verifier.core.floats.points import (
    check_point_count,
    check_point_names,
    check_samples,
    domain_range,
    round_value,
)
from verifier.core.guard import CheckedExpression, Parsed, check_expressions
from verifier.core.options import CheckOptions
from verifier.errors import ExpressionError, InputError, JobRejectedError, OptionError
from verifier.service.schemas import CheckIn, JobIn

Loc = list[str | int]


Parser = Callable[[Sequence[str]], list[Parsed]]
"""Parses expressions: each one's facts, or the ExpressionError that refuses it."""


def validate_job(
    request: JobIn, settings: Settings, parse: Parser = check_expressions
) -> list[CheckedExpression]:
    """The facts of every check's expression; raises JobRejectedError listing every problem."""
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
    parsed: list[CheckedExpression] = []
    outcomes = parse([check.expression for check in request.checks])
    for index, (check, expression) in enumerate(zip(request.checks, outcomes, strict=True)):
        where: Loc = ["body", "checks", index]
        if isinstance(expression, ExpressionError):
            message = f"check {index}: {expression}"
            problems.append(
                _problem(
                    [*where, "expression"], message, "expression", position=expression.position
                )
            )
            continue
        problems.extend(_check_options(check, expression, where, index, settings))
        parsed.append(expression)
    if problems:
        raise JobRejectedError(problems)
    return parsed


def _problem(loc: Loc, msg: str, kind: str, *, position: int | None = None) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind, "position": position}


def _check_options(
    check: CheckIn, expression: CheckedExpression, where: Loc, index: int, settings: Settings
) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    dtype = get_dtype(check.dtype)
    # The options as the worker resolves them; sampling is checked below against the
    # service's own limits, with each domain's variable located.
    fields = check.option_fields()
    try:
        CheckOptions.of(**{**fields, "samples": None, "domain": None})
    except OptionError as error:
        loc = [*where, error.option] if error.option in fields else where
        problems.append(_problem(loc, f"check {index}: {error}", "option"))
    problems.extend(_check_sampling(check, expression, where, index, settings))
    points = check.points or []
    if not points and check.samples is None:
        problems.append(
            _problem(
                [*where, "points"],
                f"check {index}: give points, or samples to draw them",
                "missing_points",
            )
        )
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
    samples = check.samples or 0
    try:
        if samples <= settings.max_samples_per_check:  # else refused above, for its own limit
            # The worker counts both together.
            check_point_count(len(points) + samples, settings.max_points_per_check)
    except InputError as error:
        field = "samples" if samples else "points"
        given = f"{len(points)} points and {samples} samples make " if samples else ""
        problems.append(
            _problem([*where, field], f"check {index}: {given}{error}", "too_many_points")
        )
    for number, point in enumerate(points):
        loc = [*where, "points", number]
        problems.extend(_check_point(point, expression.variables, dtype, loc, f"check {index}"))
    return problems


def _check_point(
    point: Mapping[str, float | str], variables: tuple[str, ...], dtype: DType, loc: Loc, label: str
) -> list[dict[str, Any]]:
    """The problems of one point, found as the worker's ``round_points`` finds them."""
    number = int(loc[-1])
    try:
        check_point_names(point, variables, index=number)
    except InputError as error:
        return [_problem(loc, f"{label} {error}", "point")]
    problems: list[dict[str, Any]] = []
    for name in variables:
        try:
            round_value(point[name], dtype, where=f"{label} point {number}, {name}")
        except InputError as error:
            problems.append(_problem([*loc, name], str(error), "point"))
    return problems


def _check_sampling(
    check: CheckIn, expression: CheckedExpression, where: Loc, index: int, settings: Settings
) -> list[dict[str, Any]]:
    """The problems of ``samples`` and ``domain`` (as the worker's ``sample_points`` finds them)."""
    problems: list[dict[str, Any]] = []
    if check.samples is None:
        if check.domain is not None:
            message = f"check {index}: domain is given without samples"
            problems.append(_problem([*where, "domain"], message, "domain"))
        return problems
    if check.samples > settings.max_samples_per_check:
        problems.append(
            _problem(
                [*where, "samples"],
                f"check {index}: {check.samples} samples, more than the limit of "
                f"{settings.max_samples_per_check}",
                "too_many_samples",
            )
        )
    else:
        try:
            check_samples(check.samples)
        except InputError as error:
            problems.append(_problem([*where, "samples"], f"check {index}: {error}", "samples"))
    for name, bounds in (check.domain or {}).items():
        try:
            domain_range(name, bounds, expression.variables, get_dtype(check.dtype))
        except InputError as error:
            problems.append(_problem([*where, "domain", name], f"check {index}: {error}", "domain"))
    return problems
