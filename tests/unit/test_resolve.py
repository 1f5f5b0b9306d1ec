"""The resolution rule of two hosts' streams, under every ordering and failover."""

from __future__ import annotations

import itertools

import numpy as np

from pegasus_kafka.ring.blocks import Samples, concat
from pegasus_kafka.ring.resolve import resolve
from pegasus_kafka.schema import BACKUP, PRIMARY

P = 5000


def stream(times: list[int], role: list[int] | int, value: float) -> Samples:
    n = len(times)
    roles = np.full(n, role, np.uint8) if isinstance(role, int) else np.array(role, np.uint8)
    return Samples(
        times=np.array(times, np.int64),
        values=np.full(n, value),
        quality=np.zeros(n, np.uint8),
        role=roles,
    )


def test_primary_wins_where_both_scanned() -> None:
    a = stream([0, P, 2 * P], PRIMARY, 1.0)
    b = stream([37, P + 37, 2 * P + 37], BACKUP, 2.0)
    r = resolve([a, b], P)
    assert r.times.tolist() == [0, P, 2 * P] and set(r.values.tolist()) == {1.0}


def test_backup_fills_the_gap_of_the_primary() -> None:
    a = stream([0, P, 4 * P], PRIMARY, 1.0)  # missed scans 2 and 3
    b = stream([37 + k * P for k in range(5)], BACKUP, 2.0)
    r = resolve([a, b], P)
    assert r.times.tolist() == [0, P, 2 * P + 37, 3 * P + 37, 4 * P]
    assert r.values.tolist() == [1.0, 1.0, 2.0, 2.0, 1.0]


def test_failovers_leave_no_gap_and_no_duplicate() -> None:
    # Host a is primary for scans 0-3, b for 4-7, a again for 8-11; each
    # host misses two scans around each switch.
    a_scans = [k for k in range(12) if k not in (4, 5)]
    b_scans = [k for k in range(12) if k not in (3, 8)]
    role_a = [PRIMARY if k < 4 or k >= 8 else BACKUP for k in a_scans]
    role_b = [PRIMARY if 4 <= k < 8 else BACKUP for k in b_scans]
    a = stream([k * P for k in a_scans], role_a, 1.0)
    b = stream([k * P + 37 for k in b_scans], role_b, 2.0)
    r = resolve([a, b], P)
    scans = np.round(r.times / P).astype(int).tolist()
    assert scans == list(range(12))


def test_resolution_ignores_the_order_samples_arrived_in() -> None:
    a = stream([0, P, 3 * P], PRIMARY, 1.0)
    b = stream([37, 2 * P + 37, 3 * P + 37], BACKUP, 2.0)
    expected = resolve([a, b], P)
    pieces = [stream([t], PRIMARY, 1.0) for t in a.times] + [
        stream([t], BACKUP, 2.0) for t in b.times
    ]
    for perm in itertools.permutations(range(len(pieces))):
        a_parts = [pieces[i] for i in perm if pieces[i].role[0] == PRIMARY]
        b_parts = [pieces[i] for i in perm if pieces[i].role[0] == BACKUP]
        got = resolve([concat(a_parts), concat(b_parts)], P)
        assert got.times.tolist() == expected.times.tolist()
        assert got.values.tolist() == expected.values.tolist()


def test_two_primaries_keep_the_earlier_sample() -> None:
    a = stream([0, P], PRIMARY, 1.0)
    b = stream([10, P + 10], PRIMARY, 2.0)
    r = resolve([a, b], P)
    assert r.values.tolist() == [1.0, 1.0]
