"""The benchmarks' CPU accounting by thread kind."""

from __future__ import annotations

import sys
import time

import pytest

from pegasus_kafka.bench.cpu import thread_cpu, used_since

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_an_interpreter_thread_s_cpu_counts_as_python() -> None:
    before = thread_cpu()
    end = time.thread_time() + 0.3
    while time.thread_time() < end:
        pass
    used = used_since(before)
    assert set(used) <= {"python", "rocksdb", "librdkafka"}
    assert used["python"] >= 0.25
    assert all(v >= 0 for v in used.values())
