"""The current-value table against a plain model of its update rule."""

from __future__ import annotations

import numpy as np

from pegasus_kafka.ring.current import CurrentTable
from pegasus_kafka.schema import ANALOG, BACKUP, PRIMARY, Frame

PERIOD = 5000


def frame(host: str, role: int, seq: int, chunk: int, ikeys: list[int], t: int) -> Frame:
    keys = np.array(ikeys, np.int64)
    return Frame(
        site="north",
        host=host,
        role=role,
        seq=seq,
        scan_time_ms=t,
        scan_period_ms=PERIOD,
        data_type=ANALOG,
        chunk=chunk,
        ikeys=keys,
        values=keys * 0.5 + seq,
        quality=np.full(len(keys), seq % 256, np.uint8),
        changes=np.zeros(0, np.uint8),
    )


def model(frames: list[tuple[Frame, int]]) -> dict[int, tuple[float, int, int, int]]:
    """ikey -> (value, time, host, role), the rule in the module's docstring, point by point."""
    rows: dict[int, tuple[float, int, int, int]] = {}
    for f, host in frames:
        for i, k in enumerate(f.ikeys.tolist()):
            t = f.scan_time_ms
            cur = rows.get(k)
            if cur is None:
                take = True
            elif f.role == PRIMARY:
                take = t >= cur[1] if cur[3] == PRIMARY else t >= cur[1] - PERIOD // 2
            else:
                take = t > cur[1] + 3 * PERIOD // 2 if cur[3] == PRIMARY else t >= cur[1]
            if take:
                rows[k] = (float(f.values[i]), t, host, f.role)
    return rows


def test_rows_remembered_per_chunk_follow_new_points_and_moved_chunks() -> None:
    frames: list[tuple[Frame, int]] = []
    for seq in range(8):
        t = seq * PERIOD
        # Chunk 0 holds the same points scan after scan, except where a new
        # point joins it (seq 3) or its points change altogether (seq 5).
        first = [1, 3, 5, 7] if seq < 3 else [1, 2, 3, 5, 7]
        if seq >= 5:
            first = [11, 13]
        frames.append((frame("ems-a", PRIMARY, seq, 0, first, t), 0))
        frames.append((frame("ems-a", PRIMARY, seq, 1, [20, 21, 22], t), 0))
        # The backup is a little late, and stands in after the primary stops.
        role = BACKUP if seq < 6 else PRIMARY
        frames.append((frame("ems-b", role, seq, 0, first, t + 200), 1))
    check(frames)


def test_rows_out_of_key_order_or_apart_follow_the_rule() -> None:
    """Frames whose points are not consecutive rows of the table in their own
    order: shuffled, with gaps, or interleaved with another host's chunk."""
    frames: list[tuple[Frame, int]] = []
    for seq in range(6):
        t = seq * PERIOD
        frames.append((frame("ems-a", PRIMARY, seq, 0, [1, 2, 3, 4, 5, 6], t), 0))
        frames.append((frame("ems-a", PRIMARY, seq, 1, [9, 7, 8], t), 0))
        frames.append((frame("ems-b", BACKUP, seq, 0, [2, 4, 6, 8], t + 200), 1))
        # From seq 3 the primary's second chunk is late: the backup stands in.
        if seq >= 3:
            frames.pop(-2)
    check(frames)


def check(frames: list[tuple[Frame, int]]) -> None:
    table = CurrentTable()
    for f, host in frames:
        table.update(f, host)
    want = model(frames)
    assert table.keys.tolist() == sorted(want)
    got = {
        int(k): (float(v), int(t), int(h), int(r))
        for k, v, t, h, r in zip(
            table.keys, table.values, table.time, table.host, table.role, strict=True
        )
    }
    assert got == want
