"""The regular grid: fill rules and per-step statistics, and the columnar encoding."""

from __future__ import annotations

import numpy as np
import pytest

from pegasus_kafka import columnar
from pegasus_kafka.api.matrix import LINEAR, MAX_CELLS, PREVIOUS, fill_rule, grid, regular
from pegasus_kafka.errors import QueryError
from pegasus_kafka.ring.blocks import Samples
from pegasus_kafka.schema import ANALOG, STATUS


def _samples(times: list[int], values: list[float]) -> Samples:
    n = len(times)
    return Samples(
        np.array(times, np.int64),
        np.array(values, np.float64),
        np.zeros(n, np.uint8),
        np.zeros(n, np.uint8),
    )


def test_previous_value_and_step_statistics() -> None:
    s = _samples([0, 5, 10, 15, 30], [1.0, 3.0, 2.0, 4.0, 7.0])
    times = grid(0, 40, 10)
    cells = regular(s, times, 10, PREVIOUS)
    assert times.tolist() == [0, 10, 20, 30]
    assert cells["value"].tolist() == [1.0, 2.0, 4.0, 7.0]
    assert cells["count"].tolist() == [2, 2, 0, 1]
    assert cells["min"][[0, 1, 3]].tolist() == [1.0, 2.0, 7.0]
    assert cells["max"][[0, 1, 3]].tolist() == [3.0, 4.0, 7.0]
    assert cells["avg"][[0, 1, 3]].tolist() == [2.0, 3.0, 7.0]
    assert np.isnan(cells["min"][2]) and np.isnan(cells["avg"][2])


def test_linear_interpolates_between_neighbours_and_holds_after_the_last() -> None:
    s = _samples([10, 20], [0.0, 10.0])
    cells = regular(s, np.array([5, 10, 14, 20, 25], np.int64), 5, LINEAR)
    assert np.isnan(cells["value"][0])
    assert cells["value"][1:].tolist() == [0.0, 4.0, 10.0, 10.0]


def test_missing_values_do_not_poison_the_statistics() -> None:
    s = _samples([0, 1, 2], [1.0, float("nan"), 3.0])
    cells = regular(s, np.array([0], np.int64), 10, PREVIOUS)
    assert cells["min"][0] == 1.0 and cells["max"][0] == 3.0 and cells["avg"][0] == 2.0


def test_the_grid_matches_a_brute_force_reference() -> None:
    rng = np.random.default_rng(3)
    t = np.sort(rng.choice(10_000, 700, replace=False)).astype(np.int64)
    v = rng.normal(size=700)
    s = _samples(t.tolist(), v.tolist())
    times = grid(500, 9_000, 37)
    cells = regular(s, times, 37, PREVIOUS)
    for k, g in enumerate(times):
        inside = v[(t >= g) & (t < g + 37)]
        before = v[t <= g]
        assert cells["count"][k] == len(inside)
        if len(inside):
            assert cells["min"][k] == inside.min() and cells["max"][k] == inside.max()
            assert cells["avg"][k] == pytest.approx(inside.mean())
        assert (np.isnan(cells["value"][k]) and not len(before)) or cells["value"][k] == before[-1]


def test_bad_grids_and_fill_rules_are_refused() -> None:
    with pytest.raises(QueryError, match="positive"):
        grid(0, 10, 0)
    with pytest.raises(QueryError, match="after"):
        grid(10, 10, 1)
    with pytest.raises(QueryError, match="larger step"):
        grid(0, MAX_CELLS + 1, 1)
    with pytest.raises(QueryError, match="analogs only"):
        fill_rule(STATUS, LINEAR)
    with pytest.raises(QueryError, match="not one of"):
        fill_rule(ANALOG, "cubic")
    assert fill_rule(STATUS, None) == PREVIOUS and fill_rule(ANALOG, LINEAR) == LINEAR


def test_columns_round_trip_exactly() -> None:
    cols = {
        "times": np.arange(5, dtype=np.int64),
        "values": np.array([[1.5, np.nan], [-0.0, 3.0]]),
        "quality": np.array([0, 1, 2], np.uint8),
    }
    out, meta = columnar.decode(columnar.encode(cols, {"ikey": 7}))
    assert meta == {"ikey": 7}
    for name, col in cols.items():
        assert out[name].dtype == col.dtype and out[name].tobytes() == col.tobytes()


def test_a_damaged_columnar_body_is_a_clear_error() -> None:
    body = columnar.encode({"x": np.arange(1000, dtype=np.int64)})
    with pytest.raises(QueryError):
        columnar.decode(body[:-5])
    with pytest.raises(QueryError, match="magic"):
        columnar.decode(columnar.zstandard.ZstdCompressor().compress(b"nope" * 4))
