"""What the published survey claims about itself: where its points are, how its rows are ranked,
that non-finite results are listed, and which machine produced the bits.

These tests check the survey's own claims (docs/survey-torch-2.13-cpu.md's header), not torch's
bits: the rows are built by hand where a claim is about the document.
"""

from __future__ import annotations

import math

import pytest
import torch

from verifier.core.floats.dtypes import DTYPES, round_float
from verifier.core.floats.ordinals import neighbour, ordinal, ulps_apart
from verifier.core.ops import OPERATIONS, Operation, Region, Shape
from verifier.core.survey import (
    BITS_CAVEAT,
    Finding,
    machine,
    markdown,
    nonfinite_rows,
    ranked_failures,
    run_survey,
)
from verifier.core.survey_points import sample_points, smallest_subnormal, survey_points

PER_REGION = 6
"""Points per region in these tests: the centre and both neighbours of a ``near`` region
take 3, so 6 leaves room for the log-uniform offsets."""


def _values(points: list[dict[str, float]], variable: str) -> set[float]:
    return {point[variable] for point in points}


def _claim_holds(region: Region, points: list[dict[str, float]], dtype: str) -> bool:
    """Whether ``points`` show what ``region`` promises (verifier/core/survey_points.py)."""
    kind = DTYPES[dtype]
    values = _values(points, region.variable)
    if region.shape is Shape.NEAR:
        centre = round_float(region.at, kind)
        sides = {neighbour(centre, -1, kind), neighbour(centre, 1, kind)}
        return centre in values and sides <= values
    if region.shape is Shape.TAIL:
        top = kind.max_finite if region.end is None else min(region.end, kind.max_finite)
        start = min(region.start, top)
        inside = [v for v in values if start <= region.sign * v <= top]
        return len(inside) >= PER_REGION // 2
    if region.shape is Shape.GRID:
        on_grid = [v for v in values if region.low <= v <= region.high and v % region.step == 0]
        return bool(on_grid)
    assert region.of is not None
    return any(
        point[region.of] != 0
        and round_float(round(point[region.variable] / point[region.of]) * point[region.of], kind)
        == point[region.variable]
        for point in points
    )


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_every_special_region_of_every_operation_is_sampled_on_both_sides(dtype: str) -> None:
    missed = []
    for operation in OPERATIONS:
        points = survey_points(operation, DTYPES[dtype], 2, PER_REGION, seed=0)
        for region in operation.regions:
            if not _claim_holds(region, points, dtype):
                missed.append(f"{operation.name}: {region.what} ({region.shape})")
    assert missed == []


def test_every_operation_declares_its_special_regions_and_its_special_points_among_them() -> None:
    for operation in OPERATIONS:
        specials = [
            p["x"] for p in operation.specials if operation.variables == ("x",) and len(p) == 1
        ]
        near = {r.at for r in operation.regions if r.shape is Shape.NEAR}
        assert set(specials) <= near, operation.name
    # The regions the audit found failures in are declared (docs/survey-torch-2.13-cpu.md).
    declared = {op.name: {r.shape for r in op.regions} for op in OPERATIONS}
    for name in ("acosh", "atan", "asinh"):
        assert Shape.TAIL in declared[name], name
    for name in ("asin", "acos", "atanh"):
        [operation] = [op for op in OPERATIONS if op.name == name]
        assert {-1.0, 1.0} <= {r.at for r in operation.regions}, name
    assert Shape.MULTIPLES in declared["fmod"]
    assert Shape.GRID in declared["lgamma"] and Shape.GRID in declared["polygamma_n1"]
    [logit] = [op for op in OPERATIONS if op.name == "logit"]
    assert {0.0, 1.0} <= {r.at for r in logit.regions}


def test_acosh_in_float16_is_sampled_where_x_squared_overflows() -> None:
    # float16's largest number is 65504 (IEEE 754 binary16), so x**2 overflows from x = 256:
    # torch's acosh backward 1/sqrt(x**2 - 1) is 0 there.
    [acosh] = [op for op in OPERATIONS if op.name == "acosh"]
    points = survey_points(acosh, DTYPES["float16"], 10, 20, seed=0)
    assert sum(1 for p in points if p["x"] >= 256) >= 5


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_sampled_points_are_numbers_of_the_dtype_and_none_rounds_to_zero(dtype: str) -> None:
    kind = DTYPES[dtype]
    points = sample_points({"x": (-1e10, 1e10)}, 400, seed=1, dtype=kind)
    values = [p["x"] for p in points]
    assert all(round_float(v, kind) == v for v in values)
    assert all(v != 0 for v in values)
    magnitudes = sorted(abs(v) for v in values)
    # The log-uniform half reaches within a few binades of the subnormals and the top.
    assert magnitudes[0] < smallest_subnormal(kind) * 2.0**20
    assert magnitudes[-1] > min(1e10, kind.max_finite) / 1e3


def test_every_point_of_every_operation_is_a_number_of_its_dtype() -> None:
    for dtype in ("float32", "float16", "bfloat16"):
        kind = DTYPES[dtype]
        for operation in OPERATIONS:
            for point in survey_points(operation, kind, 4, 3, seed=0):
                for value in point.values():
                    assert round_float(value, kind) == value, (operation.name, dtype, value)


def test_ulps_keep_growing_where_the_ratio_stops() -> None:
    float64 = DTYPES["float64"]
    # One ulp of 1.0 in float64 is 2**-52 (IEEE 754 binary64).
    assert ulps_apart(1.0, 1.0 + 2.0**-52, float64) == 1.0
    assert ulps_apart(2.0, math.nextafter(2.0, 0.0), float64) == 1.0
    # autograd 0 against any exact value has error/allowed 1/tolerance; the ulps differ.
    near_underflow = ulps_apart(0.0, 1e-300, float64)
    larger = ulps_apart(0.0, 1.7e-17, float64)
    assert 2.0**52 < near_underflow < larger
    assert ulps_apart(-1.0, 1.0, float64) == 2 * ulps_apart(0.0, 1.0, float64)
    assert ulps_apart(math.nan, 1.0, float64) == math.inf
    # The ordinal of the smallest subnormal is 1 in every dtype.
    for kind in DTYPES.values():
        assert ordinal(smallest_subnormal(kind), kind) == 1


def _row(name: str, ulps: float, ratio: float, **counts: int) -> Finding:
    return Finding(
        name,
        f"{name}(x)",
        "float64",
        10,
        counts=dict(counts),
        worst_ulps=ulps,
        worst_ratio=ratio,
        worst_bits=0.0,
        worst_point={"x": 1.0},
        worst_entry="gradient x",
        worst_autograd=0.0,
        worst_reference=1e-17,
    )


def test_failures_are_ranked_by_ulps_not_by_the_capped_ratio() -> None:
    capped = 2.0**46  # 1 / float64's relative tolerance: every autograd 0 has this ratio
    rows = [
        _row("small", 1e17, capped, fail=1),
        _row("large", 4e18, capped, fail=1),
        _row("ratio", 1e3, 5e14, fail=1),
        _row("passing", 1e20, 0.5, **{"pass": 10}),
    ]
    assert [f.operation for f in ranked_failures(rows)] == ["large", "small", "ratio"]
    table = markdown(rows, {"command": "test"})
    failures = table.split("## Failures, worst first")[1].split("## Non-finite")[0]
    assert failures.index("`large(x)`") < failures.index("`small(x)`") < failures.index("ratio(")
    assert "worst 4e+18 ulps (0.0 correct bits, 7.04e+13 x allowed)" in failures


def test_a_row_with_nonfinite_entries_and_no_failure_is_listed() -> None:
    quiet = _row("quiet", 0.5, 0.1, **{"pass": 8, "nonfinite": 3})
    quiet.nonfinite_point = {"x": 0.0, "y": 0.0}
    quiet.nonfinite_entry = "gradient y"
    quiet.nonfinite_autograd = math.nan
    quiet.nonfinite_reference = 0.0
    quiet.nonfinite_detail = "autograd gave nan where the exact value is 0"
    quiet.nonfinite_blamed = {"quiet(x) (first backward)": 3}
    loud = _row("loud", 1e18, 1e13, fail=2, nonfinite=1)
    assert nonfinite_rows([loud, quiet]) == [quiet, loud]
    table = markdown([loud, quiet], {"command": "test"})
    assert "`quiet(x)`" not in table.split("## Failures, worst first")[1].split("## Non")[0]
    section = table.split("## Non-finite results")[1].split("## All operations")[0]
    assert (
        "- `quiet(x)` in float64 on cpu: 3 non-finite entries; e.g. at x=0.0, y=0.0 "
        "(gradient y: autograd nan, exact 0): autograd gave nan where the exact value is 0; "
        "blamed: quiet(x) (first backward) x3"
    ) in section
    assert "- `loud(x)` in float64 on cpu: 1 non-finite entries; also 2 failing" in section


def test_a_real_row_with_nonfinite_entries_and_no_failure_keeps_an_example_and_is_listed() -> None:
    # torch's xlogy backward at (0, 0) is x/y = 0/0 = NaN (derivatives.yaml: grad * self / other)
    # where the exact d/dy of xlogy along x = 0 is 0.
    xlogy = Operation(
        "xlogy", "xlogy(x, y)", ("xlogy",), {"x": (0.0, 0.0), "y": (0.0, 0.0)},
        specials=({"x": 0.0, "y": 0.0},), variables=("x", "y"),
    )  # fmt: skip
    [finding] = run_survey([xlogy], ["float64"], points=1, region_points=0)
    assert finding.error is None
    assert finding.counts.get("nonfinite") and not finding.counts.get("fail")
    assert finding.nonfinite_point == {"x": 0.0, "y": 0.0}
    assert finding.nonfinite_entry == "gradient y" and finding.nonfinite_detail
    assert math.isnan(finding.nonfinite_autograd or 0.0)
    section = markdown([finding], {"command": "test"}).split("## Non-finite results")[1]
    assert "- `xlogy(x, y)` in float64 on cpu: " in section


def test_the_header_names_the_cpu_capability_the_cpu_and_torch() -> None:
    bits = machine()
    assert bits["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert bits["torch"] == torch.__version__
    assert bits["cpu"]
    table = markdown([], {"command": "test", **bits})
    assert f"- cpu_capability: `{bits['cpu_capability']}`" in table
    assert f"- cpu: `{bits['cpu']}`" in table
    assert f"- torch: `{torch.__version__}`" in table
    assert BITS_CAVEAT in table


def test_further_paths_are_rows_of_their_own_and_their_disagreements_are_listed() -> None:
    # sinc at its special point 0: sinc''(0) = -pi**2/3 (hand, Taylor series). One row for the
    # default paths, one for forward-over-reverse, whose 1 point x 1 Hessian entry is judged
    # against -pi**2/3 like the default paths' own; its baseline is the default paths' count
    # of the same (Hessian) entries. Where the path fails, its published worst entry is
    # confirmed here: autograd outside 64 ulps of -pi**2/3.
    sinc = Operation("sinc", "sinc(x)", ("sinc",), {"x": (0.0, 0.0)}, specials=({"x": 0.0},))
    mode = "autograd:forward-over-reverse"
    default, path = run_survey([sinc], ["float64"], points=1, region_points=0, modes=mode)
    assert (default.mode, path.mode) == ("default", mode)
    assert sum(path.counts.values()) == sum(path.baseline.values()) == path.points
    curvature = -(math.pi**2) / 3
    if path.counts.get("fail"):
        assert path.worst_point == {"x": 0.0} and path.worst_entry == "hessian x,x"
        assert path.worst_reference == pytest.approx(curvature, rel=1e-15)
        autograd = path.worst_autograd
        assert autograd is None or abs(autograd - curvature) > 64 * 2.0**-52 * abs(curvature)
    document = markdown([default, path], {"command": "test"})
    assert "| operation | dtype | device | mode |" in document
    wrong = [path.counts.get(v, 0) for v in ("fail", "nonfinite")]
    listed = f"- `sinc(x)` in float64 along {mode}:" in document.split("## Paths that disagree")[1]
    assert listed == (wrong != [path.baseline.get(v, 0) for v in ("fail", "nonfinite")])


def test_a_survey_on_another_cpu_kernel_path_runs_in_processes_started_on_it() -> None:
    # torch reads ATEN_CPU_CAPABILITY once, when it loads: "default" makes it report DEFAULT
    # (torch.backends.cpu.get_cpu_capability), whatever this process runs on; each row says
    # which path gave it, and the document shows the column where rows ran on several.
    tanh = next(op for op in OPERATIONS if op.name == "tanh")
    [row] = run_survey([tanh], ["float32"], points=2, region_points=0, capabilities=["default"])
    assert row.error is None and row.cpu_capability == "DEFAULT"
    here = Finding("tanh", "tanh(x)", "float32", 2, cpu_capability="AVX2")  # another path
    both = markdown([row, here], {"command": "test"})
    single = markdown([row], {"command": "test"})
    assert "| kernels |" in both and "| kernels |" not in single
