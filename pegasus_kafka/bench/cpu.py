"""CPU time of this process's threads, by kind, for benchmarks that explain a rate.

Linux names a thread in ``/proc/self/task/<tid>/comm``: RocksDB's background
threads as ``rocksdb:*``, librdkafka's as ``rdk:*``; the interpreter's own
threads keep the program's name and share one GIL. Elsewhere the figures
are empty.

Two more figures show whether that GIL or the machine bounds a rate: the
CPU time of named Python threads (a ring server's consumer and sealer
threads, which take turns at the GIL), and the time the machine's cores
stood idle, which no single process's figures show.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
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
            used = _task_cpu(task, tick)
        except OSError:  # the thread ended meanwhile
            continue
        kind = next((k for prefix, k in _KINDS if comm.startswith(prefix)), "python")
        out[kind] = out.get(kind, 0.0) + used
    return out


def _task_cpu(task: Path, tick: int) -> float:
    # Fields after the parenthesised name; utime and stime are 14th and 15th.
    fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


def named_thread_cpu(names: Iterable[str]) -> dict[str, float]:
    """Seconds of CPU used so far by this process's live Python threads of
    these names (their whole lives), rounded; a name no live thread has is
    left out."""
    wanted = set(names)
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.name not in wanted or thread.native_id is None:
            continue
        try:
            used = _task_cpu(Path(f"/proc/self/task/{thread.native_id}"), tick)
        except OSError:  # it ended meanwhile, or this is not Linux
            continue
        out[thread.name] = round(out.get(thread.name, 0.0) + used, 2)
    return out


def machine_idle_s() -> float:
    """Seconds the machine's cores have stood idle (idle and I/O wait), summed
    over cores, since boot; 0.0 where ``/proc/stat`` is missing."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return 0.0
    # "cpu", user, nice, system, idle, iowait, ...: in clock ticks
    return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")


def used_since(before: dict[str, float]) -> dict[str, float]:
    """CPU seconds by kind since ``before`` (a :func:`thread_cpu`), rounded.
    Threads that ended in between are not counted."""
    now = thread_cpu()
    return {k: round(max(v - before.get(k, 0.0), 0.0), 2) for k, v in sorted(now.items())}
