"""CPU time of this process's threads, by kind, for benchmarks that explain a rate.

Linux names a thread in ``/proc/self/task/<tid>/comm``: RocksDB's background
threads as ``rocksdb:*``, librdkafka's as ``rdk:*``; the interpreter's own
threads keep the program's name and share one GIL. Elsewhere the figures
are empty.
"""

from __future__ import annotations

import os
from pathlib import Path

_KINDS = (("rocksdb", "rocksdb"), ("rdk:", "librdkafka"))


def thread_cpu() -> dict[str, float]:
    """Seconds of CPU (user and system) used so far by this process's live
    threads: ``rocksdb``, ``librdkafka`` and ``python`` (every other thread)."""
    out: dict[str, float] = {}
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return out
    tick = os.sysconf("SC_CLK_TCK")
    for task in tasks.iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            # Fields after the parenthesised name; utime and stime are 14th and 15th.
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        kind = next((k for prefix, k in _KINDS if comm.startswith(prefix)), "python")
        out[kind] = out.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def used_since(before: dict[str, float]) -> dict[str, float]:
    """CPU seconds by kind since ``before`` (a :func:`thread_cpu`), rounded.
    Threads that ended in between are not counted."""
    now = thread_cpu()
    return {k: round(max(v - before.get(k, 0.0), 0.0), 2) for k, v in sorted(now.items())}
