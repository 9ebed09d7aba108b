"""The plugin's declarations: name, arguments, exact definition and the torch implementation's
import string. This module must not import torch: the API process reads it."""

FUNCTIONS = [
    {
        "name": "stable_softplus",
        "args": ["x"],
        "definition": "log(1 + exp(x))",
        "implementation": "derivcheck_example.functions:stable_softplus",
    },
    {
        "name": "smooth_abs",
        "args": ["x", "eps"],
        "definition": "sqrt(x**2 + eps**2)",
        "implementation": "derivcheck_example.functions:smooth_abs",
    },
]
