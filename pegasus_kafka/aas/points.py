"""Per-point state kept as numpy columns, one row per invariant key in key order.

Mining runs a frame at a time: a frame's keys are located with one binary
search and every rule is a vectorised expression over the frame's rows, so a
scan of tens of thousands of points costs a few numpy calls rather than a
Python loop per point. Rows stay in key order, so the state (and anything
computed from it) never depends on the order points first appeared in.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np


def exception_id(*parts: object) -> str:
    """A deterministic id: 32 hex digits of a hash of the parts, equal in every process."""
    text = "|".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class PointTable:
    """Columns of per-point state; ``defaults`` names each column and its initial value."""

    def __init__(self, defaults: dict[str, tuple[Any, Any, tuple[int, ...]]]) -> None:
        #: name -> (dtype, fill value, extra dimensions)
        self.defaults = defaults
        self.keys = np.empty(0, np.int64)
        self.cols: dict[str, np.ndarray] = {
            name: np.full((0, *shape), fill, dtype)
            for name, (dtype, fill, shape) in defaults.items()
        }

    def __len__(self) -> int:
        return len(self.keys)

    def index(self, ikeys: np.ndarray) -> np.ndarray:
        """Row of each key, adding rows (with default state) for keys not seen before."""
        if len(self.keys):
            pos = np.searchsorted(self.keys, ikeys)
            known = self.keys[np.minimum(pos, len(self.keys) - 1)] == ikeys
            if known.all():
                return pos
            new = np.setdiff1d(ikeys[~known], self.keys)
        else:
            new = np.unique(ikeys)
        keys = np.concatenate([self.keys, new])
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        for name, (dtype, fill, shape) in self.defaults.items():
            grown = np.concatenate([self.cols[name], np.full((len(new), *shape), fill, dtype)])
            self.cols[name] = grown[order]
        return np.searchsorted(self.keys, ikeys)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]

    def pack(self) -> bytes:
        buf = io.BytesIO()
        columns: dict[str, Any] = {"__keys__": self.keys, **self.cols}
        np.savez(buf, **columns)
        return buf.getvalue()

    def load(self, data: bytes) -> None:
        with np.load(io.BytesIO(data)) as saved:
            self.keys = saved["__keys__"]
            for name, (dtype, fill, shape) in self.defaults.items():
                if name in saved:
                    self.cols[name] = saved[name].astype(dtype, copy=False)
                else:
                    self.cols[name] = np.full((len(self.keys), *shape), fill, dtype)
