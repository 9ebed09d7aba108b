"""The torch program: one tensor per distinct node, constants in the check's dtype."""

from __future__ import annotations

import math

import pytest
import sympy
import torch

from verifier import check
from verifier.core.expression.parse import parse_expression
from verifier.core.floats.dtypes import DTYPES
from verifier.core.program.translate import Translation


def test_a_subtree_written_twice_is_one_tensor_with_one_node_gradient() -> None:
    # out = s * s with s = sin(x): d out / d s = 2 s = 2 sin(0.5) (hand derivation).
    report = check("sin(x)*sin(x)", at={"x": 0.5}, nodes=True, hessian=False)
    nodes = {e.node: e for e in report.entries if e.kind == "node"}
    assert set(nodes) == {"sin(x)*sin(x)", "sin(x)"}
    assert nodes["sin(x)"].reference == 2 * math.sin(0.5)
    assert nodes["sin(x)"].verdict == "pass"


def test_node_gradient_sums_over_every_occurrence_of_a_shared_node() -> None:
    # out = e*s + e with e = exp(s), s = x + y: d out / d e = s + 1 = 2.5 at (0.5, 1), and
    # d out / d s = e + e*s + e = e*(s + 2) (hand derivation). Two tensors for e would split it.
    report = check("exp(x + y)*(x + y) + exp(x + y)", at={"x": 0.5, "y": 1}, nodes=True)
    nodes = {e.node: e for e in report.entries if e.kind == "node"}
    assert nodes["exp(x + y)"].autograd == 2.5 and nodes["exp(x + y)"].reference == 2.5
    assert nodes["x + y"].reference == pytest.approx(math.exp(1.5) * 3.5, rel=1e-15)
    assert report.verdict == "pass"


def test_translation_keeps_one_tensor_per_distinct_node() -> None:
    parsed = parse_expression("exp(x + y)*(x + y) + exp(x + y)")
    inputs = {name: torch.tensor([0.5], dtype=torch.float64) for name in parsed.variables}
    translation = Translation(parsed.expr, inputs, DTYPES["float64"], torch.device("cpu"))
    distinct = {node for node in sympy.preorder_traversal(parsed.expr)}
    assert set(translation.tensors) == distinct


def test_constants_are_rounded_to_the_checks_dtype_not_float32() -> None:
    # d/dx (x/3) = 1/3, which float64 holds as 0x3FD5555555555555 (IEEE 754 nearest).
    report = check("x/3", at={"x": 1}, hessian=False)
    assert report.entries[0].autograd == 1 / 3
    float32 = check("x/3", at={"x": 1}, hessian=False, dtype="float32")
    assert float32.entries[0].autograd == float(torch.tensor(1 / 3, dtype=torch.float32))


def test_pi_is_rounded_once_from_its_exact_value() -> None:
    report = check("pi*x", at={"x": 1}, hessian=False)
    assert report.entries[0].autograd == math.pi  # math.pi is pi rounded to nearest double
    assert report.verdict == "pass"
