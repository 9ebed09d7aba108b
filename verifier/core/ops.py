"""The catalogue of torch's elementwise operations that derivcheck covers, for the survey.

One :class:`Operation` per torch operation: the expression that calls it (by its name in
:mod:`verifier.core.expression.functions`), the names torch's own operator database (OpInfo) gives
it, the default domain the survey samples, its special points (poles, roots, kinks, jumps) and
its special regions (:class:`Region`: both sides of each special point, the tails where the
result rounds to a constant, exact integers and half-integers, multiples), which the survey
samples in every dtype besides the uniform and log-uniform points
(:mod:`verifier.core.survey_points`). Operations of OpInfo that are left out are in
:data:`LEFT_OUT` with the reason. ``docs/functions.md`` describes each function.

This module is plain data: it imports neither torch nor SymPy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

Domain = tuple[float, float]

WIDE = 1e4
HUGE = 1e10


class Shape(StrEnum):
    """How a :class:`Region` is laid out."""

    NEAR = "near"
    """A special value and both sides of it, from the neighbouring numbers out to half its
    magnitude (or to 1/2 for 0)."""
    TAIL = "tail"
    """Magnitudes from ``start`` to ``end`` (the dtype's largest finite number when None), of
    one sign, log-uniform: where the result or its derivatives round to a constant, 0 or
    overflow."""
    GRID = "grid"
    """Exact multiples of ``step`` in [low, high] (integers, half-integers) and the numbers
    next to them."""
    MULTIPLES = "multiples"
    """The variable at an integer multiple ``k`` (low <= k <= high) of the variable ``of``, and
    the numbers next to it (the jumps of fmod, the ties of maximum)."""


@dataclass(frozen=True)
class Region:
    """Where an operation is special, for one variable; the others are sampled as usual.

    Attributes:
        what: what is there, as the survey's documentation says it (``pole at 0``).
        shape: how the points are laid out (:class:`Shape`).
        variable: the variable the region is about.
        at: the special value (``near``).
        sign: +1 or -1, the side of a tail.
        start, end: the magnitudes a tail spans (``end`` None: the dtype's largest number).
        low, high, step: the grid, or the range of the integer factor of ``multiples``.
        of: the other variable of ``multiples``.
    """

    what: str
    shape: Shape
    variable: str = "x"
    at: float = 0.0
    sign: float = 1.0
    start: float = 1.0
    end: float | None = None
    low: float = 0.0
    high: float = 0.0
    step: float = 1.0
    of: str | None = None


def near(what: str, at: float, variable: str = "x") -> Region:
    """The value ``at`` of ``variable`` and both sides of it."""
    return Region(what, Shape.NEAR, variable, at=at)


def tail(
    what: str, sign: float, start: float = 1.0, end: float | None = None, variable: str = "x"
) -> Region:
    """Magnitudes from ``start`` to ``end`` of sign ``sign`` (``end`` None: to the dtype's
    largest finite number)."""
    return Region(what, Shape.TAIL, variable, sign=sign, start=start, end=end)


def both_tails(what: str, start: float = 1.0, end: float | None = None) -> tuple[Region, ...]:
    """The tails of x on both sides."""
    return (tail(what, 1.0, start, end), tail(what, -1.0, start, end))


def grid(what: str, low: float, high: float, step: float = 1.0, variable: str = "x") -> Region:
    """The exact multiples of ``step`` in [low, high] and their neighbours."""
    return Region(what, Shape.GRID, variable, low=low, high=high, step=step)


def multiples(what: str, variable: str, of: str, low: float, high: float) -> Region:
    """``variable`` at k times ``of`` (k an integer in [low, high]) and its neighbours."""
    return Region(what, Shape.MULTIPLES, variable, low=low, high=high, of=of)


@dataclass(frozen=True)
class Operation:
    """One covered torch operation, as the survey runs it.

    Attributes:
        name: the row's name (the function's name, with its parameters where they vary).
        expression: what is checked, e.g. ``softplus(x)``.
        opinfo: the OpInfo names (``op.name``) this row covers.
        domains: variable to (low, high) of the sampled points.
        specials: points added to every sample (poles, kinks, jumps, ends of the domain).
        regions: the special regions sampled in every dtype (a unary operation's special
            points are among them, as ``near`` regions).
        hessian: whether second derivatives are checked (False where torch has no double
            backward, and says so).
    """

    name: str
    expression: str
    opinfo: tuple[str, ...]
    domains: dict[str, Domain]
    specials: tuple[dict[str, float], ...] = ()
    hessian: bool = True
    note: str = ""
    variables: tuple[str, ...] = field(default=("x",))
    regions: tuple[Region, ...] = ()


def _unary(
    name: str,
    low: float,
    high: float,
    *specials: float,
    expression: str | None = None,
    opinfo: str | None = None,
    hessian: bool = True,
    note: str = "",
    regions: tuple[Region, ...] = (),
) -> Operation:
    return Operation(
        name=name,
        expression=expression or f"{name}(x)",
        opinfo=(opinfo or name,),
        domains={"x": (low, high)},
        specials=tuple({"x": s} for s in specials),
        hessian=hessian,
        note=note,
        regions=tuple(near(f"special point {s!r}", s) for s in specials) + regions,
    )


def _binary(
    name: str,
    x: Domain,
    y: Domain,
    *specials: tuple[float, float],
    expression: str | None = None,
    opinfo: str | None = None,
    regions: tuple[Region, ...] = (),
) -> Operation:
    return Operation(
        name=name,
        expression=expression or f"{name}(x, y)",
        opinfo=(opinfo or name,),
        domains={"x": x, "y": y},
        specials=tuple({"x": a, "y": b} for a, b in specials),
        variables=("x", "y"),
        regions=regions,
    )


NN = "nn.functional."

SATURATES = "tail where the result rounds to a constant"
OVERFLOWS = "tail where a local derivative overflows or underflows"
POLE = "pole"

OPERATIONS: tuple[Operation, ...] = (
    _unary("abs", -WIDE, WIDE, 0.0, expression="abs(x)"),
    _unary("acos", -1, 1, -1.0, 0.0, 1.0),
    _unary("acosh", 1, HUGE, 1.0, regions=(tail(OVERFLOWS + " (x**2 - 1)", 1.0, 2.0),)),
    _unary("asin", -1, 1, -1.0, 0.0, 1.0),
    _unary("asinh", -HUGE, HUGE, 0.0, regions=both_tails(OVERFLOWS + " (x**2 + 1)")),
    _unary("atan", -HUGE, HUGE, 0.0, regions=both_tails(SATURATES + " (pi/2)")),
    _unary("atanh", -1, 1, -1.0, 0.0, 1.0),
    _unary(
        "ceil",
        -100,
        100,
        0.0,
        2.0,
        -3.0,
        expression="ceil(x)",
        regions=(grid("jumps at the integers", -100, 100),),
    ),
    _unary("floor", -100, 100, 0.0, 2.0, -3.0, regions=(grid("jumps at the integers", -100, 100),)),
    _unary("trunc", -100, 100, 0.0, 2.0, -3.0, regions=(grid("jumps at the integers", -100, 100),)),
    _unary(
        "round",
        -100,
        100,
        0.5,
        1.5,
        -2.5,
        regions=(grid("jumps at the half-integers", -100.5, 100.5, 0.5),),
    ),
    _unary("frac", -100, 100, 0.0, 2.0, -3.0, regions=(grid("jumps at the integers", -100, 100),)),
    _unary("positive", -WIDE, WIDE),
    _unary("neg", -WIDE, WIDE),
    _unary("nan_to_num", -WIDE, WIDE),
    _unary("cos", -WIDE, WIDE, 0.0, 1.5707963267948966, 3.141592653589793),
    _unary("sin", -WIDE, WIDE, 0.0, 3.141592653589793, 1.5707963267948966),
    _unary("tan", -WIDE, WIDE, 0.0, 1.5707963267948966, -1.5707963267948966),
    _unary("cosh", -720, 720, 0.0, regions=both_tails(OVERFLOWS, 1.0, 720.0)),
    _unary("sinh", -720, 720, 0.0, regions=both_tails(OVERFLOWS, 1.0, 720.0)),
    _unary("tanh", -30, 30, 0.0, 10.0, 20.0, regions=both_tails(SATURATES + " (+-1)", 1.0, 400.0)),
    _unary("deg2rad", -WIDE, WIDE),
    _unary("rad2deg", -WIDE, WIDE),
    _unary("exp", -750, 720, 0.0, regions=both_tails(SATURATES + " (0) or overflows", 1.0, 750.0)),
    _unary(
        "exp2", -1100, 1030, 0.0, regions=both_tails(SATURATES + " (0) or overflows", 1.0, 1100.0)
    ),
    _unary(
        "expm1",
        -50,
        720,
        0.0,
        1e-20,
        regions=(tail(SATURATES + " (-1)", -1.0, 1.0, 60.0), tail(OVERFLOWS, 1.0, 1.0, 720.0)),
    ),
    _unary("log", 0, HUGE, 0.0, 1.0, regions=(tail(OVERFLOWS + " (1/x)", 1.0, 1.0),)),
    _unary("log1p", -1, HUGE, -1.0, 0.0, 1e-20, regions=(tail(OVERFLOWS + " (1/x)", 1.0, 1.0),)),
    _unary("log2", 0, HUGE, 0.0, 1.0, regions=(tail(OVERFLOWS + " (1/x)", 1.0, 1.0),)),
    _unary("log10", 0, HUGE, 0.0, 1.0, regions=(tail(OVERFLOWS + " (1/x)", 1.0, 1.0),)),
    _unary("i0", -720, 720, 0.0, regions=both_tails(OVERFLOWS, 1.0, 720.0)),
    _unary("i1", -720, 720, 0.0, opinfo="special.i1", regions=both_tails(OVERFLOWS, 1.0, 720.0)),
    _unary("i0e", -WIDE, WIDE, 0.0, opinfo="special.i0e", regions=both_tails(OVERFLOWS)),
    _unary("i1e", -WIDE, WIDE, 0.0, opinfo="special.i1e", regions=both_tails(OVERFLOWS)),
    _unary("relu", -10, 10, 0.0, opinfo=NN + "relu"),
    _unary("relu6", -10, 10, 0.0, 6.0, opinfo=NN + "relu6"),
    _unary("elu", -100, 100, 0.0, opinfo=NN + "elu", regions=(tail(SATURATES, -1.0, 1.0, 800.0),)),
    _unary(
        "celu", -100, 100, 0.0, opinfo=NN + "celu", regions=(tail(SATURATES, -1.0, 1.0, 800.0),)
    ),
    _unary(
        "selu", -100, 100, 0.0, opinfo=NN + "selu", regions=(tail(SATURATES, -1.0, 1.0, 800.0),)
    ),
    _unary("silu", -100, 100, 0.0, opinfo=NN + "silu", regions=both_tails(SATURATES, 1.0, 800.0)),
    _unary("mish", -100, 100, 0.0, opinfo=NN + "mish", regions=both_tails(SATURATES, 1.0, 800.0)),
    _unary(
        "logsigmoid",
        -100,
        100,
        0.0,
        opinfo=NN + "logsigmoid",
        regions=both_tails(SATURATES, 1.0, 800.0),
    ),
    _unary(
        "softsign",
        -100,
        100,
        0.0,
        opinfo=NN + "softsign",
        regions=both_tails(OVERFLOWS + " ((1 + |x|)**2)"),
    ),
    _unary(
        "tanhshrink",
        -100,
        100,
        0.0,
        1e-5,
        opinfo=NN + "tanhshrink",
        regions=both_tails(SATURATES, 1.0, 400.0),
    ),
    _unary("threshold", -5, 5, 0.5, expression="threshold(x, 0.5, 2)", opinfo=NN + "threshold"),
    _unary("softshrink", -5, 5, 0.5, -0.5, opinfo=NN + "softshrink"),
    _unary("hardshrink", -5, 5, 0.5, -0.5, opinfo=NN + "hardshrink"),
    _unary("hardtanh", -5, 5, -1.0, 1.0, opinfo=NN + "hardtanh"),
    _unary(
        "hardsigmoid",
        -6,
        6,
        -3.0,
        3.0,
        opinfo=NN + "hardsigmoid",
        hessian=False,
        note="no double backward in torch (hardsigmoid_backward has no derivative)",
    ),
    _unary(
        "softplus",
        -50,
        50,
        0.0,
        20.0,
        opinfo=NN + "softplus",
        regions=both_tails(SATURATES, 1.0, 800.0),
    ),
    *(
        _unary(
            f"mvlgamma_p{p}",
            (p - 1) / 2,
            1000,
            (p - 1) / 2,
            expression=f"mvlgamma(x, {p})",
            opinfo="mvlgamma",
            regions=(tail(OVERFLOWS, 1.0, 1.0),),
        )
        for p in (1, 3, 5)
    ),
    *(
        _unary(
            f"polygamma_n{n}",
            -10,
            100,
            0.0,
            -1.0,
            -0.5,
            expression=f"polygamma({n}, x)",
            opinfo="polygamma",
            regions=(
                grid("poles at the non-positive integers", -10, 0),
                grid("half-integers", -10.5, 10.5, 0.5),
                tail(OVERFLOWS + " (x**-n)", 1.0, 1.0),
            ),
        )
        for n in range(5)
    ),
    _unary("reciprocal", -WIDE, WIDE, 0.0, regions=both_tails(OVERFLOWS + " (1/x**2)")),
    _unary("rsqrt", 0, HUGE, 0.0, regions=(tail(OVERFLOWS + " (x**-1.5)", 1.0),)),
    _unary("sqrt", 0, HUGE, 0.0, regions=(tail(OVERFLOWS, 1.0),)),
    _unary("square", -WIDE, WIDE, 0.0, regions=both_tails(OVERFLOWS + " (x**2)")),
    _unary("angle", -10, 10, 0.0),
    _unary("sgn", -10, 10, 0.0),
    _unary("sign", -10, 10, 0.0),
    _unary("sigmoid", -100, 100, 0.0, regions=both_tails(SATURATES + " (0 or 1)", 1.0, 800.0)),
    _unary("logit", 0, 1, 0.5, 0.0, 1.0),
    _unary(
        "digamma",
        -10,
        100,
        0.0,
        -1.0,
        regions=(
            grid("poles at the non-positive integers", -10, 0),
            grid("half-integers", -10.5, 10.5, 0.5),
            tail(OVERFLOWS, 1.0, 1.0),
        ),
    ),
    _unary(
        "lgamma",
        -10,
        WIDE,
        0.0,
        1.0,
        2.0,
        -0.5,
        regions=(
            grid("poles at the non-positive integers, zeros at 1 and 2", -10, 2),
            grid("half-integers", -10.5, 10.5, 0.5),
            tail(OVERFLOWS, 1.0, 1.0),
        ),
    ),
    _unary("erf", -6, 6, 0.0, regions=both_tails(SATURATES + " (+-1)", 1.0, 40.0)),
    _unary("erfc", -6, 30, 0.0, regions=both_tails(SATURATES + " (0 or 2)", 1.0, 40.0)),
    _unary("erfinv", -1, 1, 0.0, 0.999, -1.0, 1.0),
    _unary("sinc", -100, 100, 0.0, 1.0, regions=(grid("zeros at the integers", -100, 100),)),
    _unary("entr", 0, 100, 0.0, 1.0, opinfo="special.entr", regions=(tail(OVERFLOWS, 1.0),)),
    _unary(
        "erfcx",
        -25,
        WIDE,
        0.0,
        opinfo="special.erfcx",
        regions=(tail(OVERFLOWS, -1.0, 1.0, 40.0), tail(SATURATES + " (0)", 1.0)),
    ),
    _unary(
        "log_ndtr",
        -40,
        10,
        0.0,
        opinfo="special.log_ndtr",
        regions=(tail(OVERFLOWS + " (x**2)", -1.0), tail(SATURATES + " (0)", 1.0, 1.0, 40.0)),
    ),
    _unary(
        "ndtr",
        -40,
        10,
        0.0,
        opinfo="special.ndtr",
        regions=both_tails(SATURATES + " (0 or 1)", 1.0, 40.0),
    ),
    _unary("ndtri", 0, 1, 0.5, 0.0, 1.0, opinfo="special.ndtri"),
    _unary("gelu", -10, 10, 0.0, opinfo=NN + "gelu", regions=both_tails(SATURATES, 1.0, 40.0)),
    _unary("gelu_tanh", -10, 10, 0.0, opinfo=NN + "gelu", regions=both_tails(SATURATES, 1.0, 40.0)),
    _unary("hardswish", -6, 6, -3.0, 3.0, opinfo=NN + "hardswish"),
    _unary("leaky_relu", -10, 10, 0.0, opinfo=NN + "leaky_relu"),
    _binary(
        "add",
        (-WIDE, WIDE),
        (-WIDE, WIDE),
        regions=(multiples("cancellation at x = -y", "x", "y", -1, -1),),
    ),
    _binary(
        "sub",
        (-WIDE, WIDE),
        (-WIDE, WIDE),
        regions=(multiples("cancellation at x = y", "x", "y", 1, 1),),
    ),
    _binary(
        "rsub",
        (-WIDE, WIDE),
        (-WIDE, WIDE),
        regions=(multiples("cancellation at x = y", "x", "y", 1, 1),),
    ),
    _binary(
        "mul",
        (-WIDE, WIDE),
        (-WIDE, WIDE),
        regions=(near("zero of x", 0.0), tail(OVERFLOWS, 1.0, 1.0), tail(OVERFLOWS, -1.0)),
    ),
    _binary(
        "div",
        (-WIDE, WIDE),
        (-WIDE, WIDE),
        (1.0, 0.0),
        regions=(
            near(POLE + " at y = 0", 0.0, "y"),
            near("zero of x", 0.0),
            tail(OVERFLOWS + " (y**2)", 1.0, variable="y"),
        ),
    ),
    _binary(
        "atan2",
        (-10, 10),
        (-10, 10),
        (0.0, -1.0),
        (1.0, 0.0),
        regions=(
            near("branch cut at x = 0", 0.0),
            near("y = 0", 0.0, "y"),
            tail(OVERFLOWS + " (x**2 + y**2)", 1.0),
            tail(OVERFLOWS + " (x**2 + y**2)", -1.0, variable="y"),
        ),
    ),
    _binary(
        "pow",
        (0, 10),
        (-10, 10),
        (0.0, 2.0),
        (1.0, 0.0),
        regions=(
            near("branch point at x = 0", 0.0),
            near("x = 1", 1.0),
            grid("integer exponents", -10, 10, variable="y"),
            grid("half-integer exponents", -10.5, 10.5, 0.5, variable="y"),
            tail(OVERFLOWS, 1.0),
        ),
    ),
    _binary(
        "clamp_max",
        (-10, 10),
        (-10, 10),
        (1.0, 1.0),
        regions=(multiples("kink at x = y", "x", "y", 1, 1),),
    ),
    _binary(
        "clamp_min",
        (-10, 10),
        (-10, 10),
        (1.0, 1.0),
        regions=(multiples("kink at x = y", "x", "y", 1, 1),),
    ),
    _binary(
        "fmax",
        (-10, 10),
        (-10, 10),
        (1.0, 1.0),
        regions=(multiples("kink at x = y", "x", "y", 1, 1),),
    ),
    _binary(
        "fmin",
        (-10, 10),
        (-10, 10),
        (1.0, 1.0),
        regions=(multiples("kink at x = y", "x", "y", 1, 1),),
    ),
    _binary(
        "maximum",
        (-10, 10),
        (-10, 10),
        (1.0, 1.0),
        regions=(multiples("kink at x = y", "x", "y", 1, 1),),
    ),
    _binary(
        "minimum",
        (-10, 10),
        (-10, 10),
        (1.0, 1.0),
        regions=(multiples("kink at x = y", "x", "y", 1, 1),),
    ),
    _binary(
        "copysign",
        (-10, 10),
        (-10, 10),
        (1.0, 0.0),
        regions=(near("jump at y = 0", 0.0, "y"), near("kink at x = 0", 0.0)),
    ),
    _binary(
        "fmod",
        (-100, 100),
        (-10, 10),
        (6.0, 3.0),
        regions=(
            multiples("jumps at x = k*y", "x", "y", -100, 100),
            near(POLE + " of x/y at y = 0", 0.0, "y"),
        ),
    ),
    _binary(
        "remainder",
        (-100, 100),
        (-10, 10),
        (6.0, 3.0),
        regions=(
            multiples("jumps at x = k*y", "x", "y", -100, 100),
            near(POLE + " of x/y at y = 0", 0.0, "y"),
        ),
    ),
    _binary(
        "ldexp",
        (-10, 10),
        (-20, 20),
        regions=(grid("integer exponents", -20, 20, variable="y"), tail(OVERFLOWS, 1.0)),
    ),
    _binary(
        "logaddexp",
        (-100, 100),
        (-100, 100),
        (1.0, 1.0),
        regions=(
            multiples("x = y", "x", "y", 1, 1),
            tail(SATURATES, 1.0, 1.0, 1000.0),
            tail(SATURATES, -1.0, 1.0, 1000.0),
        ),
    ),
    _binary(
        "hypot",
        (-WIDE, WIDE),
        (-WIDE, WIDE),
        (0.0, 1.0),
        regions=(
            near("zero of x", 0.0),
            near("zero of y", 0.0, "y"),
            tail(OVERFLOWS + " (x**2)", 1.0),
        ),
    ),
    _binary(
        "xlogy",
        (-10, 10),
        (0, 100),
        (0.0, 1.0),
        regions=(
            near("zero of x", 0.0),
            near("branch point at y = 0", 0.0, "y"),
            near("zero of log at y = 1", 1.0, "y"),
            tail(OVERFLOWS + " (1/y)", 1.0, 1.0, variable="y"),
        ),
    ),
    _binary(
        "xlog1py",
        (-10, 10),
        (-1, 100),
        (0.0, 1.0),
        opinfo="special.xlog1py",
        regions=(
            near("zero of x", 0.0),
            near("branch point at y = -1", -1.0, "y"),
            near("zero of log1p at y = 0", 0.0, "y"),
            tail(OVERFLOWS + " (1/(1 + y))", 1.0, 1.0, variable="y"),
        ),
    ),
    _binary(
        "prelu",
        (-10, 10),
        (-2, 2),
        (0.0, 0.25),
        opinfo=NN + "prelu",
        regions=(near("kink at x = 0", 0.0),),
    ),
)
"""Every covered operation, as the survey runs it."""

LEFT_OUT: dict[str, str] = {
    **{
        name: "a Python reflected operator: the same aten operation as the one it reflects "
        "(add, mul, sub, div, pow, remainder), with a number on the left; that row covers it"
        for name in ("__radd__", "__rmul__", "__rsub__", "__rdiv__", "__rpow__", "__rmod__")
    },
    **{
        name: "a dtype conversion, not a function of real numbers"
        for name in ("bfloat16", "half", "float", "double", "cfloat", "cdouble", "chalf")
    },
    "complex": "complex-valued result",
    "polar": "complex-valued result",
    "conj": "complex conjugate: the identity on real tensors (a view, no computation)",
    "conj_physical": "complex conjugate: the identity on real tensors",
    "real": "real part: the identity on real tensors (a view, no computation)",
    "fill": "a constant: the result does not depend on the input",
    "float_power": "computes in float64 whatever the input dtype; in float64 it is pow",
    "frexp": "two outputs (mantissa, exponent); the exponent is an integer",
    "nextafter": "torch has no derivative formula for it (derivatives.yaml: not_implemented)",
    "nn.functional.rrelu": "random slopes in training mode; in eval mode it is leaky_relu",
    "max": "torch.max(a, b) is torch.maximum under another name; the maximum row covers it",
    "min": "torch.min(a, b) is torch.minimum under another name; the minimum row covers it",
    "true_divide": "an alias of torch.div (true_divide(a, b) is accepted and checks torch.div)",
    "special.polygamma": "an alias of torch.polygamma; the polygamma rows cover it",
}
"""OpInfo names (differentiable, real floating point) that no row covers, with the reason."""


def covered_opinfo_names() -> set[str]:
    """Every OpInfo name some row covers."""
    return {name for operation in OPERATIONS for name in operation.opinfo}
