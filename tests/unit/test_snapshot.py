"""Snapshot bootstrap: a checked copy of a partition's store, or nothing at all."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pegasus_kafka.errors import StoreError
from pegasus_kafka.ring.base import Materialiser
from pegasus_kafka.ring.promote import RateEstimate, progress_of
from pegasus_kafka.ring.snapshot import H_DIGEST, H_OFFSET, download, make_snapshot
from pegasus_kafka.ring.store import PartitionStore

FAMILIES = ("data",)


def _source(tmp_path: Path) -> Materialiser:
    store = PartitionStore(tmp_path / "source", FAMILIES, checkpoint_every=0)
    for offset in range(5):
        batch = store.begin()
        batch.put("data", f"k{offset}".encode(), bytes([offset]) * 100)
        store.commit(batch, offset + 1)
    return Materialiser(store)


def _serving(mat: Materialiser, workdir: Path, digest_shift: int = 0) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        snap = make_snapshot(mat, workdir)
        body = snap.tar.read_bytes()
        snap.discard()
        headers = {
            H_OFFSET: str(snap.applied_offset),
            H_DIGEST: f"{snap.digest + digest_shift:016x}",
        }
        return httpx.Response(200, content=body, headers=headers)

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_a_snapshot_reproduces_the_store_with_its_offset_and_digest(tmp_path: Path) -> None:
    mat = _source(tmp_path)
    target = tmp_path / "copy"
    with _serving(mat, tmp_path / "work") as http:
        offset, digest = download(http, "http://peer", "t", 0, target, FAMILIES)
    assert (offset, digest) == (5, mat.store.digest)
    copy = PartitionStore(target, FAMILIES)
    assert copy.applied_offset == 5 and copy.digest == mat.store.digest
    assert copy.cf("data")[b"k3"] == bytes([3]) * 100
    _, recorded, scanned = copy.scan_digest()
    assert recorded == scanned
    copy.close()
    mat.close()
    # Nothing is left behind: no scratch directories, no tar files.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "source", "work"]
    assert list((tmp_path / "work").iterdir()) == []


def test_a_snapshot_that_does_not_match_its_announcement_never_becomes_a_store(
    tmp_path: Path,
) -> None:
    mat = _source(tmp_path)
    target = tmp_path / "copy"
    with _serving(mat, tmp_path / "work", digest_shift=1) as http, pytest.raises(StoreError):
        download(http, "http://peer", "t", 0, target, FAMILIES)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source", "work"]
    mat.close()


def test_an_existing_store_is_never_overwritten(tmp_path: Path) -> None:
    mat = _source(tmp_path)
    with _serving(mat, tmp_path / "work") as http, pytest.raises(StoreError, match="overwrite"):
        download(http, "http://peer", "t", 0, tmp_path / "source", FAMILIES)
    mat.close()


def test_a_closed_partition_gives_no_snapshot(tmp_path: Path) -> None:
    from pegasus_kafka.errors import NotInSync

    mat = _source(tmp_path)
    mat.close()
    with pytest.raises(NotInSync):
        make_snapshot(mat, tmp_path / "work")


def test_progress_counts_unreported_partitions_as_not_started() -> None:
    parts = {"a:0": {"applied_offset": 50, "lag": 50}, "a:1": {"applied_offset": 100, "lag": 0}}
    progress = progress_of(parts, expected=4)
    assert progress.applied == 150 and progress.total == 400
    assert progress.fraction == pytest.approx(0.375)
    assert progress_of({}, expected=4).fraction == 0.0
    assert progress_of({"a:0": {"applied_offset": 0, "lag": 0}}, expected=1).fraction == 1.0


def test_eta_follows_the_apply_rate() -> None:
    rate = RateEstimate(weight=1.0)
    assert rate.update(0.0, 0) is None and rate.eta(100) is None
    assert rate.update(2.0, 200) == pytest.approx(100.0)
    assert rate.eta(500) == pytest.approx(5.0)
    assert rate.eta(0) == 0.0
