"""Starting the real service for end-to-end tests: migrations, ``serve`` and ``worker``."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from servers import running_service


@pytest.fixture
def start_service() -> Callable[..., AbstractContextManager[str]]:
    """``with start_service(tmp_path, env) as url``: a running API and worker
    (``tests/servers.py``, ``running_service``)."""
    return running_service
