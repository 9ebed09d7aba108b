"""Safe parsing of expression strings into unevaluated SymPy trees, with every function this
process knows: the built-in catalogue and the custom functions of the registry.

SymPy's ``sympify`` and ``parse_expr`` call ``eval``; a name whitelist does not make that safe
(``sin.eval.__func__.__globals__`` reaches everything). So the string never reaches ``eval``:
:mod:`verifier.core.expression.syntax` checks Python's syntax tree node by node against a
whitelist and builds the SymPy tree from it, with ``evaluate=False``, so that ``x/x`` and
``log(exp(x))`` stay as written.

>>> parse_expression("3*x**2 + 2*x*y + y**2").variables
('x', 'y')
"""

from __future__ import annotations

from verifier.core.expression import registry
from verifier.core.expression.syntax import ParsedExpression, parse_syntax
from verifier.errors import ExpressionError


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
    return parse_syntax(text, registry.lookup)


def require_variables(parsed: ParsedExpression) -> ParsedExpression:
    """Refuse an expression with nothing to differentiate by; returns ``parsed`` unchanged.

    >>> require_variables(parse_expression("2*pi"))
    Traceback (most recent call last):
    ...
    verifier.errors.ExpressionError: the expression has no variables to differentiate by
    """
    if not parsed.variables:
        raise ExpressionError("the expression has no variables to differentiate by")
    return parsed
