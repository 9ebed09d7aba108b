"""Safe parsing of expression strings into unevaluated SymPy trees.

SymPy's ``sympify`` and ``parse_expr`` call ``eval``; a name whitelist does not make that safe
(``sin.eval.__func__.__globals__`` reaches everything). So the string never reaches ``eval``:
it is parsed by Python's ``ast`` module, checked node by node against a whitelist, and the
SymPy tree is built here from the checked syntax tree with ``evaluate=False``, so that
``x/x`` and ``log(exp(x))`` stay as written.

>>> parse_expression("3*x**2 + 2*x*y + y**2").variables
('x', 'y')
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass

import sympy

from verifier.core.functions import ALIASES, CONSTANTS, FUNCTIONS
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
MAX_VARIABLES = 32
MAX_NAME_CHARS = 64

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


def parse_expression(text: str) -> ParsedExpression:
    """Check ``text`` against the whitelist and build its SymPy tree.

    Args:
        text: an expression in SymPy syntax; ``^`` also means power.

    Returns:
        The parsed expression.

    Raises:
        ExpressionError: a subclass naming what is wrong and its position.

    >>> parse_expression("x/x").expr
    x/x
    >>> parse_expression("__import__(os)")
    Traceback (most recent call last):
    ...
    verifier.errors.ForbiddenSyntaxError: names may not start with '_' ('__import__') at position 0
    """
    if not isinstance(text, str):
        raise ExpressionError(f"the expression must be a string, not {type(text).__name__}")
    _check_characters(text)
    # "^" means power; Python's precedence for "**" is the one users expect from it.
    python_text = text.replace("^", "**")
    try:
        tree = _syntax_tree(python_text)
        _check_shape(tree)
        builder = _Builder(python_text)
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


def _syntax_tree(text: str) -> ast.Expression:
    try:
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

    def __init__(self, source: str) -> None:
        self.source = source
        self.variables: list[str] = []
        self.functions: set[str] = set()

    def build(self, node: ast.AST) -> sympy.Basic:
        if isinstance(node, ast.BinOp):
            return self._binary(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.Constant):
            return _number(node, ast.get_source_segment(self.source, node) or "")
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
                _check_exponent(node.right)
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
            raise ForbiddenSyntaxError(
                "only named functions may be called", position=_position(node)
            )
        written = node.func.id
        _check_name(written, node.func)
        name = ALIASES.get(written, written)
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise UnknownFunctionError(
                f"unknown function {written!r}", position=_position(node), token=written
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
        if name == "sqrt":
            return sympy.Pow(args[0], sympy.S.Half, evaluate=False)
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


def _number(node: ast.Constant, source: str) -> sympy.Number:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ForbiddenSyntaxError(_describe(node), position=_position(node))
    source = source.replace("_", "")
    mantissa = source.lower().split("e")[0]
    digits = len(mantissa.replace(".", "").lstrip("0"))
    if digits > MAX_LITERAL_DIGITS:
        raise LimitError(
            f"number literal with more than {MAX_LITERAL_DIGITS} digits",
            limit="MAX_LITERAL_DIGITS",
            position=_position(node),
        )
    if isinstance(value, int):
        return sympy.Integer(value)
    if not math.isfinite(value):
        raise LimitError(
            "number literal out of range", limit="MAX_LITERAL_DIGITS", position=_position(node)
        )
    # The literal as written, as an exact rational: 0.1 means 1/10.
    return sympy.Rational(source)


def _check_exponent(node: ast.AST) -> None:
    """Refuse constant exponents too large to evaluate (``10**5000``, ``9**9**9``)."""
    magnitude = _constant_magnitude(node)
    if magnitude is not None and magnitude > MAX_EXPONENT_ABS:
        raise LimitError(
            f"constant exponent larger than {MAX_EXPONENT_ABS} in absolute value",
            limit="MAX_EXPONENT_ABS",
            position=_position(node),
        )


def _constant_magnitude(node: ast.AST) -> float | None:
    """Upper bound of |value| for pure-number arithmetic; None when not a plain constant."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        try:
            return abs(float(node.value))
        except OverflowError:
            return math.inf
    if isinstance(node, ast.UnaryOp):
        return _constant_magnitude(node.operand)
    if isinstance(node, ast.BinOp):
        left = _constant_magnitude(node.left)
        right = _constant_magnitude(node.right)
        if left is None or right is None:
            return None
        try:
            if isinstance(node.op, ast.Pow):
                return math.inf if right > MAX_EXPONENT_ABS else max(left, 1.0) ** right
            if isinstance(node.op, ast.Mult):
                return left * right
            if isinstance(node.op, ast.Add | ast.Sub):
                return left + right
            if isinstance(node.op, ast.Div):
                return left
        except OverflowError:
            return math.inf
    return None


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
