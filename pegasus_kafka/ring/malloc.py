"""glibc malloc settings for a ring server process."""

from __future__ import annotations

import ctypes

#: mallopt's parameter numbers
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_malloc(arenas: int = 2, keep_mb: int = 64, mmap_mb: int = 32, pad_mb: int = 16) -> None:
    """Tune glibc's malloc for a ring server; with another C library, do nothing.

    - Cap its arenas. With a thread per client, sealer and RocksDB worker,
      glibc would keep up to eight arenas a core, each holding on to memory
      it freed; a ring server's RSS is then far above what it uses.
    - Serve blocks below ``mmap_mb`` from the heap, keep up to ``keep_mb``
      of freed memory at its top, and grow it ``pad_mb`` at a time. Write
      batches, the seals' columns and the merges' blocks take megabytes
      each and are freed soon after. Given back to the kernel, each reuse
      faults its pages in again: on a virtual machine, a fault costs
      microseconds, and an ingest of the full benchmark data took several
      hundred thousand of them.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    libc.mallopt(_M_ARENA_MAX, arenas)
    libc.mallopt(_M_MMAP_THRESHOLD, mmap_mb << 20)
    libc.mallopt(_M_TRIM_THRESHOLD, keep_mb << 20)
    libc.mallopt(_M_TOP_PAD, pad_mb << 20)
