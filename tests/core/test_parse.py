"""The safe parser: hostile strings are refused by name and position, and never evaluated.

Sources of the expected values:

- [functions] docs/functions.md: what an expression may use, the SymPy object each piece
  becomes (``^`` is power, ``a/b`` is ``Mul(a, Pow(b, -1))`` as written, the aliases, every
  other name a real variable);
- [errors] the hierarchy in ``verifier/errors.py`` (which class names which problem);
- [limits] the named limit constants in ``verifier/core/expression/parse.py``; positions of
  limit errors are derived by hand from the constant (e.g. the 65th "(" sits at index 64);
- [python] the Python Language Reference: ``**`` binds tighter than a unary minus on its left
  and groups right to left (6.5, "The power operator"); identifiers are NFKC-normalized while
  parsing (2.3, "Identifiers"), which is why look-alike letters must be refused before ``ast``;
  ``SyntaxError.offset`` is 1-based;
- [sympy] SymPy represents ``a/b`` as ``Mul(a, Pow(b, -1))`` ("Advanced Expression
  Manipulation" in the SymPy tutorial) and compares expressions structurally with ``==``;
  ``sympify``'s documentation warns that it uses ``eval`` on its input;
- [hostile-load] docs/hostile-load.md's rows: ``1e-30000000*x`` held the API 31 s and
  ``1e-9999999999*x`` more than 110 s; ``1e-4400*x`` ended as an internal error; hex literals
  bypassed the digit limit and division the exponent limit; ``ast.parse`` from the API's
  thread pool failed with a SystemError (cpython issue 106905);
- [number syntax] ``DECIMAL_NUMBER`` and ``MAX_DECIMAL_EXPONENT`` in
  ``verifier/core/floats/points.py``: the one syntax of numbers, in points and in expressions.

Positions are 0-based columns of the text as submitted, hand-counted.
"""

from __future__ import annotations

import ast
import gc
import operator
import sys
import threading
import time
from pathlib import Path
from typing import Any

import mpmath
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slowness import SLOWNESS

from verifier.core.expression.functions import FUNCTIONS, sinc
from verifier.core.expression.parse import parse_expression, require_variables
from verifier.core.expression.syntax import (
    MAX_EXPONENT_ABS,
    MAX_EXPRESSION_CHARS,
    MAX_NESTING_DEPTH,
    MAX_SIGN_RUN,
    MAX_SYNTAX_NODES,
    MAX_VARIABLES,
)
from verifier.errors import (
    ArityError,
    ExpressionError,
    ForbiddenSyntaxError,
    LimitError,
    UnknownFunctionError,
)

REFUSAL_BUDGET_S = 1.0 * SLOWNESS  # a guard against evaluation, not a benchmark

x, y = sympy.Symbol("x", real=True), sympy.Symbol("y", real=True)


def refuse(text: object) -> tuple[ExpressionError, float]:
    """Parse ``text``, expecting a refusal; return the error and the seconds it took."""
    started = time.perf_counter()
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text)  # type: ignore[arg-type]
    return caught.value, time.perf_counter() - started


def unevaluated_pow(base: sympy.Basic, exponent: sympy.Basic) -> sympy.Expr:
    return sympy.Pow(base, exponent, evaluate=False)


# (text, error class, accepted positions, limit name). Positions: an int is exact; a range
# is the span of the offending construct when more than one column names it fairly; None means
# no position applies. Limits: which named constant a LimitError must name [limits].
HOSTILE = [
    # [sympy] the payload that runs through sympify: refused at its first quote (index 11,
    # after the 10 characters of __import__ and the "(").
    ("__import__('os').system('echo pwned')", ForbiddenSyntaxError, 11, None),
    ("__import__", ForbiddenSyntaxError, 0, None),
    ("sin.eval.__func__.__globals__", ForbiddenSyntaxError, 0, None),
    ("().__class__.__bases__", ForbiddenSyntaxError, 0, None),
    ("x.__class__", ForbiddenSyntaxError, 0, None),
    ("x.real", ForbiddenSyntaxError, 0, None),
    ("lambda: 1", ForbiddenSyntaxError, 0, None),
    ("(lambda: 1)()", ForbiddenSyntaxError, 0, None),
    ("sin(x)(y)", ForbiddenSyntaxError, 0, None),
    ("x[0]", ForbiddenSyntaxError, 0, None),
    ("x[0:1]", ForbiddenSyntaxError, 0, None),
    ("'abc'", ForbiddenSyntaxError, 0, None),
    ('"abc"', ForbiddenSyntaxError, 0, None),
    ('f"{x}"', ForbiddenSyntaxError, 1, None),
    ("b'x'", ForbiddenSyntaxError, 1, None),
    ("[x for x in y]", ForbiddenSyntaxError, 0, None),
    ("{x for x in y}", ForbiddenSyntaxError, 0, None),
    ("{x: y for x in y}", ForbiddenSyntaxError, 0, None),
    ("sin(x for x in y)", ForbiddenSyntaxError, range(3, 5), None),
    ("(y := x)", ForbiddenSyntaxError, 1, None),
    ("sin(x=1)", ForbiddenSyntaxError, range(4, 7), None),  # the keyword "x=1" spans 4..6
    ("sin(*x)", ForbiddenSyntaxError, range(0, 5), None),  # the call, or the star at 4
    ("x if y else z", ForbiddenSyntaxError, 0, None),
    ("x and y", ForbiddenSyntaxError, 0, None),
    ("x or y", ForbiddenSyntaxError, 0, None),
    ("not x", ForbiddenSyntaxError, 0, None),
    ("~x", ForbiddenSyntaxError, 0, None),
    ("x < y", ForbiddenSyntaxError, 0, None),
    ("x == y", ForbiddenSyntaxError, 0, None),
    ("x % y", ForbiddenSyntaxError, range(0, 3), None),  # the operation, or "%" at 2
    ("x // y", ForbiddenSyntaxError, range(0, 3), None),
    ("x @ y", ForbiddenSyntaxError, range(0, 3), None),
    ("x | y", ForbiddenSyntaxError, range(0, 3), None),
    ("[x]", ForbiddenSyntaxError, 0, None),
    ("(x, y)", ForbiddenSyntaxError, 0, None),
    ("{x}", ForbiddenSyntaxError, 0, None),
    ("{x: y}", ForbiddenSyntaxError, 0, None),
    ("1j", ForbiddenSyntaxError, 0, None),
    ("True", ForbiddenSyntaxError, 0, None),
    ("None", ForbiddenSyntaxError, 0, None),
    ("...", ForbiddenSyntaxError, 0, None),
    ("await x", ForbiddenSyntaxError, 0, None),
    # [python] NFKC would turn the fullwidth letters into "exp"; they must be refused first.
    ("\uff45\uff58\uff50(x)", ForbiddenSyntaxError, 0, None),
    ("\u0445 + 1", ForbiddenSyntaxError, 0, None),  # Cyrillic "х" at 0
    ("x + \u0445", ForbiddenSyntaxError, 4, None),  # Cyrillic "х" at 4
    ("x\u200b", ForbiddenSyntaxError, 1, None),  # zero-width space
    ("x\u00a0+ 1", ForbiddenSyntaxError, 1, None),  # no-break space
    ("x\x00", ForbiddenSyntaxError, 1, None),
    ("x +\n1", ForbiddenSyntaxError, 3, None),
    ("x\r", ForbiddenSyntaxError, 1, None),
    ("import os", ForbiddenSyntaxError, 0, None),  # a statement: syntax error at "import"
    ("x; y", ForbiddenSyntaxError, 1, None),  # the semicolon
    ("x = 1", ForbiddenSyntaxError, range(0, 3), None),
    ("yield x", ForbiddenSyntaxError, 0, None),
    ("_x + 1", ForbiddenSyntaxError, 0, None),
    ("x + _", ForbiddenSyntaxError, 4, None),
    ("x + __builtins__", ForbiddenSyntaxError, 4, None),
    ("eval(x)", UnknownFunctionError, 0, None),
    ("exec(x)", UnknownFunctionError, 0, None),
    ("open(x)", UnknownFunctionError, 0, None),
    ("getattr(x, y)", UnknownFunctionError, 0, None),
    ("compile(x)", UnknownFunctionError, 0, None),
    ("x(1)", UnknownFunctionError, 0, None),  # a variable called as a function
    ("factorial(10**10)", UnknownFunctionError, 0, None),
    ("sin(x, y)", ArityError, 0, None),
    ("atan2(x)", ArityError, 0, None),
    ("Max(x)", ArityError, 0, None),
    ("sin()", ArityError, 0, None),
    # 9**(9**(9**9)): the exponent 9**9 = 387420489 of the middle power starts at index 6.
    ("9**9**9**9", LimitError, 6, "MAX_EXPONENT_ABS"),
    ("10**5000", LimitError, 4, "MAX_EXPONENT_ABS"),
    ("x**-1001", LimitError, 3, "MAX_EXPONENT_ABS"),
    ("exp(x)**(2**10)", LimitError, 9, "MAX_EXPONENT_ABS"),  # 1024, inside the brackets
    ("1" * 50, LimitError, 0, "MAX_LITERAL_DIGITS"),
    ("x + " + "7" * 50, LimitError, 4, "MAX_LITERAL_DIGITS"),
    # [number syntax] the decimal exponent 401 is beyond MAX_DECIMAL_EXPONENT (400).
    ("1e401", LimitError, 0, "MAX_DECIMAL_EXPONENT"),
    # [hostile-load] literals whose value has a huge exponent: refused on their text, in no time.
    ("1e-30000000*x", LimitError, 0, "MAX_DECIMAL_EXPONENT"),
    ("1e-9999999999*x", LimitError, 0, "MAX_DECIMAL_EXPONENT"),
    ("x + 1e-4400", LimitError, 4, "MAX_DECIMAL_EXPONENT"),
    ("x*1e" + "9" * 1990, LimitError, 2, "MAX_DECIMAL_EXPONENT"),
    ("x*0." + "0" * 1990 + "1", LimitError, 2, "MAX_DECIMAL_EXPONENT"),
    # [hostile-load] integer forms other than decimal: refused whatever their digits.
    ("0x1e" + "f" * 1990, ForbiddenSyntaxError, 0, None),  # "e" once hid its digits
    ("x + 0xff", ForbiddenSyntaxError, 4, None),
    ("0o777*x", ForbiddenSyntaxError, 0, None),
    ("0b101*x", ForbiddenSyntaxError, 0, None),
    ("1_000*x", ForbiddenSyntaxError, 0, None),
    ("x**1_0", ForbiddenSyntaxError, 3, None),
    # [hostile-load] exponents built by division, or by functions that keep magnitudes.
    ("x**(2/0.001)", LimitError, 4, "MAX_EXPONENT_ABS"),  # 2000
    ("x**(1/1e-300)", LimitError, 4, "MAX_EXPONENT_ABS"),  # 1e300
    ("2**(1/10**-999)*x", LimitError, 4, "MAX_EXPONENT_ABS"),  # 10**999
    ("x**(1/10**-4/10**-4)", LimitError, 4, "MAX_EXPONENT_ABS"),  # 10**8
    ("x**(1/(1 - 1))", LimitError, 4, "MAX_EXPONENT_ABS"),  # a division by 0
    ("x**floor(2/0.001)", LimitError, 3, "MAX_EXPONENT_ABS"),  # 2000
    ("x**sqrt(10**7)", LimitError, 3, "MAX_EXPONENT_ABS"),  # about 3162
    ("x**Max(1, 2000)", LimitError, 3, "MAX_EXPONENT_ABS"),
    ("x**-(2**10)", LimitError, 3, "MAX_EXPONENT_ABS"),  # -1024
    ("x**1000.000001", LimitError, 3, "MAX_EXPONENT_ABS"),  # a literal is compared exactly
    # The (MAX_NESTING_DEPTH + 1)-th "(" is at index MAX_NESTING_DEPTH.
    ("(" * 201 + "x" + ")" * 201, LimitError, MAX_NESTING_DEPTH, "MAX_NESTING_DEPTH"),
    # 3001 characters: the length limit is met before anything else.
    ("-" * 3000 + "x", LimitError, MAX_EXPRESSION_CHARS, "MAX_EXPRESSION_CHARS"),
    ("-" * (MAX_SIGN_RUN + 1) + "x", LimitError, MAX_SIGN_RUN, "MAX_SIGN_RUN"),
    ("+".join(["x"] * 2000), LimitError, MAX_EXPRESSION_CHARS, "MAX_EXPRESSION_CHARS"),
    ("x+" * 1000 + "x", LimitError, MAX_EXPRESSION_CHARS, "MAX_EXPRESSION_CHARS"),
    ("", ExpressionError, None, None),
    ("   \t  ", ExpressionError, None, None),
]


@pytest.mark.parametrize(("text", "error_class", "where", "limit"), HOSTILE, ids=repr)
def test_hostile_string_is_refused_by_name_and_position_quickly(
    text: str, error_class: type[ExpressionError], where: int | range | None, limit: str | None
) -> None:
    error, seconds = refuse(text)
    assert type(error) is error_class, f"{type(error).__name__}: {error}"
    if where is None:
        assert error.position is None
    elif isinstance(where, range):
        assert error.position in where, str(error)
    else:
        assert error.position == where, str(error)
        assert str(error).endswith(f"at position {where}")
    if limit is not None:
        assert isinstance(error, LimitError)
        assert error.limit == limit
    assert seconds < REFUSAL_BUDGET_S


def test_there_are_at_least_thirty_hostile_strings() -> None:
    # More than 30, so that a row removed by mistake cannot thin the list unnoticed.
    assert len(HOSTILE) >= 30


def test_refusal_of_an_unknown_function_names_the_token() -> None:
    error, _ = refuse("eval(x)")
    assert error.token == "eval"
    assert "eval" in str(error)


def test_refusal_of_a_wrong_arity_names_the_function() -> None:
    error, _ = refuse("atan2(x)")
    assert isinstance(error, ArityError)
    assert error.token == "atan2"


@pytest.mark.parametrize("value", [123, 1.5, b"x", None, ["x"]], ids=repr)
def test_non_string_input_is_refused(value: object) -> None:
    error, _ = refuse(value)
    assert type(error) is ExpressionError
    assert type(value).__name__ in str(error)


def test_too_many_variables_is_a_limit_error_at_the_first_extra_name() -> None:
    names = [f"v{i}" for i in range(MAX_VARIABLES + 1)]
    text = "Max(" + ", ".join(names) + ")"
    error, seconds = refuse(text)
    assert isinstance(error, LimitError)
    assert error.limit == "MAX_VARIABLES"
    assert error.position == text.index(names[-1])
    assert seconds < REFUSAL_BUDGET_S


def test_exactly_max_variables_is_accepted() -> None:
    names = [f"v{i}" for i in range(MAX_VARIABLES)]
    parsed = parse_expression("Max(" + ", ".join(names) + ")")
    assert parsed.variables == tuple(names)


def test_too_many_syntax_nodes_is_a_limit_error() -> None:
    # 600 arguments: 600 Name nodes plus the call, over MAX_SYNTAX_NODES expression nodes
    # while staying under the character limit (4 + 1199 + 1 characters).
    text = "Max(" + ",".join(["x"] * 600) + ")"
    assert len(text) <= MAX_EXPRESSION_CHARS
    assert 600 > MAX_SYNTAX_NODES
    error, seconds = refuse(text)
    assert isinstance(error, LimitError)
    assert error.limit == "MAX_SYNTAX_NODES"
    assert seconds < REFUSAL_BUDGET_S


def test_expression_of_exactly_max_chars_is_not_refused_for_length() -> None:
    text = "x" + " " * (MAX_EXPRESSION_CHARS - 1)
    assert parse_expression(text).variables == ("x",)


def test_payloads_that_would_write_files_are_refused_and_write_nothing(tmp_path: Path) -> None:
    touched = tmp_path / "pwned-by-system"
    opened = tmp_path / "pwned-by-open"
    escaped = tmp_path / "pwned-by-globals"
    # A payload without any quote: the command text built from chr() calls.
    quoteless = tmp_path / "pwned-quoteless"
    command = "+".join(f"chr({ord(c)})" for c in f"touch {quoteless}")
    payloads = [
        f"__import__('os').system('touch {touched}')",
        f"open('{opened}', 'w')",
        f"sin.eval.__func__.__globals__['__builtins__']['open']('{escaped}', 'w')",
        f"__import__(chr(111)+chr(115)).system({command})",
    ]
    for payload in payloads:
        assert len(payload) <= MAX_EXPRESSION_CHARS
        _, seconds = refuse(payload)  # any named refusal will do: what matters is no effect
        assert seconds < REFUSAL_BUDGET_S
    for path in (touched, opened, escaped, quoteless):
        assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_the_file_payload_is_live_through_sympify(tmp_path: Path) -> None:
    # The control for the test above, and [sympy]'s warning: SymPy's sympify evals its input,
    # so the very same payload does create the file when given to it (os.system returns 0).
    control = tmp_path / "created-by-sympify"
    result = sympy.sympify(f"__import__('os').system('touch {control}')")
    assert result == 0
    assert control.exists()


def test_the_public_check_refuses_a_payload_before_running_anything(tmp_path: Path) -> None:
    from verifier import check

    target = tmp_path / "pwned-through-check"
    with pytest.raises(ForbiddenSyntaxError):
        check(f"x + __import__('os').system('touch {target}')", at={"x": 1})
    assert not target.exists()


def test_caret_is_power_with_double_star_precedence() -> None:
    # [functions] "a ^ n" is power; [python] ** binds tighter than unary minus and groups right
    # to left, so the same must hold for ^ (not XOR).
    assert parse_expression("x^2 + 1").expr == parse_expression("x**2 + 1").expr
    assert parse_expression("x^2 + 1").expr == sympy.Add(
        unevaluated_pow(x, sympy.Integer(2)), sympy.Integer(1), evaluate=False
    )
    assert parse_expression("-x^2").expr == sympy.Mul(
        sympy.S.NegativeOne, unevaluated_pow(x, sympy.Integer(2)), evaluate=False
    )
    assert parse_expression("2^3^2").expr == unevaluated_pow(
        sympy.Integer(2), unevaluated_pow(sympy.Integer(3), sympy.Integer(2))
    )
    assert parse_expression("2*x^y").expr == parse_expression("2*x**y").expr


def test_error_positions_refer_to_the_original_text_after_a_caret() -> None:
    # "x^2 + y[0]": the subscript starts at index 6 as written (7 once ^ is spelled **).
    error, _ = refuse("x^2 + y[0]")
    assert isinstance(error, ForbiddenSyntaxError)
    assert error.position == 6
    # "x^2^2 + _a": "_a" at index 8 as written (10 with **).
    error, _ = refuse("x^2^2 + _a")
    assert isinstance(error, ForbiddenSyntaxError)
    assert error.position == 8
    # 9^(9^(9^9)): the exponent 9^9 of the middle power starts at index 4 as written.
    error, _ = refuse("9^9^9^9")
    assert isinstance(error, LimitError)
    assert error.limit == "MAX_EXPONENT_ABS"
    assert error.position == 4


@pytest.mark.parametrize(
    ("text", "exponent"),
    [
        ("x**1000", sympy.Integer(1000)),
        ("x**-1000", sympy.Integer(-1000)),
        # 1/(1 - 0.999) is exactly 1000: the bound of a computed exponent allows for rounding.
        ("x**(1/(1 - 0.999))", sympy.Integer(1000)),
        ("x**(1001 - 2)", sympy.Integer(999)),  # opposite signs: no room for cancellation lost
        ("x**(10**-5)", sympy.Rational(1, 10**5)),  # a tiny exponent, not a large one
        ("x**(2*pi)", 2 * sympy.pi),
        ("x**(10**999/10**998)", sympy.Integer(10)),
    ],
)
def test_constant_exponents_within_the_limit_are_accepted(text: str, exponent: sympy.Expr) -> None:
    # [limits] MAX_EXPONENT_ABS is 1000, inclusive; each exponent's value by hand.
    parsed = parse_expression(text).expr
    assert isinstance(parsed, sympy.Pow)
    assert sympy.simplify(parsed.exp - exponent) == 0


@pytest.mark.parametrize(
    ("text", "exact"),
    [
        # [number syntax] decimal exponents up to 400 either way; the exact values by hand.
        ("1e400*x", sympy.Integer(10) ** 400),
        ("1e-400*x", sympy.Rational(1, 10**400)),
        ("0.5e-399*x", sympy.Rational(5, 10**400)),
        ("1.E5*x", sympy.Integer(100000)),
    ],
)
def test_literals_at_the_ends_of_the_decimal_range_are_exact(
    text: str, exact: sympy.Rational
) -> None:
    parsed = parse_expression(text).expr
    assert isinstance(parsed, sympy.Mul)
    assert parsed.args[0] == exact


CONSTANT_LEAVES = ("0", "1", "2", "3", "7", "10", "0.5", "0.001", "1e-5", "1e5", "999", "pi")
CONSTANT_FORMS = (
    "({} + {})",
    "({} - {})",
    "({} * {})",
    "({} / {})",
    "({})**({})",
    "-({})",
    "sqrt({})",
    "Abs({})",
    "Max({}, {})",
    "Min({}, {})",
    "floor({})",
    "ceiling({})",
)


def _constant_forms(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(CONSTANT_FORMS), children, children).map(
        lambda t: t[0].format(t[1], t[2]) if t[0].count("{}") == 2 else t[0].format(t[1])
    )


constants = st.recursive(st.sampled_from(CONSTANT_LEAVES), _constant_forms, max_leaves=8)


def _value(node: ast.AST) -> Any:
    """The value of a constant of CONSTANT_FORMS by mpmath at 30 digits, independently of the
    parser's bounds; raises ZeroDivisionError or TypeError where it has none (1/0, Max of i)."""
    if isinstance(node, ast.Constant):
        return mpmath.mpf(str(node.value)) if isinstance(node.value, float) else node.value
    if isinstance(node, ast.Name):
        return mpmath.pi
    if isinstance(node, ast.UnaryOp):
        return -_value(node.operand)
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left), _value(node.right)
        operations = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}
        if isinstance(node.op, ast.Div):
            return mpmath.mpf(left) / right
        if isinstance(node.op, ast.Pow):
            return mpmath.power(left, right)
        return operations[type(node.op)](left, right)
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    functions = {
        "sqrt": mpmath.sqrt,
        "Abs": abs,
        "Max": max,
        "Min": min,
        "floor": mpmath.floor,
        "ceiling": mpmath.ceil,
    }
    return functions[node.func.id](*(_value(arg) for arg in node.args))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(constants)
def test_no_constant_exponent_beyond_the_limit_is_accepted(exponent: str) -> None:
    # [hostile-load] division once let x**(2/0.001) through. Whatever a constant exponent is
    # built from, it is accepted only if its value (mpmath's, to 30 digits) is within
    # MAX_EXPONENT_ABS.
    try:
        parse_expression(f"x**({exponent})")
    except ExpressionError:
        return
    with mpmath.workdps(30):
        try:
            value = _value(ast.parse(exponent, mode="eval").body)
        except (ZeroDivisionError, TypeError):  # 1/0, or Max of a complex number
            return
        assert abs(value) <= MAX_EXPONENT_ABS * (1 + 1e-9), f"{exponent} = {value}"


def test_a_literal_is_refused_before_its_value_is_built() -> None:
    # [hostile-load] 1e-9999999999 once built 10**9999999999: minutes. On its text it takes
    # microseconds; 10 ms (scaled) is a guard with room for a slow machine.
    started = time.perf_counter()
    for _ in range(100):
        refuse("1e-9999999999*x")
    assert (time.perf_counter() - started) / 100 < 0.01 * SLOWNESS


def test_no_literal_form_escapes_as_anything_but_an_expression_error() -> None:
    # [hostile-load] 1e-4400 once raised ValueError (an internal error in the worker). Every
    # literal form Python knows, at and beyond each limit, is either a number or an
    # ExpressionError.
    forms = [
        "1e-4400", "1e4400", "1e-401", "1e401", "9" * 31, "9" * 30, "0x10", "0X1F", "0o17",
        "0b11", "1_0", "1__0", "1e1_0", "0.5_5", "1j", "1e5j", "00", "000.5", ".5", "5.",
        "1e-0", "1E+05", "0e999999", "0.0e-99999999999", "4" * 1999,
    ]  # fmt: skip
    for form in forms:
        try:
            parse_expression(f"x*{form}")
        except ExpressionError:
            pass


PARSES_PER_THREAD = 100


def test_many_threads_parsing_at_once_all_succeed() -> None:
    # [hostile-load] CPython 3.11 keeps the AST constructor's recursion depth in state that all
    # threads share (cpython issue 106905): a thread switch inside it, here forced by the
    # collector running finalizers of garbage cycles, made ast.parse fail with "AST constructor
    # recursion depth mismatch" in 11 to 119 of the 800 parses of this load (five runs on
    # CPython 3.11.7 without the lock). parse_expression takes turns; every parse must succeed
    # and give the same tree.
    texts = ["(" * 30 + "x + 1" + ")" * 30, " + ".join(f"sin(x{i % 16})*y**2" for i in range(40))]
    expected = [parse_expression(text).expr for text in texts]
    failures: list[str] = []

    class Finalized:
        def __del__(self) -> None:
            sum(range(20))

    def parse_many() -> None:
        for i in range(PARSES_PER_THREAD):
            for _ in range(20):
                garbage = Finalized()
                garbage.cycle = garbage  # type: ignore[attr-defined]
            try:
                if parse_expression(texts[i % 2]).expr != expected[i % 2]:
                    failures.append("a different tree")
            except Exception as error:  # any failure at all is what this test looks for
                failures.append(f"{type(error).__name__}: {error}")

    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    gc.set_threshold(100)
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=parse_many) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)
    assert failures == [], (
        f"{len(failures)} of {8 * PARSES_PER_THREAD} parses failed: {failures[0]}"
    )


def test_an_expression_without_variables_is_refused_by_require_variables() -> None:
    # [errors] ExpressionError, with no position: the whole expression is the problem.
    with pytest.raises(ExpressionError, match="no variables to differentiate by") as caught:
        require_variables(parse_expression("2*pi + 10**3"))
    assert caught.value.position is None
    parsed = parse_expression("2*x")
    assert require_variables(parsed) is parsed


def test_x_over_x_stays_unevaluated() -> None:
    # [functions] x/x reaches the translator as written; [sympy] a/b is Mul(a, Pow(b, -1)).
    expr = parse_expression("x/x").expr
    assert expr != sympy.S.One
    assert isinstance(expr, sympy.Mul)
    assert expr == sympy.Mul(x, unevaluated_pow(x, sympy.S.NegativeOne), evaluate=False)


def test_log_of_exp_stays_unevaluated() -> None:
    # [functions] the translator verifies the torch program as written: log(exp(x)) stays.
    expr = parse_expression("log(exp(x))").expr
    assert expr != x
    assert isinstance(expr, sympy.log)
    (inner,) = expr.args
    assert isinstance(inner, sympy.exp)
    assert inner.args == (x,)


@pytest.mark.parametrize("name", ["I", "E", "gamma", "beta", "S", "N", "Q", "lambda_", "pi_"])
def test_names_colliding_with_sympy_are_real_variables(name: str) -> None:
    # [functions] every identifier that is not called is a real variable (AI Feynman uses I).
    parsed = parse_expression(name)
    assert parsed.expr == sympy.Symbol(name, real=True)
    assert parsed.expr.is_real is True
    assert parsed.variables == (name,)


def test_euler_and_imaginary_names_are_not_sympy_constants() -> None:
    expr = parse_expression("E**I").expr
    assert expr == unevaluated_pow(sympy.Symbol("E", real=True), sympy.Symbol("I", real=True))
    assert not expr.has(sympy.E)
    assert not expr.has(sympy.I)


def test_gamma_of_gamma_is_the_function_applied_to_the_variable() -> None:
    parsed = parse_expression("gamma(gamma)")
    assert parsed.expr == sympy.gamma(sympy.Symbol("gamma", real=True), evaluate=False)
    assert isinstance(parsed.expr, sympy.gamma)
    assert parsed.variables == ("gamma",)
    assert parsed.functions == frozenset({"gamma"})


@pytest.mark.parametrize(
    ("written", "sympy_class"),
    [
        # [functions] the aliases of its table: ln, arcsin, arccos, arctan, ...
        ("ln", sympy.log),
        ("arcsin", sympy.asin),
        ("arccos", sympy.acos),
        ("arctan", sympy.atan),
        # ... and abs, ceil (also in verifier.core.expression.functions.ALIASES)
        ("abs", sympy.Abs),
        ("ceil", sympy.ceiling),
    ],
)
def test_alias_maps_to_the_canonical_function(written: str, sympy_class: type) -> None:
    parsed = parse_expression(f"{written}(x)")
    assert type(parsed.expr) is sympy_class
    assert parsed.expr.args == (x,)


@pytest.mark.parametrize(("written", "sympy_class"), [("max", sympy.Max), ("min", sympy.Min)])
def test_lowercase_max_and_min_map_to_the_canonical_functions(
    written: str, sympy_class: type
) -> None:
    parsed = parse_expression(f"{written}(x, y)")
    assert type(parsed.expr) is sympy_class
    assert set(parsed.expr.args) == {x, y}


def test_pi_is_the_constant() -> None:
    parsed = parse_expression("pi")
    assert parsed.expr is sympy.pi
    assert parsed.variables == ()
    assert parse_expression("2*pi*x").variables == ("x",)


@pytest.mark.parametrize(
    ("text", "exact"),
    [
        ("0.1", sympy.Rational(1, 10)),
        ("2.5", sympy.Rational(5, 2)),
        ("1e-3", sympy.Rational(1, 1000)),
        ("2.5e3", sympy.Integer(2500)),
        ("0.30000000000000004", sympy.Rational(30000000000000004, 10**17)),
    ],
)
def test_decimal_literals_are_exact_rationals(text: str, exact: sympy.Rational) -> None:
    # The decimal as written, read exactly: 0.1 is 1/10, not the double nearest to it.
    assert parse_expression(text).expr == exact


def test_long_decimal_literal_is_the_exact_rational_written() -> None:
    # 19 significant digits, under the 30-digit literal limit; as written it is exactly
    # 3333333333333333333/10**19, which a double cannot hold (a double keeps about 16 digits).
    assert parse_expression("0.3333333333333333333").expr == sympy.Rational(
        3333333333333333333, 10**19
    )


def test_integer_literals_are_exact() -> None:
    # 25 digits: under the limit, and beyond what a double holds exactly.
    assert parse_expression("1234567890123456789012345").expr == sympy.Integer(
        1234567890123456789012345
    )


def test_variables_are_listed_in_order_of_first_appearance() -> None:
    assert parse_expression("y + x*z + y + a").variables == ("y", "x", "z", "a")
    assert parse_expression("sin(b)*a^c").variables == ("b", "a", "c")


def test_tabs_are_whitespace() -> None:
    assert parse_expression("x\t+\t1").expr == parse_expression("x + 1").expr


def test_piecewise_with_a_final_true_parses() -> None:
    parsed = parse_expression("Piecewise((x, x < 0), (x**2, True))")
    expr = parsed.expr
    assert isinstance(expr, sympy.Piecewise)
    assert len(expr.args) == 2
    assert expr.args[0].expr == x
    assert expr.args[0].cond == sympy.StrictLessThan(x, sympy.Integer(0))
    assert expr.args[1].expr == unevaluated_pow(x, sympy.Integer(2))
    assert expr.args[1].cond is sympy.true
    assert parsed.functions == frozenset({"Piecewise"})


@pytest.mark.parametrize(
    ("condition", "relation"),
    [
        ("x < y", sympy.StrictLessThan),
        ("x <= y", sympy.LessThan),
        ("x > y", sympy.StrictGreaterThan),
        ("x >= y", sympy.GreaterThan),
    ],
)
def test_piecewise_conditions_are_the_four_orderings(condition: str, relation: type) -> None:
    expr = parse_expression(f"Piecewise((x, {condition}), (y, True))").expr
    assert type(expr.args[0].cond) is relation


def test_piecewise_with_a_non_final_true_is_refused_at_the_true() -> None:
    # "Piecewise((x, True), ..." : "True" starts at index 14.
    error, _ = refuse("Piecewise((x, True), (x**2, x < 0))")
    assert type(error) is ForbiddenSyntaxError
    assert error.position == 14


@pytest.mark.parametrize(
    "text",
    [
        "Piecewise((x, x == 0), (1, True))",  # equality is not one of the orderings
        "Piecewise((x, x < y < 1), (1, True))",  # a chained comparison
        "Piecewise((x, x < 0 and y < 0), (1, True))",  # boolean operators
        "Piecewise(x, (1, True))",  # not a pair
        "Piecewise((x, x < 0, 1), (1, True))",  # a triple
    ],
)
def test_malformed_piecewise_is_refused(text: str) -> None:
    error, _ = refuse(text)
    assert type(error) is ForbiddenSyntaxError
    assert error.position is not None


@pytest.mark.parametrize(
    ("text", "function"), [("sin(x, y)", "sin"), ("atan2(x)", "atan2"), ("Max(x)", "Max")]
)
def test_wrong_arity_is_an_arity_error(text: str, function: str) -> None:
    error, _ = refuse(text)
    assert type(error) is ArityError
    assert error.position == 0
    assert error.token == function


@pytest.mark.parametrize("name", sorted(set(FUNCTIONS) - {"Piecewise"}))
def test_every_supported_function_parses_with_its_arity(name: str) -> None:
    spec = FUNCTIONS[name]
    arguments = "x" if spec.arity == 1 else "x, y"  # two for atan2 and the variadic ones
    # Required literal parameters (docs/functions.md, e.g. polygamma's "n a literal integer
    # 0..100"): polygamma's order first, the others after x.
    required = [p for p in spec.params if p.default is None]
    if required:
        literals = ", ".join("1" for _ in required)
        arguments = f"{literals}, x" if spec.leading_params else f"x, {literals}"
    parsed = parse_expression(f"{name}({arguments})")
    assert parsed.functions == frozenset({name})
    if name in ("sqrt", "rsqrt"):
        # [functions] sqrt is SymPy's x**(1/2), rsqrt x**(-1/2)
        half = sympy.Rational(1 if name == "sqrt" else -1, 2)
        assert parsed.expr == unevaluated_pow(x, half)
        return
    if spec.leading_params:
        assert parsed.expr.args[spec.leading_params :][:1] == (x,)
        return
    assert spec.sympy_class is not None
    assert isinstance(parsed.expr, spec.sympy_class)
    if spec.arity is not None:
        expected = (x,) if spec.arity == 1 else (x, y)
        assert parsed.expr.args[: spec.arity] == expected


def test_sinc_is_the_projects_normalized_sinc() -> None:
    # functions.py: sinc is torch's normalized sinc, not SymPy's unnormalized sympy.sinc.
    expr = parse_expression("sinc(x)").expr
    assert isinstance(expr, sinc)
    assert not isinstance(expr, sympy.sinc)


def test_variadic_functions_take_more_than_two_arguments() -> None:
    parsed = parse_expression("Max(x, y, 1)")
    assert isinstance(parsed.expr, sympy.Max)
    assert set(parsed.expr.args) == {x, y, sympy.Integer(1)}
