"""The worker app's configuration: reliable delivery, no forking pool, queues, no torch."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from pydantic import ValidationError
from slowness import SLOWNESS

from verifier.config import Settings
from verifier.delivery.celery import RUN_CHECK_TASK
from workers.app import (
    CELERY_TASK_LOGGERS,
    create_celery,
    pool_for,
    quiet_task_lines,
    worker_arguments,
)


def test_delivery_is_acknowledged_late_one_message_at_a_time(settings: Settings) -> None:
    app = create_celery(settings)
    try:
        assert app.conf.task_acks_late is True
        assert app.conf.task_reject_on_worker_lost is True
        assert app.conf.worker_prefetch_multiplier == 1
        assert app.conf.result_backend is None
        assert app.conf.task_ignore_result is True
        assert RUN_CHECK_TASK in app.tasks
    finally:
        app.close()


def test_settings_reach_the_celery_configuration(settings: Settings) -> None:
    custom = settings.model_copy(update={"worker_prefetch_multiplier": 4})
    app = create_celery(custom)
    try:
        assert app.conf.worker_prefetch_multiplier == 4
        assert app.conf.broker_url == settings.broker_url
    finally:
        app.close()


def test_workers_never_use_a_forking_pool() -> None:
    assert pool_for(1) == "solo"
    assert pool_for(8) == "threads"
    arguments = worker_arguments(Settings(), queues=["gpu", "cpu"], concurrency=4)
    assert "--pool=threads" in arguments
    assert "--queues=gpu,cpu" in arguments
    assert not any(argument.startswith("--pool=prefork") for argument in arguments)


def test_importing_the_worker_app_loads_no_torch() -> None:
    # A fresh interpreter: other tests in this process may have imported torch.
    code = (
        "import sys\n"
        "from verifier.config import Settings\n"
        "from workers.app import create_celery\n"
        "app = create_celery(Settings(data_dir='/tmp/derivcheck-no-torch'))\n"
        "app.close()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_delivery_windows_come_from_settings_in_order(settings: Settings) -> None:
    app = create_celery(settings)
    try:
        assert app.conf.worker_soft_shutdown_timeout == settings.worker_soft_shutdown_s
        options = app.conf.broker_transport_options
        assert settings.check_time_limit_s < settings.worker_soft_shutdown_s
        assert settings.worker_soft_shutdown_s < settings.broker_visibility_timeout_s
        assert app.conf.task_publish_retry_policy["max_retries"] >= 0
    finally:
        app.close()
    redis_settings = Settings(broker_url="redis://127.0.0.1:6379/13")
    options = create_celery(redis_settings).conf.broker_transport_options
    assert options["visibility_timeout"] == redis_settings.broker_visibility_timeout_s


def test_settings_refuse_delivery_windows_out_of_order() -> None:
    with pytest.raises(ValidationError, match="check_time_limit_s < worker_soft_shutdown_s"):
        Settings(check_time_limit_s=100, worker_soft_shutdown_s=50)
    with pytest.raises(ValidationError, match="broker_visibility_timeout_s"):
        Settings(worker_soft_shutdown_s=4000, broker_visibility_timeout_s=3600)


def test_the_reference_budget_ends_a_check_before_its_hard_limit() -> None:
    # Hard limit 600 s, symbolic budget 30 s: the references get three quarters of the
    # 570 s left (verifier/config.py, REFERENCE_SHARE_OF_LIMIT), so the symbolic and reference
    # stages together end at most 457.5 s in, before the hard limit ends the process.
    settings = Settings(check_time_limit_s=600, symbolic_timeout_s=30)
    assert settings.reference_timeout_s == pytest.approx(427.5)
    assert settings.symbolic_timeout_s + settings.reference_timeout_s < settings.check_time_limit_s


@pytest.mark.parametrize("nice", [0, 7])
def test_a_worker_and_its_symbolic_process_run_at_the_lower_priority(nice: int) -> None:
    code = (
        "import os, sys\n"
        "from verifier.config import Settings\n"
        "from verifier.core.exact.sandbox import thread_sandbox\n"
        "from workers.app import lower_priority\n"
        "before = os.getpriority(os.PRIO_PROCESS, 0)\n"
        f"lower_priority(Settings(worker_nice={nice}))\n"
        "sandbox = thread_sandbox()\n"
        "sandbox.start()\n"
        "mine = os.getpriority(os.PRIO_PROCESS, 0)\n"
        "child = os.getpriority(os.PRIO_PROCESS, sandbox.pid)\n"
        "print(mine - before, child - before)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120 * SLOWNESS,
        check=True,
    )
    assert done.stdout.split() == [str(nice), str(nice)]


def test_task_events_are_off_unless_asked_for_and_heartbeats_stay_on_redis(
    settings: Settings,
) -> None:
    on_redis = settings.model_copy(update={"broker_url": "redis://127.0.0.1:6379/0"})
    assert create_celery(on_redis).conf.worker_send_task_events is False
    arguments = worker_arguments(on_redis, queues=["cpu"], concurrency=1)
    assert "--without-heartbeat" not in arguments  # Flower and inspect ping see the worker
    asked = on_redis.model_copy(update={"worker_task_events": True})
    assert create_celery(asked).conf.worker_send_task_events is True
    embedded = settings.model_copy(update={"worker_task_events": True})
    assert create_celery(embedded).conf.worker_send_task_events is False


def test_celerys_lines_per_task_follow_the_check_log_level(settings: Settings) -> None:
    loggers = [logging.getLogger(name) for name in CELERY_TASK_LOGGERS]
    levels = [found.level for found in loggers]
    try:
        quiet_task_lines(settings)  # the default: debug
        assert all(not found.isEnabledFor(logging.INFO) for found in loggers)
    finally:
        for found, level in zip(loggers, levels, strict=True):
            found.setLevel(level)
