"""Hourly summaries of sealed blocks, so long trends are read without decoding.

Every block of a value series (not limits) of at least
:data:`MIN_SUMMARY_SAMPLES` samples gets a summary, written in the same batch
as the block: a header (first and last time, smallest and largest step
between samples, roles present, first and last PRIMARY time) and, for each
UTC hour the block touches, the count, the count of finite values, min, max,
sum of finite values, and the first and last sample (time and value). The
block coder computes it in the pass that encodes the block
(:func:`pegasus_kafka.ring.blocks.encode_summarised`), as :func:`buckets_of`
computes the buckets from the samples; the unit tests hold the two equal.

The resolved series of a day equals one host's samples exactly when that host
was PRIMARY for every sample it sent that day, none of them is thinned, and
no other host's sample fills in (see :mod:`pegasus_kafka.ring.resolve`);
:func:`pegasus_kafka.ring.scan._one_primary` checks that from the summaries
alone. Such a day is answered from the primary's summaries; any other day is
decoded and resolved as usual. Both give the same :class:`Buckets`, from
which :func:`grid_from_buckets` computes what
:func:`pegasus_kafka.api.matrix.regular` computes from the samples: values,
counts, minima and maxima exactly, averages up to rounding (a step's sum adds
the sums of its hours, or of the parts of an hour two blocks share, rather
than sample by sample). Every ring seals at the same offsets, so every ring
holds the same summaries and gives the same averages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pegasus_kafka.ring import _kernels
from pegasus_kafka.ring.blocks import Samples
from pegasus_kafka.schema import PRIMARY

HOUR_MS = 3_600_000
_HEAD_DTYPE = np.dtype(
    [
        ("first_t", "<i8"),
        ("last_t", "<i8"),
        ("min_gap", "<i8"),
        ("max_gap", "<i8"),
        ("role_min", "u1"),
        ("role_max", "u1"),
        ("first_primary", "<i8"),
        ("last_primary", "<i8"),
        ("rows", "<u4"),
    ]
)

NO_TIME = -(2**62)
FIELDS = ("n", "nf", "mn", "mx", "sm", "ft", "fv", "lt", "lv")
# The block coder writes this layout: it must agree.
assert _HEAD_DTYPE.itemsize == _kernels.SUMMARY_HEADER_SIZE
assert 8 * len(FIELDS) == _kernels.SUMMARY_ROW_SIZE
assert (HOUR_MS, PRIMARY, NO_TIME) == (_kernels.HOUR_MS, _kernels.ROLE_PRIMARY, _kernels.NO_TIME)


@dataclass
class Buckets:
    """Per-hour statistics of a series, one row per non-empty hour, by hour."""

    hour: np.ndarray  # int64: time // HOUR_MS
    n: np.ndarray  # int64
    nf: np.ndarray  # int64: finite values
    mn: np.ndarray
    mx: np.ndarray
    sm: np.ndarray  # sum of finite values
    ft: np.ndarray  # int64: first sample's time
    fv: np.ndarray
    lt: np.ndarray  # int64: last sample's time
    lv: np.ndarray

    def __len__(self) -> int:
        return int(self.hour.shape[0])


@dataclass(frozen=True)
class Summary:
    first_t: int
    last_t: int
    min_gap: int
    max_gap: int
    role_min: int
    role_max: int
    first_primary: int
    last_primary: int
    buckets: Buckets


def buckets_of(s: Samples) -> Buckets:
    """Hourly buckets of time-ordered samples."""
    if not len(s):
        z = np.zeros(0, np.int64)
        f = np.zeros(0)
        return Buckets(z, z, z, f, f, f, z, f, z, f)
    v = s.values.astype(np.float64)
    hour = s.times // HOUR_MS
    first = np.flatnonzero(np.concatenate(([True], hour[1:] != hour[:-1])))
    last = np.append(first[1:], len(s)) - 1
    finite = ~np.isnan(v)
    return Buckets(
        hour=hour[first],
        n=(last - first + 1).astype(np.int64),
        nf=np.add.reduceat(finite.astype(np.int64), first),
        mn=np.fmin.reduceat(v, first),
        mx=np.fmax.reduceat(v, first),
        sm=np.add.reduceat(np.where(finite, v, 0.0), first),
        ft=s.times[first],
        fv=v[first],
        lt=s.times[last],
        lv=v[last],
    )


#: blocks with fewer samples get no summary: their header and rows would cost
#: more bytes per sample than the block itself, and their days are decoded
MIN_SUMMARY_SAMPLES = 120


def decode_summary(blob: bytes) -> Summary:
    h = np.frombuffer(blob, _HEAD_DTYPE, count=1)[0]
    rows = int(h["rows"])
    cols = np.frombuffer(blob, np.float64, offset=_HEAD_DTYPE.itemsize).reshape(rows, len(FIELDS))
    ints = {"n", "nf", "ft", "lt"}
    parts = {
        f: (cols[:, i].astype(np.int64) if f in ints else cols[:, i].copy())
        for i, f in enumerate(FIELDS)
    }
    return Summary(
        first_t=int(h["first_t"]),
        last_t=int(h["last_t"]),
        min_gap=int(h["min_gap"]),
        max_gap=int(h["max_gap"]),
        role_min=int(h["role_min"]),
        role_max=int(h["role_max"]),
        first_primary=int(h["first_primary"]),
        last_primary=int(h["last_primary"]),
        buckets=Buckets(parts["ft"] // HOUR_MS, **parts),
    )


def merge(parts: list[Buckets]) -> Buckets:
    """Buckets of several disjoint pieces of one series, hours combined."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return buckets_of(
            Samples(
                np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.uint8), np.zeros(0, np.uint8)
            )
        )
    cat = {f: np.concatenate([getattr(p, f) for p in parts]) for f in ("hour", *FIELDS)}
    order = np.lexsort((cat["ft"], cat["hour"]))
    cat = {k: v[order] for k, v in cat.items()}
    hour = cat["hour"]
    first = np.flatnonzero(np.concatenate(([True], hour[1:] != hour[:-1])))
    last = np.append(first[1:], len(hour)) - 1
    last_t_idx = _argmax_per_group(cat["lt"], first, last)
    return Buckets(
        hour=hour[first],
        n=np.add.reduceat(cat["n"], first),
        nf=np.add.reduceat(cat["nf"], first),
        mn=np.fmin.reduceat(cat["mn"], first),
        mx=np.fmax.reduceat(cat["mx"], first),
        sm=np.add.reduceat(cat["sm"], first),
        ft=cat["ft"][first],
        fv=cat["fv"][first],
        lt=cat["lt"][last_t_idx],
        lv=cat["lv"][last_t_idx],
    )


def _argmax_per_group(values: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    if np.array_equal(first, last):
        return first
    out = first.copy()
    for g in np.flatnonzero(last > first).tolist():
        a, b = int(first[g]), int(last[g])
        out[g] = a + int(np.argmax(values[a : b + 1]))
    return out


def grid_from_buckets(
    b: Buckets, times: np.ndarray, step: int, linear: bool
) -> dict[str, np.ndarray]:
    """What :func:`pegasus_kafka.api.matrix.regular` gives for the series whose hourly
    buckets are ``b``, on hour-aligned ``times`` with a whole number of hours per step."""
    n = len(times)
    per = step // HOUR_MS
    cell_hour = times // HOUR_MS
    # Aggregates over the buckets of each cell.
    lo = np.searchsorted(b.hour, cell_hour, "left")
    hi = np.searchsorted(b.hour, cell_hour + per, "left")
    count = np.zeros(n, np.int64)
    vmin, vmax, avg = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    some = np.flatnonzero(hi > lo)
    if len(some):
        a, z = lo[some], hi[some]
        count[some] = _reduce_ranges(np.add, b.n, a, z)
        vmin[some] = _reduce_ranges(np.fmin, b.mn, a, z)
        vmax[some] = _reduce_ranges(np.fmax, b.mx, a, z)
        sums = _reduce_ranges(np.add, b.sm, a, z)
        good = _reduce_ranges(np.add, b.nf, a, z)
        with np.errstate(invalid="ignore", divide="ignore"):
            avg[some] = np.where(good > 0, sums / np.maximum(good, 1), np.nan)
    # The value at each grid time: the last sample at or before it.
    value = np.full(n, np.nan)
    if len(b):
        k = np.searchsorted(b.hour, cell_hour, "left")  # first bucket at or after the cell
        exact = (k < len(b)) & (b.ft[np.minimum(k, len(b) - 1)] == times)
        prev = k - 1
        has_prev = prev >= 0
        value[has_prev] = b.lv[prev[has_prev]]
        value[exact] = b.fv[k[exact]]
        if linear:
            between = has_prev & ~exact & (k < len(b))
            i, j = prev[between], k[between]
            t_a, t_b = b.lt[i], b.ft[j]
            span = (t_b - t_a).astype(np.float64)
            frac = np.where(span > 0, (times[between] - t_a) / np.where(span > 0, span, 1), 0.0)
            value[between] = b.lv[i] + frac * (b.fv[j] - b.lv[i])
    return {"value": value, "min": vmin, "max": vmax, "avg": avg, "count": count}


def _reduce_ranges(op: np.ufunc, a: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``op`` over each non-empty ``a[lo:hi]``, left to right (so one bucket's sum is
    that bucket's sum exactly). The ranges are ordered and never overlap."""
    ext = np.concatenate([a, np.zeros(1, a.dtype)])  # lets a range end at len(a)
    idx = np.empty(2 * len(lo), np.int64)
    idx[0::2], idx[1::2] = lo, hi
    result: np.ndarray = op.reduceat(ext, idx)[0::2]
    return result
