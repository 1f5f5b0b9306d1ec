from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pegasus_kafka.errors import StoreError
from pegasus_kafka.ring.store import K_FORMAT, PartitionStore, kv_hash, u64


def test_offset_and_data_commit_together(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "s", ("data",))
    batch = store.begin()
    batch.put("data", b"a", b"1")
    store.commit(batch, 10)
    uncommitted = store.begin()
    uncommitted.put("data", b"b", b"2")  # never committed: as if the process died here
    store.close()
    store = PartitionStore(tmp_path / "s", ("data",))
    assert store.applied_offset == 10
    assert dict(store.cf("data").items()) == {b"a": b"1"}
    store.close()


def test_incremental_digest_matches_a_full_scan(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "s", ("data", "more"))
    for i in range(20):
        batch = store.begin()
        batch.put("data", u64(i), b"x" * i)
        batch.put("more", u64(i), b"y")
        if i % 3 == 0 and i:
            batch.delete("data", u64(i - 1), kv_hash("data", u64(i - 1), b"x" * (i - 1)))
        store.commit(batch, i + 1)
    assert store.scan_digest() == (20, store.digest, store.digest)
    store.close()


def test_corruption_at_rest_is_found_by_the_scan(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "s", ("data",))
    batch = store.begin()
    batch.put("data", b"k", b"good")
    store.commit(batch, 1)
    store.cf("data").put(b"k", b"evil")  # bypasses the batch, like a bad disk
    offset, recorded, scanned = store.scan_digest()
    assert offset == 1 and recorded == store.digest and scanned != recorded
    store.close()


def test_offsets_never_go_back(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "s", ("data",))
    store.commit(store.begin(), 5)
    with pytest.raises(StoreError):
        store.commit(store.begin(), 4)
    store.close()


def test_unknown_format_version_is_refused(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "s", ("data",))
    store.cf("meta").put(K_FORMAT, u64(99))
    store.close()
    with pytest.raises(StoreError, match="format 99"):
        PartitionStore(tmp_path / "s", ("data",))


def test_checkpoint_is_a_consistent_copy(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "s", ("data",))
    batch = store.begin()
    batch.put("data", b"k", b"v")
    store.commit(batch, 7)
    assert store.checkpoint(tmp_path / "cp") == (7, store.digest)
    copy = PartitionStore(tmp_path / "cp", ("data",))
    assert copy.digest == store.digest and copy.applied_offset == 7
    copy.close()
    store.close()


def test_standby_targets_form_a_circle() -> None:
    from pegasus_kafka.ring.standby import standby_targets

    assert standby_targets(["s1", "s2"], "s1", 1) == ["s2"]
    assert standby_targets(["s1", "s2"], "s2", 1) == ["s1"]
    assert standby_targets(["s1", "s2", "s3"], "s1", 1) == ["s3"]
    assert standby_targets(["s1", "s2", "s3"], "s1", 5) == ["s3", "s2"]
    assert standby_targets(["s1"], "s1", 1) == []
    assert standby_targets(["s1", "s2"], "s1", 0) == []


def test_digest_checkpoints_do_not_depend_on_batch_sizes(tmp_path: Path) -> None:
    from pegasus_kafka.ring.store import split_at_checkpoints

    records = [(i, b"v%d" % i) for i in range(95)]
    digests = []
    for name, size in (("a", 7), ("b", 40)):
        store = PartitionStore(tmp_path / name, ("data",), checkpoint_every=10)
        for start in range(0, len(records), size):
            for chunk in split_at_checkpoints(records[start : start + size], 10):
                batch = store.begin()
                for offset, value in chunk:
                    batch.put("data", u64(offset), value)
                store.commit(batch, chunk[-1][0] + 1)
        digests.append(store.digests(limit=100))
        store.close()
    assert digests[0] == digests[1]
    assert [o for o, _ in digests[0]] == [90, 80, 70, 60, 50, 40, 30, 20, 10]


def test_size_counts_what_is_written(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "s", ("data",))
    before = store.size_bytes()
    batch = store.begin()
    batch.put("data", b"k", b"v" * 10_000)
    store.commit(batch, 1)
    assert store.size_bytes() > before
    store.close()


def test_kv_hash_is_blake2b_of_family_key_length_key_and_value() -> None:
    for cf, key, value in [
        ("versions", b"\x00" * 12, b"v" * 90),
        ("by_time", b"k", b""),
        ("a", b"", b""),
    ]:
        h = hashlib.blake2b(digest_size=8)
        for part in (cf.encode(), len(key).to_bytes(4, "little"), key, value):
            h.update(part)
        assert kv_hash(cf, key, value) == int.from_bytes(h.digest(), "little")
        assert kv_hash(cf, key, value) == kv_hash(cf, key, value), (
            "hashing leaves the per-family hasher as it was"
        )


def test_reads_cut_no_table_file(tmp_path: Path) -> None:
    # Reads run on every query; a read that flushed a memtable would leave a
    # small table file behind each time, and wait for it.
    store = PartitionStore(tmp_path / "s", ("data",))
    for i in range(5):
        batch = store.begin()
        batch.put("data", u64(i), b"x" * 100)
        store.commit(batch, i + 1)
        assert store.cf("data").get(u64(i)) == b"x" * 100
        snap = store.cf("data").snapshot()
        assert len(list(snap.items())) == i + 1
        del snap
    assert store.scan_digest() == (5, store.digest, store.digest)
    assert list((tmp_path / "s").glob("*.sst")) == []
    store.close()
    store = PartitionStore(tmp_path / "s", ("data",))
    assert dict(store.cf("data").items()) == {u64(i): b"x" * 100 for i in range(5)}
    store.close()


def test_compacted_families_are_flushed_raw_and_compressed_when_rewritten(
    tmp_path: Path,
) -> None:
    store = PartitionStore(tmp_path / "s", ("segments",), compression={"segments": "compacted"})
    # Columns as a segment holds them: compressible, but not by a flush.
    value = bytes(range(256)) * 64
    batch = store.begin()
    for i in range(200):
        batch.put_raw("segments", u64(i), value)
    store.write_derived(batch)
    cf = store.cf("segments")

    def on_disk() -> int:
        return sum(f.stat().st_size for f in (tmp_path / "s").glob("*.sst"))

    cf.compact_range(None, None)  # a flush, then the file moved down as it is
    raw = on_disk()
    assert raw > 200 * len(value)
    store.compact()
    assert on_disk() < raw / 10
    assert cf[u64(7)] == value
    store.close()
