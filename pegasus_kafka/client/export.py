"""Exporting history to CSV or Parquet through the smart client, a day at a time.

Each point's range is fetched in day-sized chunks in the compact columnar
encoding and appended to the file as it arrives, so a year of many points
never has to fit in memory, and a progress bar can say how far it got. With
a step, chunks are whole multiples of it, so the grid runs on unbroken.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pegasus_kafka.client.client import PegasusClient
from pegasus_kafka.errors import QueryError

DAY_MS = 86_400_000
FORMATS = ("csv", "parquet")


def chunks(t0: int, t1: int, step: int | None) -> list[tuple[int, int]]:
    """[a, b) pieces of [t0, t1) of about a day; multiples of ``step`` when given."""
    size = DAY_MS if step is None else max(step, DAY_MS // step * step)
    return [(a, min(a + size, t1)) for a in range(t0, t1, size)]


def _pieces(
    client: PegasusClient,
    ikeys: list[int],
    t0: int,
    t1: int,
    step: int | None,
    fill: str | None,
    host: str | None,
) -> Iterator[dict[str, np.ndarray]]:
    for ikey in ikeys:
        for a, b in chunks(t0, t1, step):
            # Raw history includes its end time; [a, b - 1] keeps the chunks disjoint.
            got = client.series(ikey, a, b if step else b - 1, step, fill, host)
            cols = {"ikey": np.full(len(got["times"]), ikey, np.int64)}
            cols.update({"time_ms": got["times"]})
            cols.update({k: v for k, v in got.columns.items() if k != "times"})
            yield cols


def export(
    client: PegasusClient,
    ikeys: list[int],
    t0: int,
    t1: int,
    path: Path,
    fmt: str,
    step: int | None = None,
    fill: str | None = None,
    host: str | None = None,
    advance: Callable[[int], None] | None = None,
) -> int:
    """Write the points' history to ``path``; returns the rows written.
    ``advance`` is called once per chunk with the rows it added."""
    if fmt not in FORMATS:
        raise QueryError(f"format: '{fmt}' is not one of {', '.join(FORMATS)}")
    if t1 <= t0:
        raise QueryError("time range: 'to' must be after 'from'")
    pieces = _pieces(client, ikeys, t0, t1, step, fill, host)
    writer = _write_csv if fmt == "csv" else _write_parquet
    return writer(pieces, path, advance or (lambda n: None))


def _write_csv(
    pieces: Iterator[dict[str, np.ndarray]], path: Path, advance: Callable[[int], None]
) -> int:
    rows = 0
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        header: list[str] | None = None
        for cols in pieces:
            if header is None:
                header = list(cols)
                out.writerow(header)
            n = len(cols["time_ms"])
            values = [_text(cols[name]) for name in header]
            out.writerows(zip(*values, strict=True))
            rows += n
            advance(n)
        if header is None:
            out.writerow(["ikey", "time_ms", "values"])
    return rows


def _text(col: np.ndarray) -> list[Any]:
    """Column cells for CSV: a missing float is an empty cell."""
    if col.dtype.kind == "f":
        return ["" if x != x else repr(x) for x in col.tolist()]
    return list(col.tolist())


def _write_parquet(
    pieces: Iterator[dict[str, np.ndarray]], path: Path, advance: Callable[[int], None]
) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    writer = None
    try:
        for cols in pieces:
            table = pa.table({name: pa.array(col) for name, col in cols.items()})
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table)
            rows += table.num_rows
            advance(table.num_rows)
    finally:
        if writer is not None:
            writer.close()
    return rows
