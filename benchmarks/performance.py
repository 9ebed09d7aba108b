"""W1 performance: one inline check against what torch itself costs, measured side by side.

    .venv/bin/python benchmarks/performance.py [--points 10000] [--repeat 3]

W1 is ``check("sin(x)*exp(y) + x*y*z**2 + log(1 + z**2)")`` at N points (gradient and full
Hessian, float32). Rows, all from this one run:

- floor: torch computing the same numbers batched (gradient, then each Hessian row with
  ``create_graph``), with the points converted from Python floats into tensors and every
  number converted back out: what any tool must pay;
- gradcheck loop: ``torch.autograd.gradcheck`` + ``gradgradcheck`` point by point (float64,
  as they require), timed on ``--gradcheck-points`` points and scaled to N (it is a loop);
- derivcheck: ``check()`` returning its report (warm: the sandbox started, the expression
  derived once); ``to_dict`` is timed separately.

Then the growth in points (time per point), in variables (1 to 16, at 1,000 points) and the
peak memory of a check at ``--memory-points`` points x 3 variables with Hessian and node
gradients, measured in a fresh process: the resident set before the check, and the peak during
it of that process and of its symbolic (sandbox) process, whose peaks are reset just before the
check (Linux ``/proc/<pid>/clear_refs``), so that imports and warm-up do not count.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from verifier import check
from verifier.core.floats.points import MAX_POINTS_PER_CHECK

sys.path.insert(0, str(Path(__file__).resolve().parent))
from core import best  # noqa: E402  (the core benchmark, a sibling script)

W1 = "sin(x)*exp(y) + x*y*z**2 + log(1 + z**2)"
SEED = 11
DEFAULT_POINTS = 10_000
DEFAULT_GROWTH = (1_000, 10_000, 100_000)
DEFAULT_VARIABLES = (1, 2, 4, 8, 16)
VARIABLES_POINTS = 1_000


def w1_torch(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """W1 written directly in torch."""
    return torch.sin(x) * torch.exp(y) + x * y * z**2 + torch.log(1 + z**2)


def draw_points(names: Sequence[str], count: int, seed: int = SEED) -> list[dict[str, float]]:
    """``count`` points uniform in [-1, 1] per variable, as Python floats."""
    generator = random.Random(seed)
    return [{name: generator.uniform(-1, 1) for name in names} for _ in range(count)]


def floor_run(points: Sequence[dict[str, float]], names: Sequence[str]) -> list[list[float]]:
    """The same numbers as the check, batched in torch: points in, gradient and Hessian out."""
    inputs = [
        torch.tensor([p[n] for p in points], dtype=torch.float32, requires_grad=True) for n in names
    ]
    total = w1_torch(*inputs).sum()
    first = torch.autograd.grad(total, inputs, create_graph=True)
    out = [g.detach().tolist() for g in first]
    for g in first:
        row = torch.autograd.grad(g.sum(), inputs, retain_graph=True, allow_unused=True)
        out.extend([0.0] * len(points) if r is None else r.tolist() for r in row)
    return out


def gradcheck_loop(points: Sequence[dict[str, float]], names: Sequence[str]) -> None:
    """gradcheck + gradgradcheck at each point (float64: they need it)."""
    for point in points:
        inputs = tuple(
            torch.tensor([point[n]], dtype=torch.float64, requires_grad=True) for n in names
        )
        torch.autograd.gradcheck(w1_torch, inputs)
        torch.autograd.gradgradcheck(w1_torch, inputs)


def chain_expression(count: int) -> tuple[str, list[str]]:
    """W1's shape over ``count`` variables: each couples with the next, as x, y, z do."""
    names = [f"v{i}" for i in range(1, count + 1)]
    terms = []
    for i, name in enumerate(names):
        after = names[(i + 1) % count]
        terms.append(f"sin({name})*exp({after}) + {name}*{after}**2 + log(1 + {name}**2)")
    return " + ".join(terms), names


def memory_child(points: int) -> dict[str, float]:
    """Run in a fresh process: peak resident memory of one check, whole and added."""
    command = [sys.executable, __file__, "--memory-child", str(points)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _measure_memory(points: int) -> None:
    from verifier.core.exact.sandbox import thread_sandbox

    names = ["x", "y", "z"]
    chosen = draw_points(names, points)
    check(W1, at=chosen[:10], dtype="float32", nodes=True)  # imports, sandbox, caches
    sandbox = thread_sandbox().pid
    processes = ["self"] + ([str(sandbox)] if sandbox is not None else [])
    before = {pid: _status_mb(pid, "VmRSS") for pid in processes}
    for pid in processes:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak starts again from now
    report = check(W1, at=chosen, dtype="float32", nodes=True)
    peaks = {pid: _status_mb(pid, "VmHWM") for pid in processes}
    entries = sum(report.counts.values())
    print(
        json.dumps(
            {
                "before_mb": before["self"],
                "peak_mb": peaks["self"],
                "sandbox_before_mb": before.get(str(sandbox), 0.0),
                "sandbox_peak_mb": peaks.get(str(sandbox), 0.0),
                "entries": entries,
            }
        )
    )


def _status_mb(pid: str, field: str) -> float:
    """A memory line of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no {field} for process {pid}")


def main(argv: Sequence[str] | None = None) -> None:
    """Print the W1 tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=DEFAULT_POINTS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gradcheck-points", type=int, default=500)
    parser.add_argument("--growth", default=",".join(map(str, DEFAULT_GROWTH)))
    parser.add_argument("--variables", default=",".join(map(str, DEFAULT_VARIABLES)))
    parser.add_argument("--variables-points", type=int, default=VARIABLES_POINTS)
    parser.add_argument("--memory-points", type=int, default=100_000)
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        _measure_memory(args.memory_child)
        return
    console = Console(width=120)
    torch.set_num_threads(1)  # as check() runs torch: the floor under the same conditions
    for asked in (args.points, args.memory_points):
        if asked > MAX_POINTS_PER_CHECK:
            console.print(f"{asked:,} points: above the {MAX_POINTS_PER_CHECK:,} a check takes")
    args.points = min(args.points, MAX_POINTS_PER_CHECK)
    args.memory_points = min(args.memory_points, MAX_POINTS_PER_CHECK)
    names = ["x", "y", "z"]
    points = draw_points(names, args.points)
    check(W1, at=points[:10], dtype="float32")  # sandbox started, expression derived

    floor = best(lambda: floor_run(points, names), args.repeat)
    looped = points[: min(args.gradcheck_points, len(points))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gradcheck = best(lambda: gradcheck_loop(looped, names), 1) * len(points) / len(looped)
    report = check(W1, at=points, dtype="float32")
    derivcheck = best(lambda: check(W1, at=points, dtype="float32"), args.repeat)
    to_dict = best(lambda: report.to_dict(), 1)

    table = Table(title=f"W1: {W1}, {len(points):,} points, gradient + Hessian, float32")
    for column in ("run", "seconds", "x floor", "gradcheck loop / this"):
        table.add_column(column, justify="right" if column != "run" else "left")
    table.add_row("floor (torch batched + I/O)", f"{floor:.4f}", "1.0", f"{gradcheck / floor:.0f}")
    table.add_row(
        f"gradcheck + gradgradcheck loop ({len(looped)} points, scaled)",
        f"{gradcheck:.2f}",
        f"{gradcheck / floor:.0f}",
        "1.0",
    )
    table.add_row(
        "derivcheck check()",
        f"{derivcheck:.4f}",
        f"{derivcheck / floor:.1f}",
        f"{gradcheck / derivcheck:.0f}",
    )
    table.add_row("report.to_dict() (extra)", f"{to_dict:.4f}", f"{to_dict / floor:.1f}", "")
    console.print(table)
    console.print(
        f"verdict {report.verdict}, counts {report.counts}, reference: {report.reference_method}"
    )

    growth = Table(title="Growth in points (W1)")
    for column in ("points", "floor s", "derivcheck s", "derivcheck us/point", "x floor"):
        growth.add_column(column, justify="right")
    for count in [int(c) for c in args.growth.split(",")]:
        if count > MAX_POINTS_PER_CHECK:
            growth.add_row(f"{count:,}", "", "", f"above {MAX_POINTS_PER_CHECK:,} per check", "")
            continue
        chosen = draw_points(names, count, seed=SEED + count)
        floor_s = best(lambda chosen=chosen: floor_run(chosen, names), args.repeat)
        check_s = best(lambda chosen=chosen: check(W1, at=chosen, dtype="float32"), args.repeat)
        growth.add_row(
            f"{count:,}",
            f"{floor_s:.4f}",
            f"{check_s:.4f}",
            f"{check_s / count * 1e6:.1f}",
            f"{check_s / floor_s:.1f}",
        )
    console.print(growth)

    per_width = args.variables_points
    width = Table(title=f"Growth in variables ({per_width:,} points, gradient + Hessian)")
    for column in ("variables", "entries", "derivcheck s", "us/entry"):
        width.add_column(column, justify="right")
    for count in [int(c) for c in args.variables.split(",")]:
        text, chain_names = chain_expression(count)
        chosen = draw_points(chain_names, per_width)
        check(text, at=chosen[:2], dtype="float32")  # derive once
        seconds = best(lambda text=text, chosen=chosen: check(text, at=chosen, dtype="float32"), 1)
        entries = per_width * (count + count * count)
        width.add_row(
            str(count), f"{entries:,}", f"{seconds:.3f}", f"{seconds / entries * 1e6:.2f}"
        )
    console.print(width)

    memory = memory_child(args.memory_points)
    mem = Table(title=f"Peak memory: {args.memory_points:,} points x 3 variables, Hessian + nodes")
    for column in ("entries", "process", "RSS before MB", "peak during check MB", "added MB"):
        mem.add_column(column, justify="right")
    for name, prefix in (("check()", ""), ("sandbox", "sandbox_")):
        mem.add_row(
            f"{int(memory['entries']):,}",
            name,
            f"{memory[prefix + 'before_mb']:.0f}",
            f"{memory[prefix + 'peak_mb']:.0f}",
            f"{memory[prefix + 'peak_mb'] - memory[prefix + 'before_mb']:.0f}",
        )
    total = memory["peak_mb"] + memory["sandbox_peak_mb"]
    console.print(mem)
    console.print(f"both processes at their peaks: {total:.0f} MB (target: under 1,000 MB)")


if __name__ == "__main__":
    main()
