"""Our own translator from SymPy trees to torch programs.

One table, one entry per supported function (see ``docs/functions.md`` for what each becomes
and how torch behaves at its special points). Translation is memoised per node: each distinct
node of the SymPy tree is exactly one tensor, which is what makes node gradients well defined.
Constants are materialised in the check's dtype, rounded exactly once (see
:mod:`verifier.core.expression.literals`). A node whose torch operation has no derivative (Heaviside
and Piecewise are ``where`` of constants) still gets a tensor in the graph, so its node gradient
exists; its own derivative is 0, as it is off the jump. A literal parameter (``softplus``'s
beta) is handed to torch as the Python number its constant tensor holds, so torch and the
reference see the same rounded value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import sympy
import torch
import torch.nn.functional as F  # noqa: N812  (torch's own spelling)

from verifier.core.expression import registry
from verifier.core.expression import special as sp
from verifier.core.expression.custom import CustomFunction
from verifier.core.expression.functions import sinc
from verifier.core.expression.literals import round_literal
from verifier.core.expression.syntax import make_symbol
from verifier.core.floats.dtypes import DType

Tensor = torch.Tensor
Perturbation = Callable[[sympy.Basic, Tensor], Tensor]


def _reduce(op: Callable[[Tensor, Tensor], Tensor]) -> Callable[..., Tensor]:
    def apply(*args: Tensor) -> Tensor:
        result = args[0]
        for arg in args[1:]:
            result = op(result, arg)
        return result

    return apply


def _heaviside(u: Tensor, at_zero: Tensor | None = None) -> Tensor:
    # torch.heaviside has no derivative formula; a where() has derivative 0 off the jump.
    half = torch.full_like(u, 0.5) if at_zero is None else at_zero.expand_as(u).to(u.dtype)
    return torch.where(u > 0, torch.ones_like(u), torch.where(u < 0, torch.zeros_like(u), half))


def _gamma(u: Tensor) -> Tensor:
    # torch has no gamma function: exp(lgamma(u)) is |gamma(u)|; the sign alternates
    # between the poles at the non-positive integers.
    negative = 1 - 2 * torch.remainder(torch.ceil(-u), 2)
    sign = torch.where(u > 0, torch.ones_like(u), negative)
    return sign * torch.exp(torch.lgamma(u))


def _scalar(parameter: Tensor) -> float:
    """A literal parameter's value (its tensor may be expanded over the points)."""
    return float(parameter.reshape(-1)[0].item())


def _prelu(u: Tensor, weight: Tensor) -> Tensor:
    # torch.prelu takes one weight per channel (dim 1): the points become the channels.
    u, weight = torch.broadcast_tensors(u, weight)
    if u.dim() == 0:
        return torch.prelu(u.reshape(1, 1), weight.reshape(1)).reshape(())
    return torch.prelu(u.unsqueeze(0), weight).squeeze(0)


def _binary(op: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    # Some binary kernels refuse a 0-dim float tensor beside a 1-dim one of another dtype;
    # a broadcast view changes nothing in the values or the derivative formulas.
    def apply(a: Tensor, b: Tensor) -> Tensor:
        return op(*torch.broadcast_tensors(a, b))

    return apply


FUNCTIONS: dict[type, Callable[..., Tensor]] = {
    sympy.exp: torch.exp,
    sympy.log: torch.log,
    sympy.sin: torch.sin,
    sympy.cos: torch.cos,
    sympy.tan: torch.tan,
    sympy.cot: lambda u: torch.reciprocal(torch.tan(u)),
    sympy.sec: lambda u: torch.reciprocal(torch.cos(u)),
    sympy.csc: lambda u: torch.reciprocal(torch.sin(u)),
    sympy.asin: torch.asin,
    sympy.acos: torch.acos,
    sympy.atan: torch.atan,
    sympy.atan2: torch.atan2,
    sympy.sinh: torch.sinh,
    sympy.cosh: torch.cosh,
    sympy.tanh: torch.tanh,
    sympy.coth: lambda u: torch.reciprocal(torch.tanh(u)),
    sympy.sech: lambda u: torch.reciprocal(torch.cosh(u)),
    sympy.csch: lambda u: torch.reciprocal(torch.sinh(u)),
    sympy.asinh: torch.asinh,
    sympy.acosh: torch.acosh,
    sympy.atanh: torch.atanh,
    sympy.Abs: torch.abs,
    sympy.sign: torch.sign,
    sympy.Max: _reduce(torch.maximum),
    sympy.Min: _reduce(torch.minimum),
    sympy.Heaviside: _heaviside,
    sympy.floor: torch.floor,
    sympy.ceiling: torch.ceil,
    sympy.erf: torch.erf,
    sympy.erfc: torch.erfc,
    sympy.gamma: _gamma,
    sympy.loggamma: torch.lgamma,
    sympy.digamma: torch.digamma,
    sinc: torch.sinc,
    sympy.polygamma: lambda n, u: torch.polygamma(int(_scalar(n)), u),
    sp.log1p: torch.log1p,
    sp.expm1: torch.expm1,
    sp.exp2: torch.exp2,
    sp.log2: torch.log2,
    sp.log10: torch.log10,
    sp.reciprocal: torch.reciprocal,
    sp.square: torch.square,
    sp.neg: torch.neg,
    sp.positive: torch.positive,
    sp.nan_to_num: torch.nan_to_num,
    sp.deg2rad: torch.deg2rad,
    sp.rad2deg: torch.rad2deg,
    sp.sigmoid: torch.sigmoid,
    sp.logit: torch.logit,
    sp.erfinv: torch.erfinv,
    sp.ndtr: torch.special.ndtr,
    sp.ndtri: torch.special.ndtri,
    sp.log_ndtr: torch.special.log_ndtr,
    sp.erfcx: torch.special.erfcx,
    sp.i0: torch.i0,
    sp.i1: torch.special.i1,
    sp.i0e: torch.special.i0e,
    sp.i1e: torch.special.i1e,
    sp.entr: torch.special.entr,
    sp.lgamma: torch.lgamma,
    sp.silu: F.silu,
    sp.mish: F.mish,
    sp.gelu: F.gelu,
    sp.gelu_tanh: lambda u: F.gelu(u, approximate="tanh"),
    sp.logsigmoid: F.logsigmoid,
    sp.softsign: F.softsign,
    sp.tanhshrink: F.tanhshrink,
    sp.selu: F.selu,
    sp.relu: torch.relu,
    sp.relu6: F.relu6,
    sp.hardsigmoid: F.hardsigmoid,
    sp.hardswish: F.hardswish,
    sp.sgn: torch.sgn,
    sp.trunc: torch.trunc,
    sp.frac: torch.frac,
    sp.angle: torch.angle,
    sp.round: lambda u, decimals: torch.round(u, decimals=int(_scalar(decimals))),
    sp.mvlgamma: lambda u, p: torch.mvlgamma(u, int(_scalar(p))),
    sp.elu: lambda u, alpha: F.elu(u, alpha=_scalar(alpha)),
    sp.celu: lambda u, alpha: F.celu(u, alpha=_scalar(alpha)),
    sp.leaky_relu: lambda u, slope: F.leaky_relu(u, negative_slope=_scalar(slope)),
    sp.softplus: lambda u, beta, limit: F.softplus(u, beta=_scalar(beta), threshold=_scalar(limit)),
    sp.hardtanh: lambda u, low, high: F.hardtanh(u, _scalar(low), _scalar(high)),
    sp.threshold: lambda u, limit, value: F.threshold(u, _scalar(limit), _scalar(value)),
    sp.softshrink: lambda u, lambd: F.softshrink(u, _scalar(lambd)),
    sp.hardshrink: lambda u, lambd: F.hardshrink(u, _scalar(lambd)),
    sp.sub: torch.sub,
    sp.rsub: torch.rsub,
    sp.div: torch.div,
    sp.prelu: _prelu,
    sp.copysign: torch.copysign,
    sp.fmax: torch.fmax,
    sp.fmin: torch.fmin,
    sp.clamp_min: _binary(torch.clamp_min),
    sp.clamp_max: _binary(torch.clamp_max),
    sp.fmod: torch.fmod,
    sp.remainder: torch.remainder,
    sp.ldexp: torch.ldexp,
    sp.logaddexp: torch.logaddexp,
    sp.hypot: _binary(torch.hypot),
    sp.xlogy: torch.xlogy,
    sp.xlog1py: torch.special.xlog1py,
}
"""The torch operation each supported SymPy function becomes."""

_RELATIONS: dict[type, Callable[[Tensor, Tensor], Tensor]] = {
    sympy.StrictLessThan: torch.lt,
    sympy.LessThan: torch.le,
    sympy.StrictGreaterThan: torch.gt,
    sympy.GreaterThan: torch.ge,
}


_CONDITIONS = (sympy.logic.boolalg.BooleanAtom, sympy.core.relational.Relational)


def children(expr: sympy.Basic) -> tuple[sympy.Basic, ...]:
    """The subexpressions a node's tensor is computed from (Piecewise pairs flattened)."""
    if isinstance(expr, sympy.Piecewise):
        return tuple(part for pair in expr.args for part in pair.args)
    return tuple(expr.args)


def apply(expr: sympy.Basic, args: Sequence[Tensor]) -> Tensor:
    """The torch operation for node ``expr`` applied to its children's tensors."""
    if isinstance(expr, sympy.Add):
        return _reduce(torch.add)(*args)
    if isinstance(expr, sympy.Mul):
        return _reduce(torch.mul)(*args)
    if isinstance(expr, sympy.Pow):
        return _power(expr, args)
    if isinstance(expr, sympy.Piecewise):
        return _piecewise(args)
    relation = _RELATIONS.get(type(expr))
    if relation is not None:
        return relation(args[0], args[1])
    if isinstance(expr, CustomFunction):
        return call_custom(type(expr).__name__, registry.implementation, args)
    function = FUNCTIONS.get(type(expr))
    if function is None:
        raise NotImplementedError(f"no torch translation for {type(expr).__name__}")
    return function(*args)


class CustomFunctionError(RuntimeError):
    """A custom function (or the function under check) raised or returned something wrong;
    the message names it."""


def call_custom(
    name: str, implementation: Callable[[str], Callable[..., object]], args: Sequence[Tensor]
) -> Tensor:
    """Call a user's torch function with one tensor per argument, all of one shape (one value
    per point), and check that it returned a tensor of that shape and dtype."""
    try:
        impl = implementation(name)
    except LookupError as error:
        raise CustomFunctionError(str(error)) from None
    tensors = torch.broadcast_tensors(*args)
    shape, dtype = tensors[0].shape, tensors[0].dtype
    label = f"function {name!r} ({_callable_name(impl)})"
    try:
        result = impl(*tensors)
    except Exception as error:  # noqa: BLE001  (the user's code: reported with its name)
        first = str(error).splitlines()[0] if str(error) else ""
        batch = " (it is called with one tensor per argument holding every point)" * (
            len(shape) > 0
        )
        raise CustomFunctionError(
            f"{label} raised {type(error).__name__}: {first}{batch}"
        ) from None
    if not isinstance(result, Tensor):
        raise CustomFunctionError(f"{label} returned {type(result).__name__}, not a tensor")
    if result.shape != shape:
        raise CustomFunctionError(
            f"{label} returned shape {tuple(result.shape)} for inputs of shape {tuple(shape)}: "
            "it must return one value per point"
        )
    if result.dtype != dtype:
        raise CustomFunctionError(
            f"{label} returned {str(result.dtype).removeprefix('torch.')} for "
            f"{str(dtype).removeprefix('torch.')} inputs"
        )
    return result


def _callable_name(impl: object) -> str:
    module = getattr(impl, "__module__", None)
    name = getattr(impl, "__qualname__", None) or type(impl).__qualname__
    return f"{module}.{name}" if module else str(name)


def _power(expr: sympy.Basic, args: Sequence[Tensor]) -> Tensor:
    base, exponent = args
    power = expr.args[1]
    if isinstance(power, sympy.Integer):
        return torch.pow(base, int(power))
    if power == sympy.S.Half:
        return torch.sqrt(base)
    if power == -sympy.S.Half:
        return torch.rsqrt(base)
    return torch.pow(base, exponent)


def _piecewise(args: Sequence[Tensor]) -> Tensor:
    values, conditions = args[::2], args[1::2]
    result = torch.full_like(values[-1], float("nan"))
    for value, condition in zip(reversed(values), reversed(conditions), strict=True):
        result = torch.where(condition, value, result)
    return result


class Translation:
    """The torch program of one expression: one tensor per distinct node.

    Attributes:
        output: the expression's tensor, one value per point.
        tensors: every node's tensor, keyed by the SymPy node.
    """

    def __init__(
        self,
        expr: sympy.Expr,
        inputs: Mapping[str, Tensor],
        dtype: DType,
        device: torch.device,
        *,
        literal_dtype: DType | None = None,
        perturb: Perturbation | None = None,
    ):
        """Build the program; ``literal_dtype`` rounds the literals to another dtype than the
        tensors' (a float64 shadow of a float32 check), ``perturb`` wraps every operation's
        result (the conditioning analysis adds a perturbation there)."""
        self.fmt = dtype
        self.literal_dtype = literal_dtype or dtype
        self.dtype = dtype.torch
        self.device = device
        self.perturb = perturb
        self.tensors: dict[sympy.Basic, Tensor] = {}
        for name, tensor in inputs.items():
            self.tensors[make_symbol(name)] = tensor
        self.points = next(iter(inputs.values())).shape[0] if inputs else 1
        self.output = self._translate(expr)
        if self.output.dim() == 0:
            self.output = self.output.expand(self.points)

    def _translate(self, expr: sympy.Basic) -> Tensor:
        # Iterative post-order: expressions may nest up to the parser's depth limit.
        stack: list[tuple[sympy.Basic, bool]] = [(expr, False)]
        while stack:
            node, ready = stack.pop()
            if node in self.tensors:
                continue
            if node is sympy.true:
                self.tensors[node] = torch.tensor(True, device=self.device)
                continue
            if node.is_Number or node.is_NumberSymbol:
                self.tensors[node] = self.constant(node)
                continue
            if not ready:
                stack.append((node, True))
                stack.extend((child, False) for child in children(node))
                continue
            args = [self.tensors[c] for c in children(node)]
            result = apply(node, args)
            tracked = any(arg.requires_grad for arg in args)
            if tracked and result.is_floating_point() and not result.requires_grad:
                result = result.detach().requires_grad_(True)
            if self.perturb is not None:
                result = self.perturb(node, result)
            self.tensors[node] = result
        return self.tensors[expr]

    def constant(self, value: sympy.Basic) -> Tensor:
        """A 0-dim tensor holding ``value`` rounded once, exactly, to the literals' dtype."""
        rounded = round_literal(value, self.literal_dtype)
        return torch.tensor(rounded, dtype=self.dtype, device=self.device)


def program_order(expr: sympy.Expr) -> list[sympy.Basic]:
    """Nodes children-first, each once."""
    order: list[sympy.Basic] = []
    seen: set[sympy.Basic] = set()
    stack: list[tuple[sympy.Basic, bool]] = [(expr, False)]
    while stack:
        node, ready = stack.pop()
        if ready:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        stack.extend((child, False) for child in children(node) if child not in seen)
    return order


def differentiable_children(node: sympy.Basic) -> list[sympy.Basic]:
    """Distinct children that carry a derivative (not numbers, conditions or relations)."""
    if node.is_Relational or not node.free_symbols:
        return []
    return list(
        dict.fromkeys(
            child
            for child in children(node)
            if child.free_symbols and not isinstance(child, _CONDITIONS)
        )
    )
