"""The benchmarks' CPU accounting by thread kind."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from pegasus_kafka.bench.cpu import machine_idle_s, named_thread_cpu, thread_cpu, used_since

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


def test_a_named_thread_s_cpu_is_its_own() -> None:
    spun, done = threading.Event(), threading.Event()

    def spin() -> None:
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass
        spun.set()
        done.wait(10)

    thread = threading.Thread(target=spin, name="spinner")
    thread.start()
    try:
        assert spun.wait(10)
        used = named_thread_cpu(("spinner", "no-such-thread"))
    finally:
        done.set()
        thread.join()
    assert set(used) == {"spinner"}
    assert 0.25 <= used["spinner"] < 5


def test_the_machine_s_idle_time_only_grows() -> None:
    first = machine_idle_s()
    assert first > 0
    assert machine_idle_s() >= first
