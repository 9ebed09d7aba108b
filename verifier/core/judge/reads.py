"""Which forward values a derivative reads: the saved tensors of torch's backward formulas.

A gradient depends on a node's forward value only where some backward formula on its path
reads that value (or a value computed from it). ``exp``'s backward reads its result,
``x*y``'s reads both factors, ``ndtr``'s reads its input but never its own value: an error in
``ndtr(x)``'s value cannot reach ``d ndtr(x)/dx``. torch records what each backward reads as
the saved tensors of its graph nodes (``grad_fn._saved_self``, ``_saved_result``, ...), which
are the inputs and outputs named in torch's ``derivatives.yaml``; this module reads them from
the program itself, so an operation torch composes of several kernels is covered too.

A saved tensor that is neither the node's result nor one of its children's (an intermediate
of a composite operation) is taken as reading every child; a backward written in Python (a
``torch.autograd.Function``) is taken as reading everything.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import sympy
import torch

from verifier.core.program.translate import children, differentiable_children

_SAVED = "_saved_"


def backward_reads(
    node: sympy.Basic, tensors: Mapping[sympy.Basic, torch.Tensor]
) -> frozenset[sympy.Basic]:
    """The nodes (``node`` itself or its children) whose forward values ``node``'s backward
    reads, found in the saved tensors of the torch graph between them."""
    output = tensors[node]
    kids = [c for c in children(node) if c in tensors]
    everything = frozenset([node, *kids])
    if output.grad_fn is None:
        return frozenset()
    stops = {id(tensors[c].grad_fn) for c in kids if tensors[c].grad_fn is not None}
    storage = {_address(tensors[c]): c for c in kids}
    result_address = _address(output)
    read: set[sympy.Basic] = set()
    seen: set[int] = set()
    stack: list[Any] = [output.grad_fn]  # torch's graph nodes (or None: no graph)
    while stack:
        function = stack.pop()
        if function is None or id(function) in seen or id(function) in stops:
            continue
        seen.add(id(function))
        if type(function).__name__ == "AccumulateGrad":
            continue
        if isinstance(function, torch.autograd.function.BackwardCFunction):
            return everything  # a backward written in Python: it may read anything
        try:
            saved = list(_saved_tensors(function))
        except RuntimeError:  # a saved tensor that cannot be unpacked: assume the worst
            return everything
        for tensor in saved:
            address = _address(tensor)
            if address == result_address:
                read.add(node)
            elif address in storage:
                read.add(storage[address])
            else:  # an intermediate, computed from the children
                read.update(kids)
        stack.extend(next_function for next_function, _ in function.next_functions)
    return frozenset(read)


def read_by(
    order: Sequence[sympy.Basic], tensors: Mapping[sympy.Basic, torch.Tensor]
) -> dict[sympy.Basic, frozenset[str]]:
    """Per node, the variables whose gradient reads its forward value, directly or through
    a value computed from it (a node above it that some backward on the variable's path
    reads). ``order`` is children first."""
    reached: dict[sympy.Basic, set[str]] = {node: set() for node in order}
    for node in order:
        if node.is_Atom or node not in tensors or not differentiable_children(node):
            continue
        names = {symbol.name for symbol in node.free_symbols}
        for value in backward_reads(node, tensors):
            reached.setdefault(value, set()).update(names)
    # A value's error reaches every node computed from it: parents before children.
    for node in reversed(order):
        for child in children(node):
            if child in reached:
                reached[child].update(reached.get(node, ()))
    return {node: frozenset(names) for node, names in reached.items()}


def _saved_tensors(function: object) -> Iterator[torch.Tensor]:
    for name in dir(function):
        if not name.startswith(_SAVED):
            continue
        value = getattr(function, name)
        values = value if isinstance(value, tuple | list) else (value,)
        yield from (v for v in values if isinstance(v, torch.Tensor))


def _address(tensor: torch.Tensor) -> tuple[int, torch.device]:
    return tensor.untyped_storage().data_ptr(), tensor.device
