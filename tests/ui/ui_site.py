"""What the page tests submit, and the site they submit it to."""

from __future__ import annotations

from dataclasses import dataclass, field

HOSTILE_LABEL = '<script>alert("label")</script><b>bold</b> & <img src=x onerror=alert(1)>'

FLOAT32_CHECK = {
    # tanh's gradient in float32 fails at large |x| (docs/survey-torch-2.13-cpu.md: tanh(x)
    # in float32, first backward); y makes the plots two, and its Hessian element 0.
    "expression": "tanh(x)*y",
    "dtype": "float32",
    "samples": 200,
    "domain": {"x": [-10, 10], "y": [0.5, 2]},
    "seed": 3,
}
SEED_CHECK = {"expression": "3*x**2 + 2*x*y + y**2", "points": [{"x": 2, "y": 1}]}
SQUARE_CHECK = {"expression": "x**2", "points": [{"x": 1}, {"x": 2}, {"x": 3}]}
SINE_CHECK = {"expression": "sin(x)", "points": [{"x": 0.5}, {"x": 1.5}]}
BOB_CHECK = {"expression": "exp(x)", "points": [{"x": 1}]}


@dataclass
class Site:
    """The live API and what was submitted to it."""

    url: str
    alice: str
    bob: str
    jobs: dict[str, str] = field(default_factory=dict)
    """name -> job id, as POST /jobs answered"""
