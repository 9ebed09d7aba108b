"""Sums of |terms| of the chain rule, kept entry by entry with exact zeros skipped."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy
import torch

from verifier.core.expression.parse import parse_expression
from verifier.core.expression.symbolic import GRADIENT, HESSIAN, NODE, node_key
from verifier.core.floats.dtypes import DTYPES
from verifier.core.judge.magnitudes import (
    ZERO,
    Block,
    local_derivatives,
    path_sums,
    plus,
    times,
)
from verifier.core.program.translate import Translation, differentiable_children, program_order


def _path_sums(text: str, point: dict[str, float]) -> dict[tuple[str, ...], float]:
    """path_sums at one point, keyed by kind and wrt (node keys by their printed node)."""
    parsed = parse_expression(text)
    inputs = {name: torch.tensor([point[name]], dtype=torch.float64) for name in point}
    values = Translation(parsed.expr, inputs, DTYPES["float64"], torch.device("cpu")).tensors
    order = program_order(parsed.expr)
    locals_ = {
        node: local_derivatives(node, values, kids)
        for node in order
        if (kids := differentiable_children(node)) and not isinstance(node, sympy.Symbol)
    }
    names = parsed.variables
    keys = [(GRADIENT, (a,), None) for a in names]
    keys += [(HESSIAN, (a, b), None) for a in names for b in names]
    nodes = {node_key(node): str(node) for node in order if node.args}
    keys += [(NODE, (), key) for key in nodes]
    sums = path_sums(parsed.expr, order, locals_, names, 1, keys)
    return {
        (kind, *wrt) if node is None else (kind, nodes[node]): float(sums[(kind, wrt, node)][0])
        for kind, wrt, node in keys
    }


def test_path_sums_add_the_absolute_values_of_the_chain_rule_terms() -> None:
    # f = x*y + sin(x) at (0.5, -2) (hand derivation): df/dx = y + cos(x), whose terms are
    # |y| = 2 and |cos 0.5|; df/dy = x; d2f/dx2 = -sin(x); d2f/dxdy = 1 through x*y; d2f/dy2 = 0.
    # Each node feeds the sum with local derivative 1, so its node gradient's sum is 1.
    sums = _path_sums("x*y + sin(x)", {"x": 0.5, "y": -2.0})
    assert sums[(GRADIENT, "x")] == 2 + math.cos(0.5)
    assert sums[(GRADIENT, "y")] == 0.5
    assert sums[(HESSIAN, "x", "x")] == math.sin(0.5)
    assert sums[(HESSIAN, "x", "y")] == sums[(HESSIAN, "y", "x")] == 1.0
    assert sums[(HESSIAN, "y", "y")] == 0.0
    assert sums[(NODE, "x*y")] == sums[(NODE, "sin(x)")] == 1.0


def test_path_sums_count_cancelling_terms_at_their_full_size() -> None:
    # f = x*y - x*z at (3, 2, 2): df/dx = y - z = 0, but its terms are |y| and |-z|, 4 in
    # all; d2f/dxdy and d2f/dxdz are 1 in size each, d2f/dydz is 0 (hand derivation).
    sums = _path_sums("x*y - x*z", {"x": 3.0, "y": 2.0, "z": 2.0})
    assert sums[(GRADIENT, "x")] == 4.0
    assert sums[(GRADIENT, "y")] == sums[(GRADIENT, "z")] == 3.0
    assert sums[(HESSIAN, "x", "y")] == sums[(HESSIAN, "z", "x")] == 1.0
    assert sums[(HESSIAN, "y", "z")] == 0.0


def test_an_exact_zero_times_finite_values_stays_an_exact_zero() -> None:
    finite = Block(np.array([1.0, 2.0]))
    assert times(ZERO, finite).values is None
    assert times(finite, ZERO).values is None
    assert plus(ZERO, finite) is finite


def test_an_exact_zero_times_an_infinity_is_nan_as_in_a_dense_product() -> None:
    # 0 * inf is nan in IEEE 754: skipping the zero must not hide it.
    infinite = Block(np.array([math.inf, 2.0]))
    product = times(ZERO, infinite).values
    assert product is not None
    assert math.isnan(product[0]) and product[1] == 0.0


@pytest.mark.parametrize("values", [[1.0, 2.0], [math.inf, 0.0]])
def test_a_block_made_dense_has_one_value_per_point(values: list[float]) -> None:
    assert Block(np.array(values)).dense(2).tolist() == values
    assert ZERO.dense(2).tolist() == [0.0, 0.0]
