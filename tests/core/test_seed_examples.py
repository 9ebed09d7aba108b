"""The seed document's three examples, checked inline.

Expected values are hand derivations, as the seed document states them: f'(2) = 6; the gradient
(14, 6) and Hessian [[6, 2], [2, 2]] of 3x**2 + 2xy + y**2 at (2, 1); dz/dz = 1 and
dz/d(x**2) = 3 for z = 3*x**2.
"""

from __future__ import annotations

import torch

from verifier import check


def test_first_derivative_of_seed_example_is_six() -> None:
    # f = x**2 + 2x, f'(x) = 2x + 2, f'(2) = 6 (hand derivation).
    report = check("x**2 + 2*x", at={"x": 2})
    assert report.verdict == "pass"
    assert report.gradient == [[6.0]]


def test_gradient_and_hessian_of_seed_example_two() -> None:
    # d/dx = 6x + 2y = 14, d/dy = 2x + 2y = 6; Hessian [[6, 2], [2, 2]] (hand derivation).
    report = check("3*x**2 + 2*x*y + y**2", at={"x": 2, "y": 1})
    assert report.verdict == "pass"
    assert report.gradient == [[14.0, 6.0]]
    assert report.hessian == [[[6.0, 2.0], [2.0, 2.0]]]


def test_hessian_of_seed_example_is_symmetric_with_both_mixed_partials_computed() -> None:
    report = check("3*x**2 + 2*x*y + y**2", at={"x": 2, "y": 1})
    mixed = [e for e in report.entries if e.kind == "hessian" and e.wrt[0] != e.wrt[1]]
    assert sorted(e.wrt for e in mixed) == [("x", "y"), ("y", "x")]
    assert all(e.autograd == 2.0 and e.reference == 2.0 for e in mixed)


def test_node_gradients_of_seed_example_three() -> None:
    # z = 3*y with y = x**2: dz/dz = 1, dz/dy = 3 (hand derivation).
    report = check("3*x**2", at={"x": 2}, nodes=True)
    nodes = {e.node: e for e in report.entries if e.kind == "node"}
    assert set(nodes) == {"3*x**2", "x**2"}
    assert nodes["3*x**2"].autograd == 1.0 and nodes["3*x**2"].reference == 1.0
    assert nodes["x**2"].autograd == 3.0 and nodes["x**2"].reference == 3.0
    assert report.verdict == "pass"


def test_seed_idiom_for_second_derivatives_gives_none() -> None:
    # The seed's third example as written: x.grad is a leaf with no graph after backward().
    x = torch.tensor(2.0, requires_grad=True)
    y = x**2
    z = 3 * y
    z.backward()
    assert x.grad is not None and x.grad.item() == 12.0  # dz/dx = 6x = 12 by hand
    assert x.grad.grad is None


def test_report_explains_the_seed_idiom_when_second_derivatives_are_asked_for() -> None:
    report = check("3*x**2", at={"x": 2})
    assert any("x.grad.grad returns None" in note for note in report.notes)
    assert any("create_graph=True" in note for note in report.notes)
    assert check("3*x**2", at={"x": 2}, hessian=False).notes == []
