"""Worker slots on the ``gpu`` queue: one check at a time per GPU, each slot its own GPU, and
CUDA never initialised in the supervisor that starts them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from slowness import SLOWNESS

from verifier.cli.client import CliError
from verifier.cli.server import slot_environments, visible_gpus

DERIVCHECK = Path(sys.executable).with_name("derivcheck")


def test_each_slot_sees_one_gpu_of_its_own() -> None:
    envs = slot_environments(["0", "1", "3"], 2)
    assert [env["CUDA_VISIBLE_DEVICES"] for env in envs if env is not None] == ["0", "1"]
    assert all(env is not None and env["PATH"] == os.environ["PATH"] for env in envs)


def test_more_slots_than_gpus_is_refused() -> None:
    with pytest.raises(CliError, match="--concurrency 3 on the gpu queue, .* 2 GPU"):
        slot_environments(["0", "1"], 3)


def test_without_gpus_slots_inherit_the_environment() -> None:
    assert slot_environments([], 3) == [None, None, None]


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 5")
    assert visible_gpus() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []


def test_visible_gpus_are_counted_in_a_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpus() == [str(i) for i in range(torch.cuda.device_count())]
    assert not torch.cuda.is_initialized()


def test_the_worker_command_refuses_more_slots_than_gpus_in_one_line() -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0"}
    result = subprocess.run(
        [str(DERIVCHECK), "worker", "--queues", "gpu", "--concurrency", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60 * SLOWNESS,
    )
    assert result.returncode == 2, result.stderr
    assert "a GPU runs one check at a time" in result.stderr
    assert "Traceback" not in result.stderr
