"""Where a scan partition's sealed blocks live: one key per (data type, point,
host, day, seal), so a point's blocks of one host are contiguous and in day
order, and a range of days is one seek and a short scan."""

from __future__ import annotations

import struct

import numpy as np

DAY_MS = 86_400_000
_SIGN = 1 << 63
_BLOCK_KEY = struct.Struct(">BQHIQ")
_SERIES = struct.Struct(">BQH")


def block_key(dtype: int, ikey: int, host: int, day: int, seal: int) -> bytes:
    return _BLOCK_KEY.pack(dtype, (ikey + _SIGN) & (2**64 - 1), host, day, seal)


_KEYS = np.dtype([("t", "u1"), ("k", ">u8"), ("h", ">u2"), ("d", ">u4"), ("s", ">u8")])


def block_keys(
    dtype: int, ikeys: np.ndarray, hosts: np.ndarray, days: np.ndarray, seal: int
) -> list[bytes]:
    """:func:`block_key` for many blocks at once (the same bytes)."""
    rows = np.empty(len(ikeys), _KEYS)
    rows["t"], rows["s"] = dtype, seal
    rows["k"] = np.asarray(ikeys, np.int64).view(np.uint64) ^ np.uint64(_SIGN)
    rows["h"], rows["d"] = hosts, days
    data = rows.tobytes()
    size = _KEYS.itemsize
    return [data[i : i + size] for i in range(0, len(data), size)]


def series_prefix(dtype: int, ikey: int, host: int) -> bytes:
    """The common start of every block key of one point's stream from one host."""
    return _SERIES.pack(dtype, (ikey + _SIGN) & (2**64 - 1), host)


def block_day(key: bytes) -> int:
    return int(_BLOCK_KEY.unpack(key)[3])


def block_seal(key: bytes) -> int:
    return int.from_bytes(key[-8:], "big")


def parse_block_key(key: bytes) -> tuple[int, int, int, int, int]:
    """(data type, ikey, host, day, seal) of a block key."""
    dtype, ikey, host, day, seal = _BLOCK_KEY.unpack(key)
    return int(dtype), (int(ikey) - _SIGN), int(host), int(day), int(seal)
