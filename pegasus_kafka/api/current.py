"""Current values of many points as columns, and as light JSON rows.

Columns (one entry per requested key, in request order): ``ikeys``,
``type`` (data type code), ``values``, ``quality``, ``time_ms``, ``host``
(``site/host`` of the sample), and the analog limits in force ``limits``
(n x 4: emergency low, normal low, normal high, emergency high; NaN where a
point has none).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pegasus_kafka.errors import UnknownPoint
from pegasus_kafka.ring.scan import ScanPartition
from pegasus_kafka.schema import ACCUMULATOR, ANALOG, DATA_TYPES, LIMIT, STATUS

VALUE_TYPES = (ANALOG, ACCUMULATOR, STATUS)
LIMIT_NAMES = ("emergency_low", "normal_low", "normal_high", "emergency_high")


def empty(n: int) -> dict[str, np.ndarray]:
    return {
        "ikeys": np.zeros(n, np.int64),
        "type": np.zeros(n, np.uint8),
        "values": np.full(n, np.nan),
        "quality": np.zeros(n, np.uint8),
        "time_ms": np.zeros(n, np.int64),
        "host": np.zeros(n, "U64"),
        "limits": np.full((n, 4), np.nan),
    }


def local(mat: ScanPartition, keys: np.ndarray) -> dict[str, np.ndarray]:
    """The current values of keys that all belong to ``mat``'s partition."""
    with mat.lock:
        # One consistent view: ingest may add a host while this reads.
        return _local(mat, keys)


def _local(mat: ScanPartition, keys: np.ndarray) -> dict[str, np.ndarray]:
    cols = empty(len(keys))
    cols["ikeys"][:] = keys
    seen = np.zeros(len(keys), bool)
    hosts = np.array(mat.hosts or [""], "U64")
    for dtype in VALUE_TYPES:
        got = mat.current_rows(dtype, keys)
        take = got["found"] & ~seen
        if not take.any():
            continue
        seen |= take
        cols["type"][take] = dtype
        cols["values"][take] = got["values"][take]
        cols["quality"][take] = got["quality"][take]
        cols["time_ms"][take] = got["time"][take]
        cols["host"][take] = hosts[got["host"][take].astype(np.int64)]
    if not seen.all():
        missing = keys[~seen][:10]
        raise UnknownPoint(f"unknown point(s): {', '.join(map(str, missing.tolist()))}")
    limits = mat.current_rows(LIMIT, keys)
    has = limits["found"] & (cols["type"] == ANALOG)
    if has.any():  # an empty limits table answers one NaN per key, not four
        cols["limits"][has] = limits["values"][has]
    return cols


def place(into: dict[str, np.ndarray], positions: np.ndarray, part: dict[str, np.ndarray]) -> None:
    for name, col in part.items():
        into[name][positions] = col


def rows(cols: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Light JSON rows; NaN becomes null, limits appear where a point has them."""
    out = []
    for i in range(len(cols["ikeys"])):
        value = float(cols["values"][i])
        row: dict[str, Any] = {
            "ikey": int(cols["ikeys"][i]),
            "type": DATA_TYPES[int(cols["type"][i])],
            "value": None if value != value else value,
            "quality": int(cols["quality"][i]),
            "time_ms": int(cols["time_ms"][i]),
            "host": str(cols["host"][i]),
        }
        lim = cols["limits"][i]
        if not np.isnan(lim).all():
            row["limits"] = {
                name: None if x != x else float(x)
                for name, x in zip(LIMIT_NAMES, lim.tolist(), strict=True)
            }
        out.append(row)
    return out
