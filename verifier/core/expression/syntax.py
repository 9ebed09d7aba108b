"""The expression syntax: a whitelisted Python syntax tree built into an unevaluated SymPy tree.

SymPy's ``sympify`` and ``parse_expr`` call ``eval``; a name whitelist does not make that safe
(``sin.eval.__func__.__globals__`` reaches everything). So the string never reaches ``eval``:
it is parsed by Python's ``ast`` module, checked node by node against a whitelist, and the
SymPy tree is built here from the checked syntax tree with ``evaluate=False``, so that
``x/x`` and ``log(exp(x))`` stay as written.

No big number is ever built: a literal is checked on its text (the one number syntax of
:mod:`verifier.core.floats.points`, its digits, its decimal exponent) before its value is read, and
a constant exponent is bounded from its parts (:class:`_Range`) without computing it.

>>> parse_syntax("3*x**2 + 2*x*y + y**2", lambda name: None).variables
('x', 'y')
"""

from __future__ import annotations

import ast
import difflib
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import sympy

from verifier.core.expression.custom import CustomFunction
from verifier.core.expression.functions import ALIASES, CONSTANTS, FUNCTIONS, FunctionSpec
from verifier.core.floats.points import MAX_DECIMAL_EXPONENT, decimal_in_range, parse_decimal
from verifier.errors import (
    ArityError,
    ExpressionError,
    ForbiddenSyntaxError,
    LimitError,
    UnknownFunctionError,
)

MAX_EXPRESSION_CHARS = 2000
MAX_SYNTAX_NODES = 500
MAX_NESTING_DEPTH = 64
MAX_SIGN_RUN = 8
MAX_LITERAL_DIGITS = 30
MAX_EXPONENT_ABS = 1000
"""Largest constant exponent, in absolute value; literals' own exponents are bounded by the
number syntax's ``MAX_DECIMAL_EXPONENT`` (verifier/core/floats/points.py)."""
MAX_VARIABLES = 32
MAX_NAME_CHARS = 64

Lookup = Callable[[str], type[CustomFunction] | None]
"""Custom function name -> its SymPy class, or None."""

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_RELATIONS = {ast.Lt: sympy.Lt, ast.LtE: sympy.Le, ast.Gt: sympy.Gt, ast.GtE: sympy.Ge}


@dataclass(frozen=True)
class ParsedExpression:
    """A checked expression: the unevaluated SymPy tree and what it uses.

    Attributes:
        text: the expression as submitted.
        expr: the SymPy tree, as written (not simplified).
        variables: variable names in order of first appearance.
        functions: the supported functions it calls, by canonical name.
    """

    text: str
    expr: sympy.Expr
    variables: tuple[str, ...]
    functions: frozenset[str]

    @property
    def symbols(self) -> tuple[sympy.Symbol, ...]:
        """The SymPy symbols of :attr:`variables`, in the same order."""
        return tuple(make_symbol(name) for name in self.variables)


def make_symbol(name: str) -> sympy.Symbol:
    """The SymPy symbol that stands for variable ``name`` (real-valued)."""
    return sympy.Symbol(name, real=True)


def parse_syntax(text: str, lookup: Lookup) -> ParsedExpression:
    """Check ``text`` against the whitelist and build its SymPy tree; a name that is not a
    built-in function is a custom function when ``lookup`` gives its class.

    :func:`verifier.core.expression.parse.parse_expression` is this with the registry's
    functions.

    Raises:
        ExpressionError: a subclass naming what is wrong and its position.

    >>> parse_syntax("x/x", lambda name: None).expr
    x/x
    """
    if not isinstance(text, str):
        raise ExpressionError(f"the expression must be a string, not {type(text).__name__}")
    _check_characters(text)
    # "^" means power; Python's precedence for "**" is the one users expect from it.
    python_text = text.replace("^", "**")
    try:
        tree = _syntax_tree(python_text)
        _check_shape(tree)
        builder = _Builder(python_text, lookup)
        expr = builder.build(tree.body)
    except ExpressionError as error:
        if error.position is not None:
            error.position = _original_position(text, error.position)
        raise
    if not isinstance(expr, sympy.Expr):
        raise ForbiddenSyntaxError("the expression must be a number-valued expression", position=0)
    return ParsedExpression(
        text=text,
        expr=expr,
        variables=tuple(builder.variables),
        functions=frozenset(builder.functions),
    )


def _original_position(text: str, position: int) -> int:
    """Map a column of the text with "^" spelled "**" back to the text as submitted."""
    original = 0
    rewritten = 0
    while original < len(text):
        width = 2 if text[original] == "^" else 1
        if rewritten + width > position:
            return original
        rewritten += width
        original += 1
    return len(text)


def _check_characters(text: str) -> None:
    if not text.strip():
        raise ExpressionError("the expression is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise LimitError(
            f"the expression has {len(text)} characters, more than {MAX_EXPRESSION_CHARS}",
            limit="MAX_EXPRESSION_CHARS",
            position=MAX_EXPRESSION_CHARS,
        )
    for position, char in enumerate(text):
        if char in " \t":
            continue
        if not (char.isascii() and char.isprintable()):
            raise ForbiddenSyntaxError(
                f"character {char!r} is not allowed (only printable ASCII)", position=position
            )
        if char in "'\"":
            raise ForbiddenSyntaxError("strings are not allowed", position=position)
    depth = 0
    sign_run = 0
    for position, char in enumerate(text):
        if char in "([":
            depth += 1
            if depth > MAX_NESTING_DEPTH:
                raise LimitError(
                    f"brackets nest deeper than {MAX_NESTING_DEPTH}",
                    limit="MAX_NESTING_DEPTH",
                    position=position,
                )
        elif char in ")]":
            depth -= 1
        if char in "+-":
            sign_run += 1
            if sign_run > MAX_SIGN_RUN:
                raise LimitError(
                    f"more than {MAX_SIGN_RUN} signs in a row",
                    limit="MAX_SIGN_RUN",
                    position=position,
                )
        elif char not in " \t":
            sign_run = 0


_AST_PARSE_LOCK = threading.Lock()
"""Held around every ``ast.parse`` of this module. CPython 3.11's AST constructor keeps its
recursion-depth counter in state shared by all threads; when a thread switch lands inside it
(the garbage collector running a finalizer, say), two parses corrupt each other's count and
one fails with ``SystemError: AST constructor recursion depth mismatch`` (cpython issue
106905). The API parses in a thread pool, so parses here take turns; one takes well under a
millisecond."""


def _syntax_tree(text: str) -> ast.Expression:
    try:
        with _AST_PARSE_LOCK:
            return ast.parse(text, mode="eval")
    except SyntaxError as error:
        position = (error.offset - 1) if error.offset else None
        message = error.msg.removeprefix("invalid syntax. ").rstrip(".")
        raise ForbiddenSyntaxError(f"syntax error: {message}", position=position) from None
    except (RecursionError, MemoryError, ValueError):
        raise LimitError(
            "the expression is too deeply nested to parse", limit="MAX_NESTING_DEPTH"
        ) from None


def _check_shape(tree: ast.Expression) -> None:
    """Refuse oversized trees before building anything (iterative: no recursion limit)."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, _BOOKKEEPING):
            continue
        count += 1
        if count > MAX_SYNTAX_NODES:
            raise LimitError(
                f"the expression has more than {MAX_SYNTAX_NODES} syntax nodes",
                limit="MAX_SYNTAX_NODES",
                position=_position(node),
            )
        if depth > MAX_NESTING_DEPTH:
            raise LimitError(
                f"the expression nests deeper than {MAX_NESTING_DEPTH}",
                limit="MAX_NESTING_DEPTH",
                position=_position(node),
            )
        family = _family(node)
        for child in ast.iter_child_nodes(node):
            # The left spine of a chain a + b + c is one n-ary node, not nesting.
            chained = (
                family is not None
                and child is getattr(node, "left", None)
                and _family(child) == family
            )
            stack.append((child, depth if chained else depth + 1))


_BOOKKEEPING = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop)
"""Syntax nodes that only label their parent (Load, Add, ...); not counted."""


def _position(node: ast.AST) -> int | None:
    return getattr(node, "col_offset", None)


class _Builder:
    """Builds the SymPy tree from a whitelisted syntax tree."""

    def __init__(self, source: str, lookup: Lookup) -> None:
        self.source = source
        self.lookup = lookup
        self.variables: list[str] = []
        self.functions: set[str] = set()
        self.constants = _Constants(source)

    def build(self, node: ast.AST) -> sympy.Basic:
        if isinstance(node, ast.BinOp):
            return self._binary(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.Constant):
            return _number(node, _segment(self.source, node))
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        raise ForbiddenSyntaxError(_describe(node), position=_position(node))

    def _binary(self, node: ast.BinOp) -> sympy.Expr:
        family = _family(node)
        if family is None:
            if isinstance(node.op, ast.Pow):
                left = self.build(node.left)
                right = self.build(node.right)
                self._check_exponent(node.right)
                return sympy.Pow(left, right, evaluate=False)
            symbol = _OPERATOR_SYMBOLS.get(type(node.op), type(node.op).__name__)
            raise ForbiddenSyntaxError(
                f"operator {symbol!r} is not allowed", position=_position(node)
            )
        # A chain a + b - c (or a * b / c) is one n-ary sum (product), as SymPy writes it;
        # walking it iteratively keeps long chains off the recursion stack.
        rights: list[tuple[ast.operator, ast.AST]] = []
        leftmost: ast.AST = node
        while isinstance(leftmost, ast.BinOp) and _family(leftmost) == family:
            rights.append((leftmost.op, leftmost.right))
            leftmost = leftmost.left
        terms = [self.build(leftmost)]
        for op, right in reversed(rights):
            term = self.build(right)
            if isinstance(op, ast.Sub):
                term = _negate(term)
            elif isinstance(op, ast.Div):
                term = sympy.Pow(term, -1, evaluate=False)
            terms.append(term)
        if family == "sum":
            return sympy.Add(*terms, evaluate=False)
        if terms[0] == sympy.S.One and isinstance(rights[-1][0], ast.Div):
            terms = terms[1:]  # 1/u is the reciprocal of u, not a product with 1
        return terms[0] if len(terms) == 1 else sympy.Mul(*terms, evaluate=False)

    def _check_exponent(self, node: ast.AST) -> None:
        """Refuse a constant exponent beyond MAX_EXPONENT_ABS (``10**5000``, ``x**(2/0.001)``)."""
        literal = _signed_literal(node, self.source)
        bound = None if literal is not None else self.constants.range(node)
        if literal is not None:
            within = abs(literal) <= MAX_EXPONENT_ABS  # exact: x**1000.000001 is refused
        else:
            within = bound is None or bound.at_most(MAX_EXPONENT_ABS)
        if within:
            return
        if bound is not None and bound.high == math.inf:
            reason = (
                f"constant exponent not provably within {MAX_EXPONENT_ABS} in absolute value "
                "(it divides by a value that may be 0)"
            )
        else:
            reason = f"constant exponent larger than {MAX_EXPONENT_ABS} in absolute value"
        raise LimitError(reason, limit="MAX_EXPONENT_ABS", position=_position(node))

    def _unary(self, node: ast.UnaryOp) -> sympy.Expr:
        operand = self.build(node.operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.USub):
            return _negate(operand)
        raise ForbiddenSyntaxError(
            f"unary operator {type(node.op).__name__} is not allowed", position=_position(node)
        )

    def _name(self, node: ast.Name) -> sympy.Expr:
        name = node.id
        _check_name(name, node)
        if name in CONSTANTS:
            return CONSTANTS[name]
        if self.lookup(name) is not None:
            raise ForbiddenSyntaxError(
                f"{name!r} is a custom function, not a variable: call it, {name}(...)",
                position=_position(node),
            )
        if name not in self.variables:
            if len(self.variables) >= MAX_VARIABLES:
                raise LimitError(
                    f"more than {MAX_VARIABLES} variables",
                    limit="MAX_VARIABLES",
                    position=_position(node),
                )
            self.variables.append(name)
        return make_symbol(name)

    def _call(self, node: ast.Call) -> sympy.Basic:
        if not isinstance(node.func, ast.Name):
            raise ForbiddenSyntaxError(_qualified_call(node.func), position=_position(node))
        written = node.func.id
        _check_name(written, node.func)
        name = ALIASES.get(written, written)
        spec = FUNCTIONS.get(name)
        if spec is None and (custom := self.lookup(name)) is not None:
            return self._custom(node, written, custom)
        if spec is None:
            raise UnknownFunctionError(
                f"unknown function {written!r}{_suggestion(written)}",
                position=_position(node),
                token=written,
            )
        if node.keywords:
            raise ForbiddenSyntaxError(
                f"keyword arguments are not allowed in {written}()",
                position=_position(node.keywords[0].value),
            )
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            raise ForbiddenSyntaxError(
                f"starred arguments are not allowed in {written}()", position=_position(node)
            )
        count = len(node.args)
        if spec.params:
            return self._parameterised(node, written, spec)
        if (spec.arity is not None and count != spec.arity) or (spec.arity is None and count < 2):
            expected = spec.arity if spec.arity is not None else "2 or more"
            raise ArityError(
                f"{written}() takes {expected} argument(s), got {count}",
                position=_position(node),
                token=written,
            )
        self.functions.add(name)
        if name == "Piecewise":
            return self._piecewise(node)
        args = [self.build(arg) for arg in node.args]
        if name in ("sqrt", "rsqrt"):
            half = sympy.S.Half if name == "sqrt" else -sympy.S.Half
            return sympy.Pow(args[0], half, evaluate=False)
        if name == "pow":
            self._check_exponent(node.args[1])
        assert spec.sympy_class is not None
        return spec.sympy_class(*args, evaluate=False)

    def _custom(self, node: ast.Call, written: str, custom: type[CustomFunction]) -> sympy.Expr:
        """A call of a custom function (verifier/core/expression/custom.py)."""
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise ForbiddenSyntaxError(
                f"only plain arguments are allowed in {written}()", position=_position(node)
            )
        expected = len(custom.declaration.args)
        if len(node.args) != expected:
            raise ArityError(
                f"{written}() takes {expected} argument(s), got {len(node.args)}",
                position=_position(node),
                token=written,
            )
        self.functions.add(written)
        args = [self.build(arg) for arg in node.args]
        return custom(*args, evaluate=False)

    def _parameterised(self, node: ast.Call, written: str, spec: FunctionSpec) -> sympy.Expr:
        """A call with literal parameters, each checked against its rule (docs/functions.md)."""
        arity = spec.arity or 0
        required = arity + sum(1 for p in spec.params if p.default is None)
        most = arity + len(spec.params)
        count = len(node.args)
        if not required <= count <= most:
            expected = str(most) if required == most else f"{required} to {most}"
            raise ArityError(
                f"{written}() takes {expected} argument(s), got {count}",
                position=_position(node),
                token=written,
            )
        self.functions.add(spec.name)
        positions = spec.parameter_positions(most)
        values: list[Fraction] = []
        args: list[sympy.Basic] = []
        for index in range(most):
            if index not in positions:
                args.append(self.build(node.args[index]))
                continue
            param = spec.params[positions.index(index)]
            if index >= count:
                assert param.default is not None
                values.append(param.default)
                args.append(sympy.Rational(param.default.numerator, param.default.denominator))
                continue
            arg = node.args[index]
            literal = _signed_literal(arg, self.source)
            where = f"{written}() parameter {param.name!r} (argument {index + 1})"
            if literal is None or not literal.is_finite():
                raise ExpressionError(f"{where} must be a number literal", position=_position(arg))
            value = Fraction(literal)
            problem = param.problem(value)
            if problem is not None:
                raise ExpressionError(f"{where} {problem}, got {literal}", position=_position(arg))
            values.append(value)
            args.append(self.build(arg))
        problem = spec.relation_problem(values)
        if problem is not None:
            raise ExpressionError(f"{written}() {problem}", position=_position(node))
        assert spec.sympy_class is not None
        return spec.sympy_class(*args, evaluate=False)

    def _piecewise(self, node: ast.Call) -> sympy.Expr:
        pieces = []
        for index, arg in enumerate(node.args):
            if not (isinstance(arg, ast.Tuple) and len(arg.elts) == 2):
                raise ForbiddenSyntaxError(
                    "Piecewise takes pairs (expression, condition)", position=_position(arg)
                )
            value_node, condition_node = arg.elts
            condition = self._condition(condition_node, last=index == len(node.args) - 1)
            pieces.append((self.build(value_node), condition))
        return sympy.Piecewise(*pieces, evaluate=False)

    def _condition(self, node: ast.AST, *, last: bool) -> sympy.Basic:
        if isinstance(node, ast.Constant) and node.value is True:
            if not last:
                raise ForbiddenSyntaxError(
                    "True may only be the last Piecewise condition", position=_position(node)
                )
            return sympy.true
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _RELATIONS:
            relation = _RELATIONS[type(node.ops[0])]
            left = self.build(node.left)
            right = self.build(node.comparators[0])
            return relation(left, right, evaluate=False)
        raise ForbiddenSyntaxError(
            "a Piecewise condition is one comparison (<, <=, >, >=) or True",
            position=_position(node),
        )


_OPERATOR_SYMBOLS = {
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
}


def _family(node: ast.AST) -> str | None:
    """``sum`` for + and -, ``product`` for * and /: operators that chain into one node."""
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Add | ast.Sub):
            return "sum"
        if isinstance(node.op, ast.Mult | ast.Div):
            return "product"
    return None


def _negate(expr: sympy.Basic) -> sympy.Expr:
    if isinstance(expr, sympy.Number):
        return -expr
    return sympy.Mul(sympy.S.NegativeOne, expr, evaluate=False)


def _check_name(name: str, node: ast.AST) -> None:
    if name.startswith("_"):
        raise ForbiddenSyntaxError(
            f"names may not start with '_' ({name!r})", position=_position(node), token=name
        )
    if len(name) > MAX_NAME_CHARS or not _NAME_RE.match(name):
        raise ForbiddenSyntaxError(
            f"invalid name {name[:MAX_NAME_CHARS]!r}", position=_position(node), token=name
        )


def _segment(source: str, node: ast.AST) -> str:
    """The text of ``node``: its columns of the one-line, ASCII-only source."""
    return source[getattr(node, "col_offset", 0) : getattr(node, "end_col_offset", None)]


_SHOWN_CHARS = 40
"""Longest part of a refused literal that its error message repeats."""


def _number(node: ast.Constant, source: str) -> sympy.Number:
    """The exact value of a literal, from its text, checked before any number is built."""
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ForbiddenSyntaxError(_describe(node), position=_position(node))
    exact = parse_decimal(source)
    if exact is None:
        shown = source if len(source) <= _SHOWN_CHARS else source[:_SHOWN_CHARS] + "..."
        raise ForbiddenSyntaxError(
            f"number literal {shown!r} is not a plain decimal number (digits, a point, an "
            "exponent; no hex, octal, binary or underscores)",
            position=_position(node),
        )
    digits = len(source.lower().partition("e")[0].replace(".", "").lstrip("0"))
    if digits > MAX_LITERAL_DIGITS:
        raise LimitError(
            f"number literal with more than {MAX_LITERAL_DIGITS} digits",
            limit="MAX_LITERAL_DIGITS",
            position=_position(node),
        )
    if not decimal_in_range(exact):
        raise LimitError(
            f"number literal with a decimal exponent beyond ±{MAX_DECIMAL_EXPONENT}",
            limit="MAX_DECIMAL_EXPONENT",
            position=_position(node),
        )
    # The literal as written, as an exact rational: 0.1 means 1/10.
    fraction = Fraction(exact)
    return sympy.Rational(fraction.numerator, fraction.denominator)


_LOG10_SLACK = 1e-9
"""Room for the rounding of a computed bound (in log10 units): ``x**(1/(1 - 0.999))``, whose
exponent is exactly 1000, passes."""


@dataclass(frozen=True)
class _Range:
    """What is known of a constant's value without computing it: log10 of its magnitude lies
    in [low, high] and its sign is ``sign`` (+1, -1; 0 when unknown). ``low`` is -inf when the
    value may be 0, ``high`` -inf when it is 0 and +inf when nothing bounds it."""

    low: float
    high: float
    sign: int

    @property
    def is_zero(self) -> bool:
        return self.high == -math.inf

    def at_most(self, limit: float) -> bool:
        """Whether the magnitude is at most ``limit`` (up to the rounding of the bound)."""
        return self.high <= math.log10(limit) + _LOG10_SLACK

    def signed(self) -> tuple[float, float]:
        """The least and the greatest value (floats, possibly infinite)."""
        small, large = _pow10(self.low), _pow10(self.high)
        if self.sign > 0:
            return small, large
        if self.sign < 0:
            return -large, -small
        return -large, large


_ZERO = _Range(-math.inf, -math.inf, 0)
_ONE = _Range(0.0, 0.0, 1)
_HALF = _Range(-math.log10(2.0), -math.log10(2.0), 1)
_UNBOUNDED = _Range(-math.inf, math.inf, 0)


class _Constants:
    """Bounds of the constant subtrees of one syntax tree (pure-number arithmetic: literals,
    ``pi``, + - * / **, and sqrt, Abs, Max, Min, floor, ceiling of such), each computed once,
    walking with a stack. Any other subtree (a variable, another function) has no bound and is
    not limited here."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._known: dict[int, _Range | None] = {}

    def range(self, root: ast.AST) -> _Range | None:
        """The bound of ``root``'s value; None when it is not a constant of the kinds above."""
        known = self._known
        stack: list[tuple[ast.AST, bool]] = [(root, False)]
        while stack:
            node, ready = stack.pop()
            if id(node) in known:
                continue
            operands = _operands(node)
            if not ready and operands:
                stack.append((node, True))
                stack.extend((operand, False) for operand in operands)
                continue
            parts = [known[id(operand)] for operand in operands]
            bounded = [part for part in parts if part is not None]
            known[id(node)] = self._combine(node, bounded) if len(bounded) == len(parts) else None
        return known[id(root)]

    def _combine(self, node: ast.AST, parts: list[_Range]) -> _Range | None:
        if isinstance(node, ast.Constant):
            exact = parse_decimal(_segment(self.source, node))
            return None if exact is None or not exact.is_finite() else _literal_range(exact)
        if isinstance(node, ast.Name):
            constant = CONSTANTS.get(node.id)
            return None if constant is None else _literal_range(Decimal(repr(float(constant))))
        if isinstance(node, ast.UnaryOp):
            (operand,) = parts
            if isinstance(node.op, ast.USub):
                return _Range(operand.low, operand.high, -operand.sign)
            return operand if isinstance(node.op, ast.UAdd) else None
        if isinstance(node, ast.BinOp):
            left, right = parts
            if isinstance(node.op, ast.Add):
                return _sum(left, right)
            if isinstance(node.op, ast.Sub):
                return _sum(left, _Range(right.low, right.high, -right.sign))
            if isinstance(node.op, ast.Mult):
                return _product(left, right)
            if isinstance(node.op, ast.Div):
                return _UNBOUNDED if right.is_zero else _product(left, _reciprocal(right))
            if isinstance(node.op, ast.Pow):
                return _power(left, right)
            return None
        if isinstance(node, ast.Call):
            return _call_range(_called(node), parts)
        return None


def _signed_literal(node: ast.AST, source: str) -> Decimal | None:
    """The exact value of a literal with any signs before it (``-1001``); None otherwise."""
    negative = False
    while isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        negative ^= isinstance(node.op, ast.USub)
        node = node.operand
    if not isinstance(node, ast.Constant):
        return None
    exact = parse_decimal(_segment(source, node))
    return None if exact is None else (-exact if negative else exact)


_BOUNDED_CALLS = frozenset({"sqrt", "Abs", "Max", "Min", "floor", "ceiling"})

TORCH_MODULES = frozenset({"torch", "torch.special", "torch.nn.functional", "F"})
"""Where torch's functions live, as users write them (``F`` for torch.nn.functional)."""
SUGGESTION_CUTOFF = 0.8
"""difflib's similarity above which a known name is suggested for an unknown one: 'digama'
gets digamma (0.92), 'foo' no floor (0.75)."""
SUGGESTIONS = 3


def _qualified_call(func: ast.expr) -> str:
    """Why a call of ``torch.special.digamma``, say, is refused, and what to write instead."""
    parts: list[str] = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name) or not parts:
        return "only named functions may be called"
    parts.append(func.id)
    dotted = ".".join(reversed(parts))
    module, _, name = dotted.rpartition(".")
    if module in TORCH_MODULES and ALIASES.get(name, name) in FUNCTIONS:
        return f"write {name}(...), not {dotted}(...): functions are called by their bare name"
    return f"only named functions may be called, not {dotted}(...){_suggestion(name)}"


def _suggestion(name: str) -> str:
    """`` (did you mean ...?)`` naming the known functions closest to ``name``, or ``""``."""
    known = sorted({*FUNCTIONS, *ALIASES})
    close = difflib.get_close_matches(name, known, n=SUGGESTIONS, cutoff=SUGGESTION_CUTOFF)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def _called(node: ast.Call) -> str | None:
    name = node.func.id if isinstance(node.func, ast.Name) else None
    return ALIASES.get(name, name) if name is not None else None


def _operands(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.BinOp):
        return [node.left, node.right]
    if isinstance(node, ast.UnaryOp):
        return [node.operand]
    if isinstance(node, ast.Call) and _called(node) in _BOUNDED_CALLS and node.args:
        return list(node.args)
    return []


def _literal_range(value: Decimal) -> _Range:
    if not value:
        return _ZERO
    exponent = value.adjusted()
    log = exponent + math.log10(float(abs(value).scaleb(-exponent)))
    return _Range(log, log, 1 if value > 0 else -1)


def _pow10(exponent: float) -> float:
    try:
        return 10.0**exponent
    except OverflowError:
        return math.inf


def _log10_sum(a: float, b: float) -> float:
    """log10(10**a + 10**b), without overflow."""
    top, bottom = max(a, b), min(a, b)
    if top == math.inf or bottom == -math.inf:
        return top
    return top + math.log10(1.0 + _pow10(bottom - top))


def _log10_gap(a: float, b: float) -> float:
    """log10(|10**a - 10**b|), without overflow; -inf when they are equal."""
    top, bottom = max(a, b), min(a, b)
    if top == math.inf:
        return top
    gap = -math.expm1((bottom - top) * math.log(10.0))  # 1 - 10**(bottom - top)
    return top + math.log10(gap) if gap > 0 else -math.inf


def _sum(a: _Range, b: _Range) -> _Range:
    if a.is_zero:
        return b
    if b.is_zero:
        return a
    if a.sign == b.sign != 0:  # one sign: the magnitudes add
        return _Range(_log10_sum(a.low, b.low), _log10_sum(a.high, b.high), a.sign)
    if a.sign == -b.sign != 0:  # opposite signs: |a + b| is at most the larger gap of the ends
        high = max(_log10_gap(a.low, b.high), _log10_gap(a.high, b.low))
    else:
        high = _log10_sum(a.high, b.high)
    if a.low > b.high:  # |a| > |b| throughout: a + b has a's sign and |a| - |b| at least
        return _Range(_log10_gap(a.low, b.high), high, a.sign)
    if b.low > a.high:
        return _Range(_log10_gap(b.low, a.high), high, b.sign)
    return _Range(-math.inf, high, 0)


def _reciprocal(a: _Range) -> _Range:
    return _Range(-a.high, -a.low, a.sign)


def _product(a: _Range, b: _Range) -> _Range:
    if a.is_zero or b.is_zero:
        return _ZERO
    return _Range(a.low + b.low, a.high + b.high, a.sign * b.sign)


def _power(base: _Range, exponent: _Range) -> _Range:
    if exponent.is_zero:
        return _ONE
    if exponent.high == math.inf:
        return _UNBOUNDED
    if base.is_zero:
        return _ZERO if exponent.sign > 0 else _UNBOUNDED
    if base.low == -math.inf or base.high == math.inf:
        return _UNBOUNDED
    # log10|base**e| = e * log10|base|: its extremes are at the corners.
    corners = [e * log for e in exponent.signed() for log in (base.low, base.high)]
    corners = [0.0 if math.isnan(corner) else corner for corner in corners]
    return _Range(min(corners), max(corners), 1 if base.sign > 0 else 0)


def _call_range(name: str | None, parts: list[_Range]) -> _Range | None:
    if name == "sqrt":
        return _power(parts[0], _HALF)
    if name == "Abs":
        return parts[0] if parts[0].is_zero else _Range(parts[0].low, parts[0].high, 1)
    if name in ("Max", "Min"):
        return _extreme(parts, largest=name == "Max")
    if name in ("floor", "ceiling"):
        return _rounded(parts[0], up=name == "ceiling")
    return None


def _extreme(parts: list[_Range], *, largest: bool) -> _Range:
    """The bound of Max (``largest``) or Min of values bounded by ``parts``."""
    signs = {part.sign for part in parts}
    if len(signs) == 1 and 0 not in signs:
        # One sign: the value is the part of largest magnitude (Max of positives, Min of
        # negatives) or of smallest, and so are its bounds.
        sign = signs.pop()
        pick = max if largest == (sign > 0) else min
        return _Range(pick(p.low for p in parts), pick(p.high for p in parts), sign)
    return _Range(min(p.low for p in parts), max(p.high for p in parts), 0)


def _rounded(value: _Range, *, up: bool) -> _Range:
    """The bound of floor(value), or of ceiling(value) when ``up``."""
    if value.is_zero:
        return _ZERO
    if value.sign == 0:
        return _Range(-math.inf, _log10_sum(value.high, 0.0), 0)  # |floor(a)| < |a| + 1
    if up == (value.sign < 0):
        # Toward 0: the magnitude shrinks, to 0 below 1 and to at least half of it from 1 on.
        low = value.low - math.log10(2.0) if value.low >= 0 else -math.inf
        return _Range(low, value.high, value.sign if low > -math.inf else 0)
    # Away from 0: the magnitude grows by less than 1.
    return _Range(value.low, _log10_sum(value.high, 0.0), value.sign)


def _describe(node: ast.AST) -> str:
    """Name a forbidden syntax construct for the user."""
    names = {
        ast.Attribute: "attribute access",
        ast.Subscript: "subscripts",
        ast.Lambda: "lambda",
        ast.NamedExpr: "assignment expressions (:=)",
        ast.JoinedStr: "f-strings",
        ast.ListComp: "comprehensions",
        ast.SetComp: "comprehensions",
        ast.DictComp: "comprehensions",
        ast.GeneratorExp: "generator expressions",
        ast.Compare: "comparisons outside Piecewise",
        ast.BoolOp: "boolean operators",
        ast.IfExp: "conditional expressions",
        ast.Tuple: "tuples outside Piecewise",
        ast.List: "lists",
        ast.Dict: "dicts",
        ast.Set: "sets",
        ast.Await: "await",
        ast.Yield: "yield",
        ast.Starred: "starred expressions",
        ast.Slice: "slices",
    }
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str | bytes):
            return "strings are not allowed"
        if isinstance(node.value, complex):
            return "complex literals are not allowed"
        return f"constant {node.value!r} is not allowed"
    return f"{names.get(type(node), type(node).__name__)} not allowed"
