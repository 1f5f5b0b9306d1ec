"""A point's samples on a regular time grid, with per-step statistics.

For a grid ``t0, t0 + step, ...`` up to ``t1`` (exclusive), each step k holds:

- ``value``: the point's value at the grid time ``t0 + k*step`` by the fill
  rule of its data type. ``previous`` takes the last sample at or before the
  grid time (status points and accumulators always use it: a breaker is open
  or closed, never in between). ``linear`` (analogs only) interpolates
  between the samples either side, and holds the last value after the last
  sample. A grid time before the first sample has no value (NaN).
- ``min``, ``max``, ``avg`` and ``count`` over the samples in
  ``[t0 + k*step, t0 + (k+1)*step)``; NaN where the step holds no sample.

Samples before ``t0`` are needed for the first value; the caller passes them
(the query looks back ``LOOKBACK_MS``).
"""

from __future__ import annotations

import numpy as np

from pegasus_kafka.errors import QueryError
from pegasus_kafka.ring.blocks import Samples
from pegasus_kafka.schema import ANALOG

PREVIOUS = "previous"
LINEAR = "linear"
#: how far before the range the previous value is looked for
LOOKBACK_MS = 3_600_000
#: the most grid cells one request may ask for (points x steps)
MAX_CELLS = 5_000_000


def grid(t0: int, t1: int, step: int, points: int = 1) -> np.ndarray:
    """The grid times, refusing a step that makes the answer too large."""
    if step <= 0:
        raise QueryError("step: must be a positive number of milliseconds")
    if t1 <= t0:
        raise QueryError("time range: 'to' must be after 'from'")
    steps = -(-(t1 - t0) // step)
    if steps * points > MAX_CELLS:
        raise QueryError(
            f"step: {steps} steps x {points} points exceeds {MAX_CELLS} cells; use a larger step"
        )
    return t0 + step * np.arange(steps, dtype=np.int64)


def fill_rule(dtype: int, asked: str | None) -> str:
    rule = asked or PREVIOUS
    if rule not in (PREVIOUS, LINEAR):
        raise QueryError(f"fill: '{rule}' is not one of previous, linear")
    if rule == LINEAR and dtype != ANALOG:
        raise QueryError("fill: linear interpolation is for analogs only")
    return rule


def regular(samples: Samples, times: np.ndarray, step: int, rule: str) -> dict[str, np.ndarray]:
    """Columns value, min, max, avg, count on ``times`` (see the module text)."""
    t, v = samples.times, samples.values.astype(np.float64)
    n = len(times)
    value = np.full(n, np.nan)
    if len(t):
        prev = np.searchsorted(t, times, side="right") - 1
        has = prev >= 0
        value[has] = v[prev[has]]
        if rule == LINEAR:
            nxt = prev + 1
            between = has & (nxt < len(t))
            i, j = prev[between], nxt[between]
            span = (t[j] - t[i]).astype(np.float64)
            frac = np.where(span > 0, (times[between] - t[i]) / np.where(span > 0, span, 1), 0.0)
            value[between] = v[i] + frac * (v[j] - v[i])
    lo = np.searchsorted(t, times, side="left")
    hi = np.searchsorted(t, times + step, side="left")
    count = (hi - lo).astype(np.int64)
    vmin, vmax, avg = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    nonempty = np.flatnonzero(count > 0)
    if len(nonempty):
        first, last = lo[nonempty[0]], hi[nonempty[-1]]
        seg = v[first:last]
        starts = lo[nonempty] - first
        finite = ~np.isnan(seg)
        vmin[nonempty] = np.fmin.reduceat(seg, starts)
        vmax[nonempty] = np.fmax.reduceat(seg, starts)
        sums = np.add.reduceat(np.where(finite, seg, 0.0), starts)
        good = np.add.reduceat(finite.astype(np.int64), starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            avg[nonempty] = np.where(good > 0, sums / np.maximum(good, 1), np.nan)
    return {"value": value, "min": vmin, "max": vmax, "avg": avg, "count": count}
