"""The scan materialiser on real RocksDB: exact history, dedup, skips, seals, restarts."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pegasus_kafka.collector.frames import ScanHeader, cut_frames
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.ring import segments, tiers
from pegasus_kafka.ring.resolve import resolve
from pegasus_kafka.ring.scan import FORMAT, Fetch, ScanPartition, open_store
from pegasus_kafka.ring.store import raw_items
from pegasus_kafka.schema import ANALOG, BACKUP, LIMIT, PRIMARY, STATUS, Frame, encode_frame

Record = tuple[int, bytes | None, bytes | None]


def host_frames(cfg: Config, host: str, role: int, scans: range, partition: int = 0) -> list[bytes]:
    site = cfg.sites[0]
    src = SimSource(site, host, role)
    out = []
    for seq in scans:
        res = src.read(seq)
        header = ScanHeader(site.name, host, res.role, seq, res.scan_time_ms, site.scan_period_ms)
        for scan in res.scans:
            for p, frame in cut_frames(header, scan, cfg.topics.partitions, 64):
                if p == partition:
                    out.append(encode_frame(frame))
    return out


def as_records(values: list[bytes | None]) -> list[Record]:
    return [(i, b"k", v) for i, v in enumerate(values)]


def reader(records: list[Record]) -> Fetch:
    """The topic ``records`` came from, as a server reads a range of it back."""

    def fetch(first: int, end: int) -> list[tuple[int, bytes | None]]:
        return [(offset, value) for offset, _, value in records if first <= offset < end]

    return fetch


def open_partition(
    path: Path, seal_samples: int = 10**9, records: list[Record] | None = None
) -> ScanPartition:
    """A scan partition; reopening one needs the ``records`` of its topic."""
    fetch = reader(records) if records is not None else None
    return ScanPartition(open_store(path), seal_samples, 10**12, fetch)


@pytest.fixture
def two_hosts(unit_config: Config) -> tuple[list[bytes], list[bytes]]:
    scans = range(100, 130)
    return (
        host_frames(unit_config, "ems-a", PRIMARY, scans),
        host_frames(unit_config, "ems-b", BACKUP, scans),
    )


def expected_series(cfg: Config, host: str, role: int, ikey: int, scans: range) -> np.ndarray:
    src = SimSource(cfg.sites[0], host, role)
    idx = int(np.flatnonzero(src.field.ikeys == ikey)[0])
    return np.array(
        [src.field.values(s, src.read(s).scan_time_ms, src._salt)[0][idx] for s in scans]
    )


def an_ikey(part: ScanPartition, dtype: int = ANALOG) -> int:
    return int(part.current[dtype].keys[0])


def test_history_per_host_is_exactly_what_was_sent(
    tmp_path: Path, unit_config: Config, two_hosts: tuple[list[bytes], list[bytes]]
) -> None:
    a, b = two_hosts
    part = open_partition(tmp_path / "p", seal_samples=2000)
    part.apply(as_records(a + b))
    ikey = an_ikey(part)
    streams = part.history(ANALOG, ikey, 0, 2**62)
    scans = range(100, 130)
    np.testing.assert_array_equal(
        streams["north/ems-a"].values, expected_series(unit_config, "ems-a", PRIMARY, ikey, scans)
    )
    np.testing.assert_array_equal(
        streams["north/ems-b"].values, expected_series(unit_config, "ems-b", BACKUP, ikey, scans)
    )
    assert part.seal_seq > 0, "the small seal threshold must have sealed blocks"
    part.close()


@pytest.mark.parametrize("order", ["a-then-b", "b-then-a", "interleaved", "reversed-pairs"])
def test_resolved_series_does_not_depend_on_host_order(
    tmp_path: Path, two_hosts: tuple[list[bytes], list[bytes]], order: str
) -> None:
    a, b = two_hosts
    reference = open_partition(tmp_path / "ref")
    reference.apply(as_records(a + b))
    ikey = an_ikey(reference)
    want = resolve(list(reference.history(ANALOG, ikey, 0, 2**62).values()), 1000)
    seq = {
        "a-then-b": a + b,
        "b-then-a": b + a,
        "interleaved": [f for pair in zip(a, b, strict=True) for f in pair],
        "reversed-pairs": [f for pair in zip(b, a, strict=True) for f in pair],
    }[order]
    part = open_partition(tmp_path / order, seal_samples=1500)
    part.apply(as_records(seq))
    streams = part.history(ANALOG, ikey, 0, 2**62)
    got = resolve([streams[h] for h in sorted(streams)], 1000)
    np.testing.assert_array_equal(got.times, want.times)
    np.testing.assert_array_equal(got.values, want.values)
    assert len(got) == 30, "one resolved sample per scan"
    reference.close()
    part.close()


def test_resent_frames_are_applied_once(
    tmp_path: Path, two_hosts: tuple[list[bytes], list[bytes]]
) -> None:
    a, _ = two_hosts
    part = open_partition(tmp_path / "p")
    first = part.apply(as_records(a))
    again = part.apply([(len(a) + i, b"k", v) for i, v in enumerate(a)])
    assert first.applied == len(a) and again.applied == 0 and again.duplicates == len(a)
    ikey = an_ikey(part)
    assert len(part.history(ANALOG, ikey, 0, 2**62)["north/ems-a"]) == 30
    part.close()


def test_malformed_records_are_skipped_and_covered_by_the_digest(
    tmp_path: Path, two_hosts: tuple[list[bytes], list[bytes]]
) -> None:
    a, _ = two_hosts
    good = open_partition(tmp_path / "good")
    good.apply(as_records(a[:5]))
    bad = open_partition(tmp_path / "bad")
    result = bad.apply(as_records([*a[:5], b"\x07garbage"]))
    assert [off for off, _ in result.dead] == [5]
    assert bad.store.applied_offset == 6
    assert bad.store.digest != good.store.digest
    assert dict(bad.store.cf("skips").items())
    good.close()
    bad.close()


def test_same_records_same_digest_and_one_changed_sample_differs(
    tmp_path: Path, unit_config: Config, two_hosts: tuple[list[bytes], list[bytes]]
) -> None:
    a, b = two_hosts
    one, two = open_partition(tmp_path / "1", 1500), open_partition(tmp_path / "2", 1500)
    for part in (one, two):
        for i in range(0, len(a + b), 7):  # batch boundaries must not matter
            part.apply(as_records(a + b)[i : i + 7])
    assert one.store.digest == two.store.digest
    assert one.scan_digest() == (two.store.applied_offset, two.store.digest, two.store.digest)
    # A ring that received one different sample holds a different RDS.
    from pegasus_kafka.schema import decode_frame

    frame = decode_frame(a[0])
    values = frame.values.copy()
    values[0] += 0.1
    changed = encode_frame(dataclasses.replace(frame, values=values))
    three = open_partition(tmp_path / "3", 1500)
    for i in range(0, len(a + b), 7):
        three.apply(as_records([changed, *a[1:], *b])[i : i + 7])
    assert three.store.digest != one.store.digest
    for part in (one, two, three):
        part.close()


def test_restart_resumes_from_the_store(
    tmp_path: Path, two_hosts: tuple[list[bytes], list[bytes]]
) -> None:
    a, b = two_hosts
    records = as_records(a + b)
    whole = open_partition(tmp_path / "whole", 1500)
    whole.apply(records)
    split = open_partition(tmp_path / "split", 1500)
    split.apply(records[:41])
    split.close()
    split = open_partition(tmp_path / "split", 1500, records)
    assert split.store.applied_offset == 41
    split.apply(records[41:])
    assert split.store.digest == whole.store.digest
    ikey = an_ikey(whole)
    for t in (ANALOG, STATUS):
        keys = whole.current[t].keys
        np.testing.assert_array_equal(
            split.current_rows(t, keys)["values"], whole.current_rows(t, keys)["values"]
        )
    h1 = whole.history(ANALOG, ikey, 0, 2**62)
    h2 = split.history(ANALOG, ikey, 0, 2**62)
    for host in h1:
        np.testing.assert_array_equal(h1[host].values, h2[host].values)
    whole.close()
    split.close()


def test_a_crash_without_a_write_ahead_log_leaves_a_state_the_store_had(
    tmp_path: Path, two_hosts: tuple[list[bytes], list[bytes]]
) -> None:
    """A scan store keeps no write-ahead log: a process that dies keeps what was
    flushed, all column families together, and replays the rest."""
    a, b = two_hosts
    records = as_records(a + b)
    whole = open_partition(tmp_path / "whole", 1500)
    whole.apply(records)
    path, sent = tmp_path / "crashed", tmp_path / "records.pickle"
    sent.write_bytes(pickle.dumps(records))
    # A process of its own, which dies without closing or flushing anything.
    dies = """
import os, pickle, sys
from pathlib import Path
from pegasus_kafka.ring.scan import ScanPartition, open_store
records = pickle.loads(Path(sys.argv[1]).read_bytes())
part = ScanPartition(open_store(Path(sys.argv[2])), 1500, 10**12)
part.ingest(records[:60])
part.seal()
part.store.flush()
part.ingest(records[60:120])
part.seal()
os._exit(0)
"""
    subprocess.run([sys.executable, "-c", dies, str(sent), str(path)], check=True, timeout=120)
    crashed = open_partition(path, 1500, records)
    assert crashed.store.applied_offset == 60, "what was flushed, and no more"
    assert crashed.scan_digest()[1:] == (crashed.store.digest, crashed.store.digest)
    crashed.apply(records[60:])
    assert crashed.scan_digest() == whole.scan_digest()
    assert crashed.store.digests() == whole.store.digests()
    crashed.close()
    whole.close()


def test_current_prefers_the_primary(
    tmp_path: Path, two_hosts: tuple[list[bytes], list[bytes]]
) -> None:
    a, b = two_hosts
    part = open_partition(tmp_path / "p")
    part.apply(as_records(b + a))  # backup's frames arrive first
    keys = part.current[ANALOG].keys
    rows = part.current_rows(ANALOG, keys)
    assert {part.hosts[h] for h in rows["host"]} == {"north/ems-a"}
    part.close()


def test_the_head_seals_by_scan_time_span_too(
    tmp_path: Path, unit_config: Config, two_hosts: tuple[list[bytes], list[bytes]]
) -> None:
    a, _ = two_hosts
    part = ScanPartition(open_store(tmp_path / "p"), 10**9, 5_000)
    part.apply(as_records(a))
    assert part.seal_seq >= 5, "30 one-second scans cross a 5 s span several times"
    ikey = an_ikey(part)
    got = part.history(ANALOG, ikey, 0, 2**62)["north/ems-a"].values
    want = expected_series(unit_config, "ems-a", PRIMARY, ikey, range(100, 130))
    np.testing.assert_array_equal(got, want)
    part.close()


def test_bulk_loaded_history_reads_back_exactly_and_survives_a_reopen(tmp_path: Path) -> None:
    from pegasus_kafka.schema import Frame

    part = open_partition(tmp_path / "p")
    day = 86_400_000
    times = np.arange(0, 3 * day, 5_000, dtype=np.int64) + 7 * day
    values = np.round(np.sin(times / 1e7) * 100, 1)
    quality = np.zeros(len(times), np.uint8)
    last = Frame(
        "north", "ems-a", PRIMARY, 0, int(times[-1]), 5_000, ANALOG, 0,
        np.array([42], np.int64), values[-1:], quality[-1:], np.zeros(0, np.uint8),
    )  # fmt: skip
    part.load_history(ANALOG, last, times, values, quality, days_per_batch=2)
    part.close()
    part = open_partition(tmp_path / "p")
    got = part.history(ANALOG, 42, int(times[0]), int(times[-1]))["north/ems-a"]
    assert got.times.tolist() == times.tolist() and got.values.tolist() == values.tolist()
    assert part.knows(ANALOG, 42)
    assert part.current_rows(ANALOG, np.array([42]))["values"][0] == values[-1]
    _, recorded, scanned = part.scan_digest()
    assert recorded == scanned
    part.close()


def test_current_columns_before_any_limits_have_arrived(tmp_path: Path) -> None:
    from pegasus_kafka.api.current import local, rows
    from pegasus_kafka.schema import Frame

    part = open_partition(tmp_path / "p")
    frame = Frame(
        "north", "ems-a", PRIMARY, 1, 1000, 1000, ANALOG, 0,
        np.array([5, 9], np.int64), np.array([1.5, 2.5]), np.zeros(2, np.uint8),
        np.zeros(0, np.uint8),
    )  # fmt: skip
    part.apply([(0, b"k", encode_frame(frame))])
    cols = local(part, np.array([9, 5], np.int64))
    assert cols["values"].tolist() == [2.5, 1.5] and np.isnan(cols["limits"]).all()
    assert [r["host"] for r in rows(cols)] == ["north/ems-a"] * 2
    part.close()


def test_a_frame_without_samples_does_not_stop_the_seal(tmp_path: Path) -> None:
    def frame(dtype: int, ikeys: list[int], time_ms: int) -> bytes:
        n = len(ikeys)
        return encode_frame(
            Frame(
                "north", "ems-a", PRIMARY, 1, time_ms, 1000, dtype, 0,
                np.array(ikeys, np.int64), np.arange(n, dtype=np.float64), np.zeros(n, np.uint8),
                np.zeros(n if dtype == STATUS else 0, np.uint8),
            )
        )  # fmt: skip

    # A data type whose only frame is empty, and an empty frame among others.
    values = [frame(STATUS, [], 1000), frame(ANALOG, [5, 9], 1000), frame(ANALOG, [], 2000)]
    part = open_partition(tmp_path / "p", seal_samples=2)
    part.apply(as_records(values))
    assert part.pending_seals() == 0 and part.seal_seq >= 1
    assert part.history(ANALOG, 9, 0, 2**62)["north/ems-a"].values.tolist() == [1.0]
    part.close()


def test_seals_whenever_they_run_or_after_a_crash_give_the_same_store(
    tmp_path: Path, two_hosts: tuple[list[bytes], list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two_hosts
    records = as_records(a + b)
    # Merges every other seal, so the few seals here reach both levels.
    monkeypatch.setattr(tiers, "FANIN", 2)
    whole = open_partition(tmp_path / "whole", 1500)
    whole.apply(records)
    assert whole.seal_seq >= tiers.FANIN**2, "the data must reach a second-level merge"
    ikey = an_ikey(whole)
    want = whole.history(ANALOG, ikey, 0, 2**62)

    # A server's way: ingest everything first; the sealer catches up later.
    late = open_partition(tmp_path / "late", 1500)
    late.ingest(records)
    assert late.pending_seals() == whole.seal_seq
    assert late.store.digests() == whole.store.digests(), "digests do not wait for seals"
    unsealed = late.history(ANALOG, ikey, 0, 2**62)
    while late.seal():
        pass

    # Seals interleaved with ingest, one at a time.
    mixed = open_partition(tmp_path / "mixed", 1500)
    for i in range(0, len(records), 50):
        mixed.ingest(records[i : i + 50])
        mixed.seal()
    while mixed.seal():
        pass

    # Seals and merges staged in pieces of a few points each, giving way to
    # ingest between pieces, as a live server's sealer does.
    small = monkeypatch.context()
    patch = small.__enter__()
    patch.setattr(segments, "RUNS", 3)
    patch.setattr(tiers, "CHUNK_POINTS", 3)
    patch.setattr(tiers, "MERGE_BLOCKS", 16)
    pieces = open_partition(tmp_path / "pieces", 1500)
    rest = list(records)
    pauses = 0

    def ingest_some() -> None:
        taken, rest[:] = rest[:20], rest[20:]
        if taken:
            pieces.ingest(taken)

    def give_way() -> None:
        nonlocal pauses
        pauses += 1
        ingest_some()

    while rest or pieces.pending_seals():
        if not pieces.seal(give_way):
            ingest_some()
    small.__exit__(None, None, None)
    assert pauses > whole.seal_seq * 3, "seals gave way between their pieces"

    # A crash with frozen generations not yet sealed, one of them half way:
    # some of its segments are written, its commit is not.
    crashed = open_partition(tmp_path / "crashed", 1500)
    crashed.ingest(records)
    pending = crashed.pending_seals()
    assert pending >= 2
    half = crashed.frozen[0].seq
    with monkeypatch.context() as patch:
        patch.setattr(segments, "RUNS", 3)
        with pytest.raises(_Killed):
            crashed.seal(_killed_after(6))
    written = [k for k, _ in raw_items(crashed.store.cf("segments").items())]
    assert {segments.parse_key(k)[3] for k in written} == {half}, "some segments, not all"
    crashed = _same_after_reopen(crashed, tmp_path / "crashed", ikey, pending, records)
    crashed.seal()

    # A crash in a level-1 merge: some of its blocks are written, its commit
    # (which deletes the segments) is not.
    stage, staged = tiers.stage_coded, 0

    def counted(*args: Any, **kwargs: Any) -> None:
        nonlocal staged
        staged += 1
        stage(*args, **kwargs)

    def killed_after_two() -> None:
        if staged >= 2:
            raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(tiers, "CHUNK_POINTS", 3)
        patch.setattr(tiers, "stage_coded", counted)
        with pytest.raises(_Killed):
            crashed.seal(killed_after_two)
    assert crashed.in_segments, "the merge did not commit"
    assert list(crashed.store.cf("blocks").keys()), "the merge wrote some blocks before it died"
    crashed = _same_after_reopen(
        crashed, tmp_path / "crashed", ikey, crashed.pending_seals(), records
    )
    while crashed.seal():
        pass

    for part in (late, mixed, pieces, crashed):
        assert (part.store.applied_offset, part.store.digest) == (
            whole.store.applied_offset,
            whole.store.digest,
        )
        assert part.store.digests() == whole.store.digests()
        for cf in ("frames", "segments", "blocks", "summaries"):
            assert dict(part.store.cf(cf).items()) == dict(whole.store.cf(cf).items()), cf
        got = part.history(ANALOG, ikey, 0, 2**62)
        for host in want:
            np.testing.assert_array_equal(got[host].values, want[host].values)
            np.testing.assert_array_equal(unsealed[host].times, want[host].times)
        assert part.scan_digest() == (
            whole.store.applied_offset,
            whole.store.digest,
            whole.store.digest,
        )
        part.close()
    whole.close()


class _Killed(Exception):
    """Stands for a process killed in the middle of a seal."""


def _same_after_reopen(
    part: ScanPartition, path: Path, ikey: int, pending: int, records: list[Record]
) -> ScanPartition:
    """Checks that ``part``, left by a crash, reads and digests as it did before
    the crash, and again after a reopen; returns the reopened partition."""
    before = part.history(ANALOG, ikey, 0, 2**62)
    for reopen in (False, True):
        if reopen:
            part.close()
            part = open_partition(path, 1500, records)
        assert part.pending_seals() == pending, "what is still due is known"
        assert part.scan_digest()[1:] == (part.store.digest, part.store.digest)
        got = part.history(ANALOG, ikey, 0, 2**62)
        assert set(got) == set(before)
        for host in before:
            np.testing.assert_array_equal(got[host].times, before[host].times)
            np.testing.assert_array_equal(got[host].values, before[host].values)
    return part


def _killed_after(pieces: int) -> Callable[[], None]:
    calls = 0

    def pause() -> None:
        nonlocal calls
        calls += 1
        if calls > pieces:
            raise _Killed

    return pause


def test_a_format_1_store_is_migrated_on_open(
    tmp_path: Path, two_hosts: tuple[list[bytes], list[bytes]]
) -> None:
    from pegasus_kafka.ring.store import K_DIGEST, K_DIGEST_AT, K_FORMAT, u64

    a, b = two_hosts
    records = as_records(a + b)
    part = open_partition(tmp_path / "p", 1500)
    part.apply(records)
    digest = part.store.digest
    # Make it look like format 1: another digest, and checkpoints of it.
    meta = part.store.cf("meta")
    meta[K_FORMAT] = u64(1)
    meta[K_DIGEST] = u64(12345)
    meta[K_DIGEST_AT + u64(10**9)] = u64(12345)
    del meta  # an open column family keeps the store open
    part.close()
    part = open_partition(tmp_path / "p", 1500, records)
    assert part.store.digest == digest
    assert part.store.digests() == [], "the old format's checkpoints are dropped"
    assert part.store.state(K_FORMAT) == u64(FORMAT)
    part.close()


def test_a_format_2_store_drops_the_blocks_of_a_seal_cut_short(
    tmp_path: Path, two_hosts: tuple[list[bytes], list[bytes]]
) -> None:
    from pegasus_kafka.ring.layout import block_key
    from pegasus_kafka.ring.store import K_FORMAT, u64

    a, b = two_hosts
    records = as_records(a + b)
    whole = open_partition(tmp_path / "whole", 1500)
    whole.apply(records)
    part = open_partition(tmp_path / "p", 1500)
    part.ingest(records)
    checkpoints = part.store.digests()
    # Format 2 sealed into blocks: one written before a crash, its commit not.
    cut_short = block_key(ANALOG, an_ikey(part), 0, 0, part.frozen[0].seq)
    part.store.cf("blocks")[cut_short] = b"a block the seal wrote"
    part.store.cf("meta")[K_FORMAT] = u64(2)
    part.close()
    part = open_partition(tmp_path / "p", 1500, records)
    assert part.store.state(K_FORMAT) == u64(FORMAT)
    assert not list(part.store.cf("blocks").keys())
    assert part.store.digests() == checkpoints, "both formats digest alike"
    while part.seal():
        pass
    assert part.scan_digest() == whole.scan_digest()
    part.close()
    whole.close()


def test_merged_blocks_hold_every_sample_and_keep_the_digest(
    tmp_path: Path, two_hosts: tuple[list[bytes], list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two_hosts
    records = as_records(a + b)
    merged = open_partition(tmp_path / "merged", 40)
    merged.apply(records)
    assert merged.seal_seq >= tiers.FANIN**2, "the data must reach a second-level merge"
    monkeypatch.setattr(tiers, "MAX_LEVEL", 0)
    plain = open_partition(tmp_path / "plain", 40)
    plain.apply(records)
    assert merged.store.digest == plain.store.digest
    assert merged.scan_digest() == plain.scan_digest()
    assert not list(plain.store.cf("blocks").keys()), "unmerged, every seal is in segments"
    assert sorted(plain.in_segments) == list(range(1, plain.seal_seq + 1))
    assert max(merged.in_segments, default=0) - min(merged.in_segments, default=0) < tiers.FANIN
    n_merged = len(list(merged.store.cf("blocks").keys()))
    # The runs the seals wrote: a block each, were they not merged.
    runs = sum(len(segments.decode(v).ikeys) for v in plain.store.cf("segments").values())
    assert n_merged * 4 < runs, (n_merged, runs)
    for dtype in (ANALOG, STATUS, LIMIT):
        for ikey in plain.current[dtype].keys.tolist():
            want = plain.history(dtype, ikey, 0, 2**62)
            got = merged.history(dtype, ikey, 0, 2**62)
            assert want.keys() == got.keys()
            for host in want:
                np.testing.assert_array_equal(got[host].times, want[host].times)
                assert got[host].values.tobytes() == want[host].values.tobytes()
                np.testing.assert_array_equal(got[host].quality, want[host].quality)
                np.testing.assert_array_equal(got[host].role, want[host].role)
    merged.close()
    plain.close()


def test_the_store_lists_the_heads_frames_and_reads_them_back_from_the_topic(
    tmp_path: Path, two_hosts: tuple[list[bytes], list[bytes]]
) -> None:
    from pegasus_kafka.errors import StoreError

    a, b = two_hosts
    records = as_records(a + b)
    part = open_partition(tmp_path / "p", 1500)
    part.ingest(records)
    listed = dict(raw_items(part.store.cf("frames").items()))
    assert listed and set(listed.values()) == {b""}, "offsets only: Kafka holds the bytes"
    want = part.scan_digest()
    part.close()
    with pytest.raises(StoreError, match="in Kafka"):
        open_partition(tmp_path / "p", 1500)
    gone = [r for r in records if r[0] != 10]
    with pytest.raises(StoreError, match="no longer holds"):
        open_partition(tmp_path / "p", 1500, gone)
    part = open_partition(tmp_path / "p", 1500, records)
    assert part.scan_digest() == want
    part.close()


def test_a_format_3_store_reads_the_frames_it_holds(
    tmp_path: Path, two_hosts: tuple[list[bytes], list[bytes]]
) -> None:
    from pegasus_kafka.ring.store import K_FORMAT, u64

    a, b = two_hosts
    records = as_records(a + b)
    whole = open_partition(tmp_path / "whole", 1500)
    whole.apply(records)
    part = open_partition(tmp_path / "p", 1500)
    part.ingest(records[:70])
    # Format 3 kept each unsealed frame's bytes in the store.
    frames = part.store.cf("frames")
    for key, _ in list(raw_items(frames.items())):
        frames[key] = records[int.from_bytes(key, "big")][2]
    part.store.cf("meta")[K_FORMAT] = u64(3)
    del frames
    part.close()
    part = open_partition(tmp_path / "p", 1500)  # no topic needed
    assert part.store.state(K_FORMAT) == u64(FORMAT)
    assert part.scan_digest()[1:] == (part.store.digest, part.store.digest)
    part.apply(records[70:])
    assert part.scan_digest() == whole.scan_digest()
    part.close()
    whole.close()
