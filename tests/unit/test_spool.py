from __future__ import annotations

from pathlib import Path

import pytest

from pegasus_kafka.collector import spool as spool_mod
from pegasus_kafka.collector.spool import Spool, SpoolFull, pack, unpack


def test_envelope_round_trip() -> None:
    assert unpack(pack("t.scan", 3, b"k", b"\x00value")) == ("t.scan", 3, b"k", b"\x00value")


def test_records_survive_a_restart_until_acknowledged(tmp_path: Path) -> None:
    s = Spool(tmp_path, 10**9, "always")
    seqs = [s.append(b"r%d" % i) for i in range(10)]
    assert seqs == list(range(10))
    for i in (0, 1, 3):  # acks across partitions arrive out of order
        s.ack(i)
    assert s.acked == 2 and s.depth() == 8
    s.close()
    again = Spool(tmp_path, 10**9)
    assert again.acked == 2 and again.end == 10
    assert [p for _, p in again.read(again.acked)] == [b"r%d" % i for i in range(2, 10)]
    again.close()


def test_a_torn_tail_is_cut_and_appending_goes_on(tmp_path: Path) -> None:
    s = Spool(tmp_path, 10**9, "always")
    for i in range(3):
        s.append(b"x%d" % i)
    s.close()
    seg = next(tmp_path.glob("*.seg"))
    seg.write_bytes(seg.read_bytes() + b"\x09\x00\x00\x00\x01")  # half a record: a crash
    again = Spool(tmp_path, 10**9)
    assert again.end == 3
    assert again.append(b"x3") == 3
    assert [p for _, p in again.read(0)] == [b"x0", b"x1", b"x2", b"x3"]
    again.close()


def test_delivered_segments_are_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_mod, "SEGMENT_BYTES", 100)
    s = Spool(tmp_path, 10**9, "never")
    for i in range(20):
        s.append(b"y" * 40)
        s.ack(i)
    assert len(list(tmp_path.glob("*.seg"))) <= 2
    assert s.size_bytes() == sum(p.stat().st_size for p in tmp_path.glob("*.seg"))
    s.close()


def test_a_full_spool_refuses_new_records_and_keeps_the_old(tmp_path: Path) -> None:
    s = Spool(tmp_path, 200, "never")
    kept = [s.append(b"z" * 50) for _ in range(3)]
    with pytest.raises(SpoolFull):
        s.append(b"z" * 50)
    assert [seq for seq, _ in s.read(0)] == kept
    s.close()


def test_reading_from_the_middle_skips_what_was_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_mod, "SEGMENT_BYTES", 60)
    s = Spool(tmp_path, 10**9, "never")
    for i in range(12):
        s.append(b"rec%02d" % i)
    assert len(list(tmp_path.glob("*.seg"))) > 2
    assert [(q, p) for q, p in s.read(7)] == [(i, b"rec%02d" % i) for i in range(7, 12)]
    s.close()
