from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pegasus_kafka.collector.sim import SiteField
from pegasus_kafka.config import SiteConfig
from pegasus_kafka.ring import blocks
from pegasus_kafka.ring.blocks import Samples, _unzipped, decode, decode_many, encode, encode_many
from pegasus_kafka.schema import ANALOG


def _samples(values: np.ndarray, changes: bool = False) -> Samples:
    n = len(values)
    return Samples(
        times=1_700_000_000_000 + np.arange(n, dtype=np.int64) * 5000,
        values=values,
        quality=np.zeros(n, np.uint8),
        role=np.zeros(n, np.uint8),
        changes=np.zeros(n, np.uint8) if changes else None,
    )


def _assert_bits_equal(a: Samples, b: Samples) -> None:
    np.testing.assert_array_equal(a.times, b.times)
    assert a.values.view(np.uint64).tobytes() == b.values.view(np.uint64).tobytes()
    np.testing.assert_array_equal(a.quality, b.quality)
    np.testing.assert_array_equal(a.role, b.role)
    if a.changes is None:
        assert b.changes is None
    else:
        np.testing.assert_array_equal(a.changes, b.changes)


@pytest.mark.parametrize(
    "values",
    [
        np.round(np.linspace(100, 120, 720), 1),
        np.zeros(50),
        np.array([np.nan, 1.5, -0.0, np.inf]),
        np.array([-0.0, 0.0, 2.5]),
        np.random.default_rng(1).normal(size=300),
        np.array([1e300, -1e-300, 5e-324]),
    ],
)
def test_blocks_are_lossless(values: np.ndarray) -> None:
    s = _samples(values, changes=True)
    _assert_bits_equal(s, decode(encode(s)))


def test_limit_blocks_keep_four_columns() -> None:
    vals = np.array([[np.nan, -10.0, 115.0, 130.0]] * 10)
    s = _samples(vals)
    back = decode(encode(s))
    assert back.values.shape == (10, 4)
    _assert_bits_equal(s, back)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=200))
def test_any_float_survives(values: list[float]) -> None:
    s = _samples(np.array(values, dtype=np.float64))
    _assert_bits_equal(s, decode(encode(s)))


def test_realistic_analogs_compress_below_two_bytes_a_sample() -> None:
    site = SiteConfig(name="n", code=1, scan_period_ms=5000, points=200, seed=3)
    field = SiteField(site)
    rows = [field.values(k, k * 5000, 1)[0] for k in range(720)]
    series = np.array(rows)[:, field.dtype == ANALOG]
    total = sum(len(encode(_samples(series[:, i]))) for i in range(series.shape[1]))
    assert total / series.size < 2.0


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.lists(
            st.one_of(
                st.floats(allow_nan=True, allow_infinity=True),
                st.integers(-(10**6), 10**6).map(lambda i: i / 100),
            ),
            min_size=1,
            max_size=100,  # both sides of RAW_BELOW: stored as is, and compressed
        ),
        min_size=1,
        max_size=8,
    )
)
def test_many_runs_encode_like_each_run_alone(runs: list[list[float]]) -> None:
    values = np.array([v for run in runs for v in run], np.float64)
    whole = _samples(values, changes=True)
    starts = np.cumsum([0] + [len(r) for r in runs[:-1]])
    blobs = encode_many(whole, starts)
    bounds = [*starts.tolist(), len(values)]
    for g, blob in enumerate(blobs):
        a, b = bounds[g], bounds[g + 1]
        run = Samples(
            whole.times[a:b],
            whole.values[a:b],
            whole.quality[a:b],
            whole.role[a:b],
            whole.changes[a:b] if whole.changes is not None else None,
        )
        assert blob == encode(run)
        _assert_bits_equal(run, decode(blob))
    # All at once, compressed and stored-as-is blocks mixed, gives the same bits.
    got, begins = decode_many(blobs)
    assert begins.tolist() == starts.tolist()
    _assert_bits_equal(whole, got)


def test_limit_blocks_decode_many_at_once() -> None:
    rng = np.random.default_rng(3)
    vals = np.round(rng.normal(100, 20, (90, 4)), 1)
    vals[::7, 0] = np.nan
    s = _samples(vals)
    starts = np.array([0, 5, 45, 80])
    blobs = encode_many(s, starts)
    got, begins = decode_many(blobs)
    assert got.values.shape == (90, 4) and begins.tolist() == starts.tolist()
    _assert_bits_equal(s, got)


@pytest.mark.parametrize("width", [1, 4])
def test_decoding_in_passes_gives_what_one_pass_gives(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(11)
    lengths = rng.integers(1, 60, 40)
    lengths[10:20] = 33  # neighbours of one length
    n = int(lengths.sum())
    shape = (n,) if width == 1 else (n, width)
    values = np.round(rng.normal(100, 20, shape), 1)
    float_rows = np.repeat(rng.random(len(lengths)) < 0.3, lengths)
    values[float_rows] = rng.normal(size=values[float_rows].shape)  # raw doubles
    whole = _samples(values, changes=width == 1)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    blobs = encode_many(whole, starts)
    once, once_starts = decode_many(blobs)
    monkeypatch.setattr(blocks, "DECODE_SAMPLES", 50)
    passes, passes_starts = decode_many(blobs)
    assert once_starts.tolist() == passes_starts.tolist() == starts.tolist()
    _assert_bits_equal(whole, once)
    _assert_bits_equal(whole, passes)


@pytest.mark.parametrize("raw", [True, False])
def test_damaged_blocks_raise_a_store_error(raw: bool) -> None:
    from pegasus_kafka.errors import StoreError

    n = 10 if raw else 200  # stored as is, or compressed
    blob = encode(_samples(np.round(np.linspace(0, 50, n), 1)))
    # Damaged bytes inside a body decode to other samples, which the digest
    # catches; a damaged structure is refused here.
    for bad in (blob[:10], b"XX" + blob[2:], blob[:-3]):
        with pytest.raises(StoreError):
            decode(bad)


def test_block_keys_at_once_equal_one_by_one() -> None:
    from pegasus_kafka.ring.layout import block_key, block_keys, parse_block_key

    ikeys = np.array([-(2**63), -5, 0, 7, 2**62, 2**63 - 1], np.int64)
    hosts = np.array([0, 1, 2, 3, 4, 65535])
    days = np.array([0, 1, 19000, 20000, 2**31, 2**32 - 1])
    keys = block_keys(3, ikeys, hosts, days, 12345)
    for k, i, h, d in zip(keys, ikeys.tolist(), hosts.tolist(), days.tolist(), strict=True):
        assert k == block_key(3, i, h, d, 12345)
        assert parse_block_key(k) == (3, i, h, d, 12345)


def _golden_layouts():
    """Runs of every kind a seal meets: short (stored raw) and long, decimal
    and full-precision values, status transitions, limits with gaps."""
    rng = np.random.default_rng(2026)
    counts = np.array([1, 5, 31, 32, 33, 200, 7, 64])
    n = int(counts.sum())
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    for width, decimals, changes in ((1, 2, False), (1, None, False), (1, 0, True), (4, 1, False)):
        shape = (n,) if width == 1 else (n, width)
        values = rng.normal(100, 20, shape)
        if decimals is not None:
            values = np.round(values, decimals)
        if width == 4:
            values[rng.random(shape) < 0.2] = np.nan
        yield (
            Samples(
                times=(np.arange(n) * 5000 + rng.integers(0, 40, n)).astype(np.int64),
                values=values,
                quality=rng.integers(0, 4, n).astype(np.uint8),
                role=rng.integers(0, 2, n).astype(np.uint8),
                changes=rng.integers(0, 3, n).astype(np.uint8) if changes else None,
            ),
            starts,
        )


def test_the_block_layout_is_the_format_version_1_layout() -> None:
    # The digest of every block's uncompressed bytes, as the encoder of format
    # version 1 laid them out; zstd's own output may vary between versions.
    h = hashlib.sha256()
    for s, starts in _golden_layouts():
        blobs = encode_many(s, starts)
        for blob in blobs:
            h.update(_unzipped(blob))
        got, got_starts = decode_many(blobs)
        assert np.array_equal(got_starts, starts)
        _assert_bits_equal(got, s)
    assert h.hexdigest() == "fd399b9c15c01012d2e4dff9eb0f94459d973420f8c7d8d03364b4c39f5f134d"


def _plain_scale(run: np.ndarray) -> int:
    """The rule itself: the smallest k whose scaled integers decode to every value."""
    for k in range(7):
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = np.round(run * 10.0**k)
            if not (np.abs(scaled) < 2.0**52).all():
                continue
            back = scaled.astype(np.int64).astype(np.float64) / 10.0**k
        if (back.view(np.uint64) == run.view(np.uint64)).all():
            return k
    return -1


def test_scales_are_the_smallest_exact_decimal_places_per_run() -> None:
    rng = np.random.default_rng(5)
    # Whole numbers that fit at k = 0 but overflow 2**52 at k = 1; in a run with
    # a value that needs a place or more, the run fits no k.
    big = rng.integers(2**52 // 10, 2**52, 20).astype(np.float64)
    pools = [
        np.round(rng.normal(0, 1000, 400), 2),
        np.round(rng.normal(0, 50, 400), 5),
        rng.normal(size=400),
        np.array([0.0, -0.0, np.nan, np.inf, 0.5, 1e-7, 123456.789]),
        big,
    ]
    runs = [
        rng.choice(pools[int(rng.integers(len(pools)))], int(rng.integers(1, 12)))
        for _ in range(300)
    ]
    runs += [np.array([big[0], 0.25]), np.array([big[1]]), np.array([-0.0, 0.1])]
    starts = np.cumsum([0] + [len(r) for r in runs[:-1]])
    blobs = encode_many(_samples(np.concatenate(runs)), starts)
    # The header's mode says decimal or not, and its scale byte the places.
    got = [blob[4] if blob[3] & blocks.MODE_DECIMAL else -1 for blob in blobs]
    assert got == [_plain_scale(r) for r in runs]
    assert -1 in got and 0 in got and 5 in got


def test_the_compiled_kernels_refuse_columns_that_do_not_match() -> None:
    from pegasus_kafka.ring import _kernels

    times, values = np.arange(10, dtype=np.int64), np.zeros(10)
    tails, starts = np.zeros(20, np.uint8), np.array([0, 4], np.int64)
    assert len(_kernels.encode_runs(times, values, tails, starts, 1, 2, 32, 1, 3, -1)[0]) == 2
    with pytest.raises(ValueError, match="different lengths"):
        _kernels.encode_runs(times, values[:9], tails, starts, 1, 2, 32, 1, 3, -1)
    with pytest.raises(ValueError, match="out of order or out of range"):
        _kernels.encode_runs(times, values, tails, np.array([4, 0], np.int64), 1, 2, 32, 1, 3, -1)
    ikeys, q = np.array([1, 2], np.int64), np.zeros(10, np.uint8)
    source = (ikeys, starts, times, values, q, q)
    assert len(_kernels.merge_segments([source], ikeys, 1, 2, 32, 1, 3, -1)[0]) == 2
    with pytest.raises(ValueError, match="different lengths"):
        _kernels.merge_segments(
            [(ikeys, starts, times, values, q[:9], q)], ikeys, 1, 2, 32, 1, 3, -1
        )
    with pytest.raises(ValueError, match="out of order or out of range"):
        _kernels.merge_segments([(ikeys[::-1].copy(), *source[1:])], ikeys, 1, 2, 32, 1, 3, -1)
    with pytest.raises(ValueError, match="not ascending"):
        _kernels.merge_segments([source], ikeys[::-1].copy(), 1, 2, 32, 1, 3, -1)
    with pytest.raises(ValueError, match="no samples"):
        _kernels.merge_segments([source], np.array([1, 3], np.int64), 1, 2, 32, 1, 3, -1)
    with pytest.raises(ValueError, match="layout out of range"):
        _kernels.merge_segments([source], ikeys, 1, 4, 32, 1, 3, -1)
    with pytest.raises(ValueError, match="layout out of range"):
        _kernels.encode_runs(times, values, tails, starts, 0, 2, 32, 1, 3, -1)
    with pytest.raises(ValueError, match="different lengths"):
        _kernels.sum_of_hashes(1, times, times[:5], values, 1, tails[:10], tails[:10], tails[:0])
