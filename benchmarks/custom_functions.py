"""What gradcheck/gradgradcheck and derivcheck find in custom autograd Functions.

A set of custom ``torch.autograd.Function``s for softplus, log(1 + exp(x)) (and one for GELU,
x*ndtr(x)), some correct and some with the bugs people write: a biased backward, a backward
computed under no_grad (no double backward), a sign bug for negative inputs, a forward that
only approximates its spec, a backward marked once-differentiable. Each is run through
``torch.autograd.gradcheck`` and ``gradgradcheck`` (float64, their default tolerances) and
through ``verifier.check_function`` at the same sampled points, and the script prints side by
side what each detects. It then finds the smallest relative bias of a backward that each one
detects, in float64 and float32 (gradcheck in float32 runs on float32 inputs, as a user with a
float32 model would; it is said when it fails the correct function too).

    python benchmarks/custom_functions.py [--points 16] [--seed 0] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch.autograd.function import once_differentiable

from verifier import check_function

SOFTPLUS = "log(1 + exp(x))"
GELU = "x*ndtr(x)"
DOMAIN = (-3.0, 3.0)
"""Where torch.sigmoid's own backward (used by the correct double backward) is accurate."""
BIASES = tuple(10.0**-k for k in range(1, 16))


def _softplus_function(
    backward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, once: bool = False
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A custom Function: softplus forward, the given backward(x, grad)."""

    def run_backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return backward(x, grad)

    class Softplus(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(x)
            return F.softplus(x)

        backward = staticmethod(once_differentiable(run_backward) if once else run_backward)

    return Softplus.apply


def correct_softplus() -> Callable[[torch.Tensor], torch.Tensor]:
    return _softplus_function(lambda x, g: g * torch.sigmoid(x))


def biased_softplus(bias: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return _softplus_function(lambda x, g: g * torch.sigmoid(x) * (1 + bias))


def _detached(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return g * torch.sigmoid(x)


def detached_softplus() -> Callable[[torch.Tensor], torch.Tensor]:
    return _softplus_function(_detached)


def sign_bug_softplus() -> Callable[[torch.Tensor], torch.Tensor]:
    return _softplus_function(lambda x, g: g * torch.sigmoid(torch.abs(x)))


def once_softplus() -> Callable[[torch.Tensor], torch.Tensor]:
    return _softplus_function(lambda x, g: g * torch.sigmoid(x), once=True)


class _Gelu(torch.autograd.Function):
    """GELU, x*ndtr(x), with its exact backward ndtr(x) + x*exp(-x**2/2)/sqrt(2 pi)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x * torch.special.ndtr(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        density = torch.exp(-x * x / 2) / math.sqrt(2 * math.pi)
        return grad * (torch.special.ndtr(x) + x * density)


class _GeluApproximation(torch.autograd.Function):
    """x*sigmoid(1.702 x), the usual fast approximation of GELU, with its own (consistent)
    backward: an approximating forward, checked against the exact GELU."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x * torch.sigmoid(1.702 * x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(1.702 * x)
        return grad * (s + 1.702 * x * s * (1 - s))


@dataclass(frozen=True)
class Case:
    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    spec: str
    buggy: bool


def cases() -> list[Case]:
    return [
        Case("correct softplus", correct_softplus(), SOFTPLUS, False),
        Case("correct gelu", _Gelu.apply, GELU, False),
        Case("biased backward (1e-6)", biased_softplus(1e-6), SOFTPLUS, True),
        Case("detached double backward", detached_softplus(), SOFTPLUS, True),
        Case("sign bug below zero", sign_bug_softplus(), SOFTPLUS, True),
        Case("approximating forward (gelu)", _GeluApproximation.apply, GELU, True),
        Case("once-differentiable backward", once_softplus(), SOFTPLUS, True),
    ]


@dataclass(frozen=True)
class Row:
    name: str
    buggy: bool
    gradcheck: str
    gradgradcheck: str
    derivcheck: str


def sample(points: int, seed: int, dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    low, high = DOMAIN
    values = low + (high - low) * torch.rand(points, generator=generator, dtype=torch.float64)
    return values.to(dtype)


def run_gradcheck(
    check: Callable[..., bool], fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> str:
    """``detected`` (it failed or raised), or ``passed``."""
    leaf = x.clone().requires_grad_(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # float32 inputs: gradcheck warns, and runs
            ok = check(fn, (leaf,), raise_exception=False)
    except Exception as error:  # noqa: BLE001  (raising is how it reports some bugs)
        return f"detected (raised {type(error).__name__})"
    return "passed" if ok else "detected"


def run_derivcheck(case: Case, x: torch.Tensor, dtype: str) -> str:
    report = check_function(case.fn, case.spec, [{"x": float(v)} for v in x], dtype=dtype)
    if report.verdict == "error":
        return f"detected (error: {report.reason})"
    if report.passed:
        return "passed"
    kinds = sorted({e.kind for e in report.entries if e.verdict in report.fail_on})
    return f"detected ({', '.join(kinds)})"


def detection_table(points: int, seed: int) -> list[Row]:
    x = sample(points, seed, torch.float64)
    rows = []
    for case in cases():
        rows.append(
            Row(
                case.name,
                case.buggy,
                run_gradcheck(torch.autograd.gradcheck, case.fn, x),
                run_gradcheck(torch.autograd.gradgradcheck, case.fn, x),
                run_derivcheck(case, x, "float64"),
            )
        )
    return rows


def smallest_detected_bias(points: int, seed: int) -> dict[str, dict[str, Any]]:
    """Per dtype, the smallest relative bias in the backward each tool detects."""
    result: dict[str, dict[str, Any]] = {}
    for dtype_name, dtype in (("float64", torch.float64), ("float32", torch.float32)):
        x = sample(points, seed, dtype)
        correct = correct_softplus()
        gradcheck_clean = run_gradcheck(torch.autograd.gradcheck, correct, x) == "passed"
        derivcheck_clean = run_derivcheck(Case("", correct, SOFTPLUS, False), x, dtype_name)
        found: dict[str, Any] = {
            "gradcheck": None,
            "derivcheck": None,
            "gradcheck passes the correct function": gradcheck_clean,
            "derivcheck passes the correct function": derivcheck_clean == "passed",
        }
        for bias in BIASES:
            fn = biased_softplus(bias)
            if gradcheck_clean and run_gradcheck(torch.autograd.gradcheck, fn, x) != "passed":
                found["gradcheck"] = bias
            case = Case("", fn, SOFTPLUS, True)
            if run_derivcheck(case, x, dtype_name) != "passed":
                found["derivcheck"] = bias
        result[dtype_name] = found
    return result


def _bias(value: float | None, clean: bool) -> str:
    if not clean:
        return "unusable (fails the correct function)"
    return "none detected" if value is None else f"{value:.0e}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=16, help="sampled points per case")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = detection_table(args.points, args.seed)
    biases = smallest_detected_bias(args.points, args.seed)
    print(f"custom autograd Functions, {args.points} points in {DOMAIN}, seed {args.seed}")
    width = max(len(r.name) for r in rows)
    header = (
        f"{'function':<{width}}  {'buggy':<5}  {'gradcheck':<26}  {'gradgradcheck':<26}  derivcheck"
    )
    print(header)
    for r in rows:
        print(
            f"{r.name:<{width}}  {'yes' if r.buggy else 'no':<5}  {r.gradcheck:<26}  "
            f"{r.gradgradcheck:<26}  {r.derivcheck}"
        )
    print("\nsmallest relative bias of the backward detected (biases 1e-1 .. 1e-15):")
    for dtype_name, found in biases.items():
        gradcheck = _bias(found["gradcheck"], found["gradcheck passes the correct function"])
        derivcheck = _bias(found["derivcheck"], found["derivcheck passes the correct function"])
        print(f"  {dtype_name}: gradcheck {gradcheck}; derivcheck {derivcheck}")
    results = {"points": args.points, "seed": args.seed, "rows": [asdict(r) for r in rows]}
    results["smallest_detected_bias"] = biases
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
