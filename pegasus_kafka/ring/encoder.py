"""The block encoder, compiled, and run without the GIL.

A ring server's consumer thread applies batches in Python while its sealer
thread encodes the merged blocks. Both threads share one GIL, and numpy
gives it up and takes it back around every call: beside a thread running
Python, each of the encoder's thousands of calls waits for its turn, so
the two threads run one after the other while a core stands idle. This
encoder is one compiled call per piece of a merge (numba, ``nogil``): the
scales, the deltas, the byte shuffle, the headers and zstd, block after
block, while the consumer thread keeps the GIL. zstd is the system's
libzstd, called directly, one compression context per thread.

The layout is :mod:`pegasus_kafka.ring.blocks`'s, which decodes it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import threading
from typing import Any

import numba
import numpy as np
from llvmlite import binding as llvm
from numba.core import types

from pegasus_kafka.errors import StoreError

MAGIC = b"PB"
MODE_FLOAT, MODE_DECIMAL = 0, 1
#: mode flag: the body is stored as it is, not zstd-compressed
F_RAW = 0x80
#: magic, version, mode, scale, width, has changes, n (u32), t0 (i64)
HEADER_SIZE = 19
#: zstd level of block bodies
LEVEL = 3
_MAGIC0, _MAGIC1 = MAGIC[0], MAGIC[1]
_MAX_EXACT = 2.0**52
_POWERS = np.array([10.0**k for k in range(7)])


def _libzstd() -> ctypes.CDLL:
    name = ctypes.util.find_library("zstd") or "libzstd.so.1"
    try:
        lib = ctypes.CDLL(name)
        # Compiled code names zstd's functions by symbol, which keeps it
        # cacheable; the symbols resolve in the library loaded here.
        llvm.load_library_permanently(name)
    except (OSError, RuntimeError):
        raise StoreError(
            "libzstd is not installed; the ring's block encoder needs it "
            "(Debian/Ubuntu: apt-get install libzstd1)"
        ) from None
    vp, size = ctypes.c_void_p, ctypes.c_size_t
    lib.ZSTD_createCCtx.argtypes, lib.ZSTD_createCCtx.restype = [], vp
    lib.ZSTD_freeCCtx.argtypes, lib.ZSTD_freeCCtx.restype = [vp], size
    return lib


_lib = _libzstd()
# Pointers are passed as integers of their width.
_compress: Any = types.ExternalFunction(
    "ZSTD_compressCCtx",
    types.uintp(types.uintp, types.uintp, types.uintp, types.uintp, types.uintp, types.intc),
)
_bound: Any = types.ExternalFunction("ZSTD_compressBound", types.uintp(types.uintp))
_is_error: Any = types.ExternalFunction("ZSTD_isError", types.uintc(types.uintp))


class _Context:
    """A zstd compression context, freed with its thread's locals."""

    def __init__(self) -> None:
        self.ptr = _lib.ZSTD_createCCtx()
        if not self.ptr:
            raise MemoryError("zstd could not create a compression context")
        # Held here: at interpreter exit the module's globals may go first.
        self._free = _lib.ZSTD_freeCCtx

    def __del__(self) -> None:
        self._free(self.ptr)


_local = threading.local()


def _context() -> int:
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        ctx = _local.ctx = _Context()
    return int(ctx.ptr)


@numba.njit(nogil=True, cache=True)
def _fits(v: float, factor: float) -> bool:
    """``v`` scaled by ``factor`` is an integer within 2**52 that decodes back to
    the same bits. Decoding divides an int64, whose zero is +0.0: adding 0.0
    turns a rounded -0.0 into that, so -0.0 itself never fits."""
    scaled = np.rint(v * factor) + 0.0
    if not abs(scaled) < _MAX_EXACT:
        return False
    # ``back`` is never -0.0, so equal numbers are equal bits unless ``v`` is -0.0.
    return scaled / factor == v and (v != 0.0 or math.copysign(1.0, v) > 0.0)


@numba.njit(nogil=True, cache=True)
def _scale(flat: np.ndarray, a: int, b: int, powers: np.ndarray) -> int:
    """The smallest k in 0..6 for which every value of ``flat[a:b]`` is an exact
    k-place decimal within 2**52 when scaled; -1 when none is."""
    for k in range(7):
        ok = True
        for i in range(a, b):
            if not _fits(flat[i], powers[k]):
                ok = False
                break
        if ok:
            return k
    return -1


@numba.njit(nogil=True, cache=True)
def scales(flat: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per run of ``flat`` (run g begins at ``starts[g]``), its :func:`_scale`."""
    out = np.empty(len(starts), np.int64)
    for g in range(len(starts)):
        end = starts[g + 1] if g + 1 < len(starts) else len(flat)
        out[g] = _scale(flat, starts[g], end, _POWERS)
    return out


@numba.njit(nogil=True, cache=True)
def _put_u64(out: np.ndarray, at: int | np.integer, word: np.uint64, nbytes: int) -> None:
    for j in range(nbytes):
        out[at + j] = np.uint8((word >> np.uint64(8 * j)) & np.uint64(0xFF))


@numba.njit(nogil=True, cache=True)
def _shuffle(out: np.ndarray, at: int, words: np.ndarray, m: int) -> None:
    """``words[:m]`` byte-shuffled at ``out[at:]``: byte j of word p at j * m + p."""
    for p in range(m):
        w = words[p]
        for j in range(8):
            out[at + j * m + p] = np.uint8((w >> np.uint64(8 * j)) & np.uint64(0xFF))


@numba.njit(nogil=True, cache=True)
def _encode(
    times: np.ndarray,
    values: np.ndarray,
    tails: np.ndarray,
    starts: np.ndarray,
    raw_below: int,
    version: int,
    cctx: int,
) -> tuple[np.ndarray, np.ndarray, Any]:
    """Every run's block, one after another in one buffer, and where each begins
    (one more offset: the end). The last value is 0, or a zstd error code."""
    n, width = values.shape
    ntails = tails.shape[0]
    runs = len(starts)
    # The most each block may take: compressed bodies take at most zstd's bound.
    cap = np.int64(0)
    biggest = 0
    for g in range(runs):
        c = (starts[g + 1] if g + 1 < runs else n) - starts[g]
        size = c * (8 + 8 * width + ntails)
        cap += HEADER_SIZE + (size if c < raw_below else np.int64(_bound(size)))
        biggest = max(biggest, size)
    out = np.empty(cap, np.uint8)
    offsets = np.empty(runs + 1, np.int64)
    body = np.empty(biggest, np.uint8)
    words = np.empty(max(biggest // 8, 1), np.uint64)
    flat = np.empty(max(biggest // 8, 1), np.float64)
    bits = flat.view(np.uint64)
    steps = np.empty(max(biggest // 8, 1), np.uint64)
    pos = np.int64(0)
    for g in range(runs):
        a = starts[g]
        c = (starts[g + 1] if g + 1 < runs else n) - a
        m = c * width
        # Values laid out per run, limit columns one after another.
        for col in range(width):
            for i in range(c):
                flat[col * c + i] = values[a + i, col]
        scale = _scale(flat, 0, m, _POWERS)
        if scale >= 0:
            prev = np.int64(0)
            for i in range(m):
                v = np.int64(np.rint(flat[i] * _POWERS[scale]))
                words[i] = np.uint64(v - prev)
                prev = v
        else:
            prevw = np.uint64(0)
            for i in range(m):
                words[i] = bits[i] ^ prevw
                prevw = bits[i]
        size = c * (8 + 8 * width + ntails)
        # Times as steps from the run's first, which the header holds.
        t0 = times[a] if c else np.int64(0)
        prev_t = t0
        for i in range(c):
            steps[i] = np.uint64(times[a + i] - prev_t)
            prev_t = times[a + i]
        _shuffle(body, 0, steps, c)
        _shuffle(body, 8 * c, words, m)
        at = 8 * c + 8 * m
        for t in range(ntails):
            for i in range(c):
                body[at + i] = tails[t, a + i]
            at += c
        # The header: magic, version, mode, scale, width, has changes, n, t0.
        raw = c < raw_below
        out[pos] = _MAGIC0
        out[pos + 1] = _MAGIC1
        out[pos + 2] = version
        out[pos + 3] = (MODE_DECIMAL if scale >= 0 else MODE_FLOAT) | (F_RAW if raw else 0)
        out[pos + 4] = max(scale, 0)
        out[pos + 5] = width
        out[pos + 6] = 1 if ntails == 3 else 0
        _put_u64(out, pos + 7, np.uint64(c), 4)
        _put_u64(out, pos + 11, np.uint64(t0), 8)
        offsets[g] = pos
        pos += HEADER_SIZE
        if raw:
            out[pos : pos + size] = body[:size]
            pos += size
        else:
            dst = out[pos:]
            made = _compress(cctx, dst.ctypes.data, len(dst), body.ctypes.data, size, LEVEL)
            if _is_error(made):
                return out, offsets, np.int64(made)
            pos += np.int64(made)
    offsets[runs] = pos
    return out, offsets, 0


def encode_runs(
    times: np.ndarray,
    values: np.ndarray,
    tails: list[np.ndarray],
    starts: np.ndarray,
    raw_below: int,
    version: int,
) -> list[bytes]:
    """One block per run: ``values`` is (n, width); ``tails`` the byte columns
    (quality, role and, for status points, transitions); run g begins at
    ``starts[g]``. Blocks of fewer than ``raw_below`` samples keep their body
    as it is."""
    n = len(times)
    out, offsets, err = _encode(
        np.ascontiguousarray(times, np.int64),
        np.ascontiguousarray(values, np.float64).reshape(n, -1),
        np.ascontiguousarray(np.stack(tails) if n else np.zeros((len(tails), 0)), np.uint8),
        np.ascontiguousarray(starts, np.int64),
        raw_below,
        version,
        _context(),
    )
    if err:
        raise StoreError(f"zstd could not compress a block (error code {err})")
    data = out[: offsets[-1]].tobytes()
    bounds = offsets.tolist()
    return [data[bounds[g] : bounds[g + 1]] for g in range(len(bounds) - 1)]


def warm() -> None:
    """Compile (or load from numba's cache) the encoder now, so the first seal
    does not pause for it."""
    encode_runs(
        np.zeros(40, np.int64),
        np.zeros(40),
        [np.zeros(40, np.uint8)] * 2,
        np.array([0, 8], np.int64),
        32,
        1,
    )
