"""Helpers shared by the test tiers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    check: Callable[[], T], timeout: float = 60.0, what: str = "condition", interval: float = 0.1
) -> T:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as exc:  # the condition may raise until the system is ready
            last_error = exc
        else:
            if result:
                return result
        time.sleep(interval)  # poll
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what}; last error: {last_error}"
    )
