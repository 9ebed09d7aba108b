"""Storage benchmark: bytes per stored entry, and the time to write and read them, side by side.

    .venv/bin/python benchmarks/storage.py [--points 10000]

One check of W1's expression (``sin(x)*exp(y) + x*y*z**2 + log(1 + z**2)``, gradient, Hessian
and node gradients, points sampled in [-3, 3] with seed 0) per dtype; its entries are stored
as the service stores them (``verifier/store/blocks.py``), against two baselines in the same
run: the entries as JSON (the report format), and the blocks without the report's tolerance
and dtype (so the predictions of ``tolerance`` and ``ulp_error`` miss). The issue's target is
about 16 bytes per compared number. Encoding is timed from the entries' dictionaries and, as
a worker stores a report, straight from the report's columns.
"""

from __future__ import annotations

import argparse
import json
import time

from rich.console import Console
from rich.table import Table

from verifier import check
from verifier.store.blocks import blocks_of, decode

W1 = "sin(x)*exp(y) + x*y*z**2 + log(1 + z**2)"
DOMAIN = {"x": (-3.0, 3.0), "y": (-3.0, 3.0), "z": (-3.0, 3.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    arguments = parser.parse_args()
    table = Table(title=f"stored entries, {arguments.points} points, nodes and Hessian")
    for column in (
        "dtype",
        "entries",
        "JSON B/entry",
        "blocks, no hints",
        "blocks",
        "JSON / blocks",
        "encode us/entry",
        "from columns us/entry",
        "decode us/entry",
    ):
        table.add_column(column, justify="right")
    for dtype in ("float64", "float32", "bfloat16"):
        report = check(W1, samples=arguments.points, dtype=dtype, domain=DOMAIN, nodes=True)
        document = report.to_dict()
        entries = document["entries"]
        count = len(entries)
        as_json = len(json.dumps(entries).encode())
        plain = sum(len(block.data) for block in blocks_of(entries))
        started = time.perf_counter()
        blocks = blocks_of(entries, document["tolerance"], document["dtype"])
        encoded = time.perf_counter() - started
        stored = sum(len(block.data) for block in blocks)
        held = report.document()["entries"]
        started = time.perf_counter()
        direct = blocks_of(held, document["tolerance"], document["dtype"])
        from_columns = time.perf_counter() - started
        started = time.perf_counter()
        back = [entry for block in blocks for entry in decode(block.data)]
        decoded = time.perf_counter() - started
        assert back == entries, "a stored entry did not come back exactly"
        direct_back = [entry for block in direct for entry in decode(block.data)]
        assert direct_back == entries, "an entry stored from the columns did not come back"
        table.add_row(
            dtype,
            f"{count:,}",
            f"{as_json / count:.1f}",
            f"{plain / count:.1f}",
            f"{stored / count:.1f}",
            f"{as_json / stored:.1f}x",
            f"{encoded / count * 1e6:.2f}",
            f"{from_columns / count * 1e6:.2f}",
            f"{decoded / count * 1e6:.2f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
