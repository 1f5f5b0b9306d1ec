from __future__ import annotations

import random

import numpy as np
import pytest

from pegasus_kafka.batchread import decode_frames, int_fields
from pegasus_kafka.errors import MalformedRecord, SchemaError
from pegasus_kafka.schema import (
    BACKUP,
    LIMIT,
    STATUS,
    Frame,
    codec,
    decode_frame,
    decode_record,
    encode_frame,
    schemas,
)

SAMPLES = {
    "pegasus.PointMeta": {
        "ikey": 1 << 40 | 7,
        "version": 2,
        "valid_from_ms": 1_700_000_000_000,
        "change": "RENAMED",
        "site": "north",
        "ems_id": "north:7",
        "name": "SS1.AN7",
        "substation": "SS1",
        "device": "LINE",
        "data_type": "ANALOG",
        "units": "MW",
        "resolution": 0.1,
    },
    "pegasus.SystemEvent": {
        "site": "north",
        "host": "ems-a",
        "seq": 9,
        "time_ms": 1_700_000_000_000,
        "kind": "OPERATOR_ACTION",
        "ikey": 5,
        "operator": "op1",
        "text": "BRK5 opened",
    },
    "pegasus.RingRecord": {
        "kind": "SERVER",
        "ring": "ring-a",
        "server": "s1",
        "state": "IN_SYNC",
        "endpoint": "http://127.0.0.1:1",
        "owned": ["pegasus.scan:0"],
        "standby": [],
        "lag": 3,
        "sync_mode": "replay",
        "sync_progress": 0.5,
        "sync_eta_s": None,
        "verified_with": None,
        "created_ms": 1,
        "updated_ms": 2,
        "retired_ms": None,
    },
    "pegasus.DeadLetter": {
        "ring": "ring-a",
        "topic": "pegasus.scan",
        "partition": 1,
        "offset": 5,
        "reason": "bad",
        "key": b"k",
        "value": b"\x00\x01",
    },
    "pegasus.StatusException": {
        "id": "0" * 32,
        "kind": "LINK",
        "ikey": 1 << 40 | 9,
        "site": "north",
        "host": "ems-a",
        "time_ms": 1_700_000_000_000,
        "old_state": 0,
        "new_state": 0,
        "transitions": 0,
        "name": None,
        "substation": None,
        "device": None,
        "meta_version": 0,
        "exception_id": "1" * 32,
        "event": {
            "host": "ems-a",
            "seq": 7,
            "time_ms": 1_699_999_999_000,
            "kind": "OPERATOR_ACTION",
            "operator": "op2",
            "text": "BRK9 opened by operator op2",
        },
    },
    "pegasus.AnalogException": {
        "id": "2" * 32,
        "kind": "RETURN",
        "ikey": 1 << 40 | 3,
        "site": "north",
        "host": "ems-b",
        "time_ms": 1_700_000_020_037,
        "value": 101.5,
        "level": "EMERGENCY_HIGH",
        "limit": 130.0,
        "limits": [-5.0, -1.0, 115.0, 130.0],
        "limits_from_ms": 1_699_000_000_000,
        "start_ms": 1_700_000_005_037,
        "duration_ms": 15_000,
        "peak": 149.5,
        "change": None,
        "score": None,
        "name": "SS1.AN3",
        "substation": "SS1",
        "units": "MW",
    },
}


def _frame(dtype: int = STATUS, n: int = 5) -> Frame:
    width = 4 if dtype == LIMIT else 1
    values = np.arange(n * width, dtype=np.float64) / 10
    return Frame(
        site="north",
        host="ems-b",
        role=BACKUP,
        seq=42,
        scan_time_ms=1_700_000_000_123,
        scan_period_ms=5000,
        data_type=dtype,
        chunk=1,
        ikeys=np.arange(n, dtype=np.int64) + 100,
        values=values.reshape(n, 4) if width == 4 else values,
        quality=np.array([0, 0x80, 0x40, 0, 2][:n], np.uint8),
        changes=np.array([0, 1, 2, 0, 0][:n], np.uint8)
        if dtype == STATUS
        else np.zeros(0, np.uint8),
    )


def test_every_schema_parses_once() -> None:
    assert schemas() is schemas()
    assert set(SAMPLES) | {"pegasus.ScanFrame", "pegasus.DataType", "pegasus.HostRole"} == set(
        schemas()
    )


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_records_round_trip(name: str) -> None:
    data = codec(name).encode(SAMPLES[name])
    assert decode_record(name, data) == SAMPLES[name]


@pytest.mark.parametrize("dtype", [0, 1, 2, 3])
def test_frames_round_trip_to_numpy(dtype: int) -> None:
    frame = _frame(dtype)
    back = decode_frame(encode_frame(frame))
    assert back.site == frame.site and back.seq == 42 and back.role == BACKUP
    assert back.scan_time_ms == frame.scan_time_ms and back.chunk == 1
    np.testing.assert_array_equal(back.ikeys, frame.ikeys)
    np.testing.assert_array_equal(back.values, frame.values)
    np.testing.assert_array_equal(back.quality, frame.quality)
    np.testing.assert_array_equal(back.changes, frame.changes)
    assert back.ikeys.dtype == np.int64 and back.values.dtype == np.float64


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff\xff\xff", b"\x00" * 3],
)
def test_malformed_bytes_raise_a_specific_error(data: bytes) -> None:
    with pytest.raises(MalformedRecord):
        decode_frame(data)


def test_truncated_and_padded_frames_are_refused() -> None:
    good = encode_frame(_frame())
    with pytest.raises(MalformedRecord):
        decode_frame(good[:-4])
    with pytest.raises(MalformedRecord, match="trailing"):
        decode_frame(good + b"\x00")


def test_column_length_must_match_count() -> None:
    rec = _frame().to_record()
    rec["count"] = 6
    with pytest.raises(MalformedRecord, match="column"):
        decode_frame(codec("pegasus.ScanFrame").encode(rec))


def test_every_frame_field_is_documented() -> None:
    frame_schema = schemas()["pegasus.ScanFrame"]
    assert all(f.get("doc") for f in frame_schema["fields"])


def _mutants(good: list[bytes], count: int, seed: int) -> list[bytes | None]:
    """Records with a byte changed, cut short, padded, or bytes made up."""
    rng = random.Random(seed)
    out: list[bytes | None] = [None, b""]
    for i in range(count):
        data = bytearray(good[i % len(good)])
        kind = i % 5
        if kind == 1:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 2:
            del data[rng.randrange(len(data)) :]
        elif kind == 3:
            for _ in range(3):
                data[rng.randrange(len(data))] = rng.choice([0x01, 0x7F, 0x80, 0xC0, 0xED, 0xF4])
        elif kind == 4:
            data = bytearray(rng.randbytes(rng.randrange(1, 90)))
        out.append(bytes(data))
    return out


def test_fields_agree_with_the_decoder_on_every_value() -> None:
    enc = codec("pegasus.PointMeta")
    names = ("ikey", "version", "valid_from_ms", "change", "data_type")
    good = [
        enc.encode({**SAMPLES["pegasus.PointMeta"], "ikey": k, "version": v, "name": n})
        for k, v, n in [(7, 1, "x"), (-(2**63), -5, "é"), (2**63 - 1, 2**31 - 1, "日本\U0001f600")]
    ]
    values = good + _mutants(good, 3000, seed=5)
    problems, columns = int_fields(enc.name, values, names)
    accepted = 0
    for i, value in enumerate(values):
        try:
            record = enc.decode(value)
        except MalformedRecord as exc:
            assert problems[i] == str(exc)
            continue
        accepted += 1
        assert problems[i] is None
        symbols = {
            "change": ["CREATED", "RENAMED", "MOVED", "UPDATED", "RETIRED"],
            "data_type": ["ANALOG", "LIMIT", "ACCUMULATOR", "STATUS"],
        }
        want = [symbols[n].index(record[n]) if n in symbols else record[n] for n in names]
        assert [column[i] for column in columns] == want
    assert accepted > len(good) + 100, "the mutants include records that still decode"


def test_fields_refuse_a_type_they_cannot_check() -> None:
    with pytest.raises(SchemaError):
        int_fields("pegasus.SystemEvent", [], ("seq",))
    with pytest.raises(SchemaError):
        int_fields("pegasus.PointMeta", [], ("name",))


def test_why_a_record_is_malformed_is_the_same_every_time() -> None:
    # The reason is kept in the store, under the digest every ring compares.
    enc = codec("pegasus.PointMeta")
    cut = enc.encode(SAMPLES["pegasus.PointMeta"])[:-3]  # inside the last field, a double
    reasons = set()
    for _ in range(3):
        with pytest.raises(MalformedRecord) as caught:
            enc.decode(bytes(cut))
        reasons.add(str(caught.value))
    assert len(reasons) == 1 and "0x" not in reasons.pop()


def test_frames_read_in_a_batch_are_the_frames_decoded_one_by_one() -> None:
    good = [encode_frame(_frame(dtype)) for dtype in range(4)]
    values = good + _mutants(good, 2000, seed=9)
    batch = decode_frames(values)
    accepted = 0
    for value, got in zip(values, batch, strict=True):
        try:
            want = decode_frame(value)
        except MalformedRecord as exc:
            assert isinstance(got, MalformedRecord) and str(got) == str(exc)
            continue
        accepted += 1
        assert isinstance(got, Frame)
        assert (got.site, got.host, got.role, got.seq, got.scan_time_ms) == (
            want.site,
            want.host,
            want.role,
            want.seq,
            want.scan_time_ms,
        )
        assert (got.scan_period_ms, got.data_type, got.chunk) == (
            want.scan_period_ms,
            want.data_type,
            want.chunk,
        )
        for column in ("ikeys", "values", "quality", "changes"):
            np.testing.assert_array_equal(getattr(got, column), getattr(want, column))
            assert getattr(got, column).dtype == getattr(want, column).dtype
    assert accepted > len(good) + 50, "the mutants include frames that still decode"
