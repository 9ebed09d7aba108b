"""The examples in the core's docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import verifier.core

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(verifier.core.__path__, "verifier.core.")
    if not info.ispkg
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
