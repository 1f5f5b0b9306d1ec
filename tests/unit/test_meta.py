"""The metadata materialiser on real RocksDB: versions, the latest index, search."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from pegasus_kafka.ring.records import MetaPartition, PointMatch
from pegasus_kafka.ring.store import PartitionStore
from pegasus_kafka.schema import RecordCodec, codec


def meta(ikey: int, version: int, name: str, substation: str = "SS1") -> dict[str, Any]:
    return {
        "ikey": ikey,
        "version": version,
        "valid_from_ms": 1_700_000_000_000 + version,
        "change": "CREATED" if version == 1 else "RENAMED",
        "site": "north",
        "ems_id": f"north:{ikey}",
        "name": name,
        "substation": substation,
        "device": "LINE",
        "data_type": "ANALOG",
        "units": "MW",
        "resolution": 0.1,
    }


def records(recs: list[dict[str, Any]], first: int = 0) -> list[tuple[int, bytes, bytes]]:
    enc = codec("pegasus.PointMeta")
    return [(first + i, b"k", enc.encode(r)) for i, r in enumerate(recs)]


def open_meta(path: Path) -> MetaPartition:
    return MetaPartition(PartitionStore(path, MetaPartition.COLUMN_FAMILIES))


def test_versions_apply_once_within_and_across_batches(tmp_path: Path) -> None:
    part = open_meta(tmp_path / "m")
    batch = [meta(5, 1, "A"), meta(5, 2, "B"), meta(5, 2, "B again"), meta(-3, 1, "Neg")]
    result = part.apply(records(batch))
    assert (result.applied, result.duplicates) == (3, 1)
    again = part.apply(records([meta(5, 1, "old"), meta(5, 3, "C")], first=4))
    assert (again.applied, again.duplicates) == (1, 1)
    assert [r["name"] for r in part.versions(5)] == ["A", "B", "C"]
    found = part.search(PointMatch(), 10)
    assert [(r["ikey"], r["name"]) for r in found] == [(-3, "Neg"), (5, "C")]
    part.close()


def test_search_filters_and_limits(tmp_path: Path) -> None:
    part = open_meta(tmp_path / "m")
    part.apply(
        records(
            [
                meta(1, 1, "Line North MW", "SS1"),
                meta(2, 1, "line south MW", "SS2"),
                meta(3, 1, "Breaker 7", "SS1"),
                meta(4, 1, "Überlast", "SS1"),
            ]
        )
    )
    assert [r["ikey"] for r in part.search(PointMatch(name="LINE"), 10)] == [1, 2]
    assert [r["ikey"] for r in part.search(PointMatch(name="line", substation="ss2"), 10)] == [2]
    assert [r["ikey"] for r in part.search(PointMatch(substation="SS1"), 2)] == [1, 3]
    assert [r["ikey"] for r in part.search(PointMatch(name="überlast"), 10)] == [4]
    part.close()


def test_a_store_without_the_latest_index_builds_it_on_open(tmp_path: Path) -> None:
    part = open_meta(tmp_path / "m")
    part.apply(records([meta(1, 1, "A"), meta(1, 2, "B"), meta(2, 1, "C")]))
    digest = part.store.digest
    # A store written before the index existed holds versions only.
    latest = part.store.cf("latest")
    for key in list(latest.keys()):
        latest.delete(key)
    part.store.cf("meta").delete(MetaPartition.K_LATEST_BUILT)
    del latest
    part.close()
    part = open_meta(tmp_path / "m")
    assert [(r["ikey"], r["name"]) for r in part.search(PointMatch(), 10)] == [(1, "B"), (2, "C")]
    assert part.store.digest == digest, "the index is outside the digest"
    assert part.scan_digest() == (part.store.applied_offset, digest, digest)
    assert part.apply(records([meta(1, 2, "B")], first=3)).duplicates == 1
    part.close()


def test_the_second_hosts_copies_are_duplicates_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    enc = codec("pegasus.PointMeta")
    sent = [meta(5, 1, "A"), meta(5, 2, "B"), meta(6, 1, "C")]
    first = [(i, str(r["ikey"]).encode(), enc.encode(r)) for i, r in enumerate(sent)]
    part = open_meta(tmp_path / "m")
    part.apply(first[:2])
    decoded = 0
    original = RecordCodec.decode

    def counting(self: RecordCodec, value: bytes | None) -> dict[str, Any]:
        nonlocal decoded
        decoded += 1
        return original(self, value)

    monkeypatch.setattr(RecordCodec, "decode", counting)
    # Within a batch and across: the other host's copies, in its own order;
    # one with a key naming another point; one older version.
    second = [
        (10, b"6", first[2][2]),
        (11, b"5", first[1][2]),
        (12, b"6", first[2][2]),
        (13, b"6", first[1][2]),
        (14, b"5", first[0][2]),
    ]
    result = part.apply(first[2:] + second)
    assert (result.applied, result.duplicates) == (1, 5)
    assert decoded == 0, "versions are compared without decoding any record"
    assert [r["name"] for r in part.versions(5)] == ["A", "B"]
    assert [r["name"] for r in part.versions(6)] == ["C"]
    part.close()


def test_bad_records_are_skipped_and_the_rest_applied(tmp_path: Path) -> None:
    enc = codec("pegasus.PointMeta")
    good = enc.encode(meta(7, 1, "A"))
    batch = [
        (0, b"7", good[:-2]),  # cut short
        (1, b"7", None),
        (2, b"7", enc.encode(meta(7, -1, "negative version"))),
        (3, b"7", good),
        (4, b"8", enc.encode(meta(8, 1, "B"))),
    ]
    part = open_meta(tmp_path / "m")
    result = part.apply(batch)
    assert result.applied == 2 and [offset for offset, _ in result.dead] == [0, 1, 2]
    assert "version -1 out of range" in result.dead[2][1]
    assert [r["name"] for r in part.versions(7)] == ["A"]
    assert part.store.applied_offset == 5
    assert part.scan_digest()[1] == part.scan_digest()[2]
    part.close()


def test_the_versions_kept_are_those_applying_one_by_one_keeps(tmp_path: Path) -> None:
    """Random batches of versions, repeated, late and out of order, from two
    hosts: what is kept is what a record-by-record rule keeps."""
    rng = random.Random(3)
    enc = codec("pegasus.PointMeta")
    part = open_meta(tmp_path / "m")
    newest: dict[int, int] = {}
    kept: dict[int, list[int]] = {}
    offset = 0
    for _ in range(20):
        batch = []
        for _ in range(rng.randrange(1, 60)):
            ikey, version = rng.choice([-5, 3, 4, 2**62, 9]), rng.randrange(0, 12)
            batch.append((offset, b"k", enc.encode(meta(ikey, version, f"v{version}"))))
            offset += 1
            if version > newest.get(ikey, -1):
                newest[ikey] = version
                kept.setdefault(ikey, []).append(version)
        part.apply(batch)
    for ikey, versions in kept.items():
        assert [r["version"] for r in part.versions(ikey)] == versions
    assert part.scan_digest()[1] == part.scan_digest()[2]
    part.close()
