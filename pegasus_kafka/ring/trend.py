"""Hour-aligned trends of a scan partition: from block summaries where a day
allows it, from decoded and resolved samples elsewhere (the rules are in
:mod:`pegasus_kafka.ring.rollup`)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from pegasus_kafka.ring import blocks, rollup
from pegasus_kafka.ring.layout import DAY_MS, block_day, block_key, series_prefix
from pegasus_kafka.ring.resolve import resolve
from pegasus_kafka.schema import BACKUP, PRIMARY

if TYPE_CHECKING:
    from pegasus_kafka.ring.scan import ScanPartition


def read(part: ScanPartition, dtype: int, ikey: int, t0: int, t1: int) -> rollup.Buckets:
    """Hourly buckets of the resolved series in [t0, t1]: whole days whose
    resolved series is one host's samples come from that host's block
    summaries, every other day is decoded and resolved (see
    :mod:`pegasus_kafka.ring.rollup`). ``t0`` is on an hour."""
    view = part.view(dtype)
    hosts = view.hosts
    # Days with samples in frames or segments are decoded: they have no summaries.
    head_days = {f.scan_time_ms // DAY_MS for f in view.frames if (f.ikeys == ikey).any()}
    head_days.update(day for _, days in view.sealed for day in days)
    first_day, last_day = t0 // DAY_MS, t1 // DAY_MS
    days = _day_summaries(part, dtype, ikey, len(hosts), first_day - 1, last_day)
    usable: dict[int, rollup.Buckets] = {}
    for d in range(first_day, last_day + 1):
        whole = d * DAY_MS >= t0 and (d + 1) * DAY_MS - 1 <= t1
        if whole and d not in head_days and d - 1 not in head_days:
            found = _one_primary(days.get(d), days.get(d - 1), part.period_ms())
            if found is not None:
                usable[d] = found
    parts = list(usable.values())
    d = first_day
    while d <= last_day:
        if d in usable:
            d += 1
            continue
        end = d
        while end + 1 <= last_day and end + 1 not in usable:
            end += 1
        # Decode the run of days with a day either side: resolving looks
        # half a scan period across midnight.
        lo, hi = max(t0, d * DAY_MS), min(t1, (end + 1) * DAY_MS - 1)
        streams = part.history(dtype, ikey, lo - DAY_MS, hi + DAY_MS)
        series = resolve([streams[h] for h in hosts if h in streams], part.period_ms())
        keep = (series.times >= lo) & (series.times <= hi)
        parts.append(rollup.buckets_of(blocks.select(series, keep)))
        d = end + 1
    return rollup.merge(parts)


def _day_summaries(
    part: ScanPartition, dtype: int, ikey: int, hosts: int, first_day: int, last_day: int
) -> dict[int, list[tuple[int, rollup.Summary | None]]]:
    """Per day, every block's (host, summary), None where a block has none."""
    out: dict[int, list[tuple[int, rollup.Summary | None]]] = {}
    blocks_cf, sums_cf = part.store.cf("blocks"), part.store.cf("summaries")
    for host in range(hosts):
        prefix = series_prefix(dtype, ikey, host)
        start = block_key(dtype, ikey, host, max(first_day, 0), 0)
        found: dict[bytes, rollup.Summary] = {}
        it = sums_cf.iter()
        it.seek(start)
        while it.valid() and it.key().startswith(prefix):
            if block_day(it.key()) > last_day:
                break
            found[it.key()] = rollup.decode_summary(it.value())
            it.next()
        it = blocks_cf.iter()
        it.seek(start)
        while it.valid() and it.key().startswith(prefix):
            day = block_day(it.key())
            if day > last_day:
                break
            out.setdefault(day, []).append((host, found.get(it.key())))
            it.next()
    return out


def _one_primary(
    day: list[tuple[int, rollup.Summary | None]] | None,
    before: list[tuple[int, rollup.Summary | None]] | None,
    period: int,
) -> rollup.Buckets | None:
    """The day's buckets from its summaries, when its resolved series is exactly
    one host's samples; None when the day must be decoded.

    That holds when one host was PRIMARY for all it sent that day, at every
    scan from its first to its last, one period apart (so nothing is thinned,
    given also half a period since the previous day's last primary sample),
    and every other host's blocks are BACKUP, also one period apart, within
    that span and less than half a period off the primary's scans (so none
    of their samples fills in). Scans with jittered times are decoded.
    """
    tol = max(1, period // 2)
    if not day or any(s is None for _, s in day):
        return None
    sums = [(h, s) for h, s in day if s is not None]
    if not all(s.first_t == s.last_t or s.min_gap == s.max_gap == period for _, s in sums):
        return None
    hosts = {h for h, _ in sums}
    primary = [
        h for h in hosts if all(s.role_min == s.role_max == PRIMARY for g, s in sums if g == h)
    ]
    if len(primary) != 1:
        return None
    mine = sorted((s for h, s in sums if h == primary[0]), key=lambda s: s.first_t)
    if any(b.first_t - a.last_t != period for a, b in itertools.pairwise(mine)):
        return None
    start, end = mine[0].first_t, mine[-1].last_t
    for h, s in sums:
        if h == primary[0]:
            continue
        phase = (s.first_t - start) % period
        if not (
            s.role_min == s.role_max == BACKUP
            and start - tol < s.first_t
            and s.last_t < end + tol
            and (phase < tol or phase > period - tol)
        ):
            return None
    if before:
        if any(s is None for _, s in before):
            return None
        last = max(s.last_primary for _, s in before if s is not None)
        if start - last < tol:
            return None
    return rollup.merge([s.buckets for s in mine])
