"""The built-in suite that ``derivcheck demo`` runs: the seed's examples and checks of our own.

The first four are the seed document's examples; the rest cover the function families the
parser accepts, every dtype, sampled points, and the cases a derivative checker must get right:
cancellation in the expression as written (ill-conditioned), torch's own inaccurate derivatives
(fail, with the operation blamed), overflow (range), kinks (undefined, or fail where torch
applies a kink rule to a smooth composite), points outside the domain (domain).
"""

from __future__ import annotations

from typing import Any

SEED_EXAMPLES: tuple[dict[str, Any], ...] = (
    {"expression": "x**2 + 2*x", "points": [{"x": 2}]},
    {"expression": "3*x**2 + 2*x*y + y**2", "points": [{"x": 2, "y": 1}]},
    {"expression": "3*x**2", "points": [{"x": 2}], "nodes": True},
    # Cancellation in float32: 1 - cos(x) loses every digit near 0, its derivative too
    # (ill-conditioned: the expression as written, not autograd).
    {"expression": "(1 - cos(x))/x**2", "points": [{"x": "0.001"}], "dtype": "float32"},
)

_UNIT = {"x": [-1.0, 1.0]}
_POSITIVE = {"x": [0.1, 4.0]}

OWN_CHECKS: tuple[dict[str, Any], ...] = (
    {"expression": "sin(x)*cos(y)", "samples": 64, "domain": {"x": [-3, 3], "y": [-3, 3]}},
    {"expression": "exp(x)/(1 + exp(x))", "samples": 64, "domain": {"x": [-8, 8]}},
    {
        "expression": "exp(x)/(1 + exp(x))",
        "samples": 64,
        "domain": {"x": [-8, 8]},
        "dtype": "float32",
    },
    {"expression": "log(1 + exp(x))", "points": [{"x": -20}, {"x": 0}, {"x": 20}]},
    {"expression": "sqrt(x**2 + y**2)", "points": [{"x": 3, "y": 4}]},
    {"expression": "atan2(y, x)", "points": [{"x": 1, "y": 1}, {"x": -2, "y": "0.5"}]},
    {"expression": "tanh(x)", "samples": 128, "domain": {"x": [-5, 5]}, "dtype": "float32"},
    {"expression": "erf(x)", "samples": 32, "domain": {"x": [-3, 3]}},
    {"expression": "erfc(x)", "samples": 32, "domain": {"x": [-3, 3]}, "dtype": "float32"},
    {"expression": "sinc(x)", "points": [{"x": "0.5"}, {"x": "1.25"}]},
    {"expression": "gamma(x)", "points": [{"x": "2.5"}, {"x": "0.3"}]},
    {"expression": "loggamma(x)", "samples": 16, "domain": {"x": [0.5, 10]}},
    {"expression": "digamma(x)", "points": [{"x": 2}, {"x": "7.5"}]},
    {"expression": "asinh(x) + acosh(x + 2) + atanh(x/2)", "samples": 16, "domain": _UNIT},
    {"expression": "asin(x)*acos(x)", "samples": 16, "domain": {"x": [-0.9, 0.9]}},
    {"expression": "tan(x)", "points": [{"x": "1.5"}, {"x": "1.57"}]},
    {"expression": "sec(x) + csc(x) + cot(x)", "points": [{"x": "0.7"}]},
    {"expression": "cosh(x)*sinh(y)", "samples": 16, "domain": {"x": [-2, 2], "y": [-2, 2]}},
    {"expression": "x**y", "points": [{"x": 2, "y": 3}, {"x": "0.5", "y": "1.5"}]},
    {"expression": "x**3 - 2*x", "points": [{"x": "1.5"}], "dtype": "float16"},
    {"expression": "exp(x)", "points": [{"x": "0.5"}], "dtype": "bfloat16"},
    {"expression": "1/(1 + x**2)", "samples": 64, "domain": {"x": [-10, 10]}},
    {"expression": "x*log(x)", "samples": 32, "domain": _POSITIVE},
    {"expression": "cos(x)**2 + sin(x)**2", "samples": 32, "domain": {"x": [-6, 6]}},
    {"expression": "exp(-x**2/2)/sqrt(2*pi)", "samples": 32, "domain": {"x": [1, 3]}},
    {
        "expression": "sqrt((x2 - x1)**2 + (y2 - y1)**2)",
        "samples": 16,
        "domain": {"x1": [1, 5], "x2": [1, 5], "y1": [1, 5], "y2": [1, 5]},
    },
    {"expression": "log(cosh(x))", "points": [{"x": 10}], "dtype": "float32"},
    # Cancellation in float64: (exp(x) - 1)/x near 0 (ill-conditioned).
    {"expression": "(exp(x) - 1)/x", "points": [{"x": "1e-8"}]},
    {"expression": "sin(x)/x", "points": [{"x": "1e-4"}], "dtype": "float32"},
    # Overflow: exp(11.1) = 66275 is beyond float16; exp(100) overflows float32 on the way.
    {"expression": "exp(x)", "points": [{"x": "11.1"}], "dtype": "float16"},
    {"expression": "x*exp(x)/exp(x)", "points": [{"x": 100}], "dtype": "float32"},
    # A kink rule applied to a smooth composite: |x|*|x| = x**2, second derivative 2 at 0,
    # but torch's sign(0) = 0 gives 0 (fail, Abs blamed).
    {"expression": "Abs(x)*Abs(x)", "points": [{"x": 0}, {"x": "0.5"}]},
    # Kinks and steps: the derivative does not exist at 0.
    {"expression": "Abs(x)", "points": [{"x": 0}, {"x": "0.5"}]},
    {"expression": "Max(x, y)", "points": [{"x": 1, "y": 1}, {"x": 2, "y": 1}]},
    {"expression": "Piecewise((x**2, x < 0), (x, True))", "points": [{"x": 0}, {"x": 1}]},
    {"expression": "Heaviside(x)*x**2 + floor(y)", "points": [{"x": 1, "y": "0.5"}]},
    # Outside the domain: log of a negative number.
    {"expression": "log(x)", "points": [{"x": -1}]},
    {"expression": "sqrt(x)", "points": [{"x": 0}, {"x": 4}]},
    {"expression": "x**2*y + y**3", "points": [{"x": 1, "y": 2}], "strict": True, "nodes": True},
)


def demo_suite() -> list[dict[str, Any]]:
    """The demo's checks, as JSON objects for ``POST /jobs``."""
    return [dict(check) for check in (*SEED_EXAMPLES, *OWN_CHECKS)]
