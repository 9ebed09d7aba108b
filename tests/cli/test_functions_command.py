"""``derivcheck functions``: built-in and plugin functions, and plugins that cannot be used.

The example plugin (examples/derivcheck-example-plugin) is installed by scripts/test; two more
plugins are made here on PYTHONPATH: one whose declarations module fails to import, one whose
torch implementation does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from slowness import SLOWNESS


def _plugin(site: Path, dist: str, module: str, source: str) -> None:
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[derivcheck.functions]\n{dist} = {module}:FUNCTIONS\n")
    (site / f"{module}.py").write_text(source)


def _run(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, "-m", "verifier", "functions", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120 * SLOWNESS,
        check=False,
    )


def test_functions_lists_built_ins_plugins_and_plugin_problems(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _plugin(
        site, "broken_declarations", "broken_decl", "raise ImportError('declarations broken')\n"
    )
    _plugin(
        site,
        "missing_impl",
        "missing_impl_decl",
        'FUNCTIONS = [{"name": "cubed", "args": ["x"], "definition": "x**3", '
        '"implementation": "no_such_module_xyz:cubed"}]\n',
    )
    listed = _run(site, "--json", "--load")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    rows = {row["name"]: row for row in data["functions"]}
    assert rows["sin"]["origin"] == "built-in" and rows["sin"]["arity"] == 1
    assert rows["smooth_abs"]["arity"] == 2
    assert rows["smooth_abs"]["definition"] == "smooth_abs(x, eps) = sqrt(x**2 + eps**2)"
    assert rows["smooth_abs"]["origin"] == "plugin derivcheck-example-plugin (example)"
    assert rows["cubed"]["implementation"] == "no_such_module_xyz:cubed"
    problems = [p["problem"] for p in data["problems"]]
    assert any("declarations broken" in p for p in problems)
    assert any("importing no_such_module_xyz:cubed failed" in p for p in problems)

    table = _run(site, "--strict")
    assert table.returncode == 1
    assert "smooth_abs" in table.stdout and "built-in" in table.stdout
    assert "plugin problem" in table.stderr and "declarations broken" in table.stderr
