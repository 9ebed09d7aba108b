"""The catalogue of torch's elementwise operations that derivcheck covers, for the survey.

One :class:`Operation` per torch operation: the expression that calls it (by its name in
:mod:`verifier.core.expression.functions`), the names torch's own operator database (OpInfo) gives
it, and the default domain the survey samples, wide enough to reach its extremes, with its special
points (poles, roots, kinks, jumps). Operations of OpInfo that are left out are in
:data:`LEFT_OUT` with the reason. ``docs/functions.md`` describes each function.

This module is plain data: it imports neither torch nor SymPy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Domain = tuple[float, float]

WIDE = 1e4
HUGE = 1e10


@dataclass(frozen=True)
class Operation:
    """One covered torch operation, as the survey runs it.

    Attributes:
        name: the row's name (the function's name, with its parameters where they vary).
        expression: what is checked, e.g. ``softplus(x)``.
        opinfo: the OpInfo names (``op.name``) this row covers.
        domains: variable to (low, high) of the sampled points.
        specials: points added to every sample (poles, kinks, jumps, ends of the domain).
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


def _unary(
    name: str,
    low: float,
    high: float,
    *specials: float,
    expression: str | None = None,
    opinfo: str | None = None,
    hessian: bool = True,
    note: str = "",
) -> Operation:
    return Operation(
        name=name,
        expression=expression or f"{name}(x)",
        opinfo=(opinfo or name,),
        domains={"x": (low, high)},
        specials=tuple({"x": s} for s in specials),
        hessian=hessian,
        note=note,
    )


def _binary(
    name: str,
    x: Domain,
    y: Domain,
    *specials: tuple[float, float],
    expression: str | None = None,
    opinfo: str | None = None,
) -> Operation:
    return Operation(
        name=name,
        expression=expression or f"{name}(x, y)",
        opinfo=(opinfo or name,),
        domains={"x": x, "y": y},
        specials=tuple({"x": a, "y": b} for a, b in specials),
        variables=("x", "y"),
    )


NN = "nn.functional."

OPERATIONS: tuple[Operation, ...] = (
    _unary("abs", -WIDE, WIDE, 0.0, expression="abs(x)"),
    _unary("acos", -1, 1, -1.0, 0.0, 1.0),
    _unary("acosh", 1, HUGE, 1.0),
    _unary("asin", -1, 1, -1.0, 0.0, 1.0),
    _unary("asinh", -HUGE, HUGE, 0.0),
    _unary("atan", -HUGE, HUGE, 0.0),
    _unary("atanh", -1, 1, -1.0, 0.0, 1.0),
    _unary("ceil", -100, 100, 0.0, 2.0, -3.0, expression="ceil(x)"),
    _unary("floor", -100, 100, 0.0, 2.0, -3.0),
    _unary("trunc", -100, 100, 0.0, 2.0, -3.0),
    _unary("round", -100, 100, 0.5, 1.5, -2.5),
    _unary("frac", -100, 100, 0.0, 2.0, -3.0),
    _unary("positive", -WIDE, WIDE),
    _unary("neg", -WIDE, WIDE),
    _unary("nan_to_num", -WIDE, WIDE),
    _unary("cos", -WIDE, WIDE, 0.0, 1.5707963267948966),
    _unary("sin", -WIDE, WIDE, 0.0, 3.141592653589793),
    _unary("tan", -WIDE, WIDE, 0.0, 1.5707963267948966),
    _unary("cosh", -720, 720, 0.0),
    _unary("sinh", -720, 720, 0.0),
    _unary("tanh", -30, 30, 0.0, 10.0, 20.0),
    _unary("deg2rad", -WIDE, WIDE),
    _unary("rad2deg", -WIDE, WIDE),
    _unary("exp", -750, 720, 0.0),
    _unary("exp2", -1100, 1030, 0.0),
    _unary("expm1", -50, 720, 0.0, 1e-20),
    _unary("log", 0, HUGE, 0.0, 1.0),
    _unary("log1p", -1, HUGE, -1.0, 0.0, 1e-20),
    _unary("log2", 0, HUGE, 0.0, 1.0),
    _unary("log10", 0, HUGE, 0.0, 1.0),
    _unary("i0", -720, 720, 0.0),
    _unary("i1", -720, 720, 0.0, opinfo="special.i1"),
    _unary("i0e", -WIDE, WIDE, 0.0, opinfo="special.i0e"),
    _unary("i1e", -WIDE, WIDE, 0.0, opinfo="special.i1e"),
    _unary("relu", -10, 10, 0.0, opinfo=NN + "relu"),
    _unary("relu6", -10, 10, 0.0, 6.0, opinfo=NN + "relu6"),
    _unary("elu", -100, 100, 0.0, opinfo=NN + "elu"),
    _unary("celu", -100, 100, 0.0, opinfo=NN + "celu"),
    _unary("selu", -100, 100, 0.0, opinfo=NN + "selu"),
    _unary("silu", -100, 100, 0.0, opinfo=NN + "silu"),
    _unary("mish", -100, 100, 0.0, opinfo=NN + "mish"),
    _unary("logsigmoid", -100, 100, 0.0, opinfo=NN + "logsigmoid"),
    _unary("softsign", -100, 100, 0.0, opinfo=NN + "softsign"),
    _unary("tanhshrink", -100, 100, 0.0, 1e-5, opinfo=NN + "tanhshrink"),
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
    _unary("softplus", -50, 50, 0.0, 20.0, opinfo=NN + "softplus"),
    *(
        _unary(
            f"mvlgamma_p{p}",
            (p - 1) / 2,
            1000,
            expression=f"mvlgamma(x, {p})",
            opinfo="mvlgamma",
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
        )
        for n in range(5)
    ),
    _unary("reciprocal", -WIDE, WIDE, 0.0),
    _unary("rsqrt", 0, HUGE, 0.0),
    _unary("sqrt", 0, HUGE, 0.0),
    _unary("square", -WIDE, WIDE, 0.0),
    _unary("angle", -10, 10, 0.0),
    _unary("sgn", -10, 10, 0.0),
    _unary("sign", -10, 10, 0.0),
    _unary("sigmoid", -100, 100, 0.0),
    _unary("logit", 0, 1, 0.5),
    _unary("digamma", -10, 100, 0.0, -1.0),
    _unary("lgamma", -10, WIDE, 0.0, 1.0, 2.0, -0.5),
    _unary("erf", -6, 6, 0.0),
    _unary("erfc", -6, 30, 0.0),
    _unary("erfinv", -1, 1, 0.0, 0.999),
    _unary("sinc", -100, 100, 0.0, 1.0),
    _unary("entr", 0, 100, 0.0, 1.0, opinfo="special.entr"),
    _unary("erfcx", -25, WIDE, 0.0, opinfo="special.erfcx"),
    _unary("log_ndtr", -40, 10, 0.0, opinfo="special.log_ndtr"),
    _unary("ndtr", -40, 10, 0.0, opinfo="special.ndtr"),
    _unary("ndtri", 0, 1, 0.5, opinfo="special.ndtri"),
    _unary("gelu", -10, 10, 0.0, opinfo=NN + "gelu"),
    _unary("gelu_tanh", -10, 10, 0.0, opinfo=NN + "gelu"),
    _unary("hardswish", -6, 6, -3.0, 3.0, opinfo=NN + "hardswish"),
    _unary("leaky_relu", -10, 10, 0.0, opinfo=NN + "leaky_relu"),
    _binary("add", (-WIDE, WIDE), (-WIDE, WIDE)),
    _binary("sub", (-WIDE, WIDE), (-WIDE, WIDE)),
    _binary("rsub", (-WIDE, WIDE), (-WIDE, WIDE)),
    _binary("mul", (-WIDE, WIDE), (-WIDE, WIDE)),
    _binary("div", (-WIDE, WIDE), (-WIDE, WIDE), (1.0, 0.0)),
    _binary("atan2", (-10, 10), (-10, 10), (0.0, -1.0), (1.0, 0.0)),
    _binary("pow", (0, 10), (-10, 10), (0.0, 2.0), (1.0, 0.0)),
    _binary("clamp_max", (-10, 10), (-10, 10), (1.0, 1.0)),
    _binary("clamp_min", (-10, 10), (-10, 10), (1.0, 1.0)),
    _binary("fmax", (-10, 10), (-10, 10), (1.0, 1.0)),
    _binary("fmin", (-10, 10), (-10, 10), (1.0, 1.0)),
    _binary("maximum", (-10, 10), (-10, 10), (1.0, 1.0)),
    _binary("minimum", (-10, 10), (-10, 10), (1.0, 1.0)),
    _binary("copysign", (-10, 10), (-10, 10), (1.0, 0.0)),
    _binary("fmod", (-100, 100), (-10, 10), (6.0, 3.0)),
    _binary("remainder", (-100, 100), (-10, 10), (6.0, 3.0)),
    _binary("ldexp", (-10, 10), (-20, 20)),
    _binary("logaddexp", (-100, 100), (-100, 100), (1.0, 1.0)),
    _binary("hypot", (-WIDE, WIDE), (-WIDE, WIDE), (0.0, 1.0)),
    _binary("xlogy", (-10, 10), (0, 100), (0.0, 1.0)),
    _binary("xlog1py", (-10, 10), (-1, 100), (0.0, 1.0), opinfo="special.xlog1py"),
    _binary("prelu", (-10, 10), (-2, 2), (0.0, 0.25), opinfo=NN + "prelu"),
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
