"""``pegasus query export``: CSV and Parquet hold exactly what the API serves."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from click.testing import CliRunner

from pegasus_kafka.cli import common
from pegasus_kafka.cli.main import cli
from pegasus_kafka.client import PegasusClient
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.schema import PRIMARY
from tests.integration.harness import produce_site, start_ring, wait_caught_up


def _export(cfg: Config, *args: str) -> None:
    state = common.State(None, 0)
    state._cfg = cfg
    result = CliRunner().invoke(cli.commands["query"], ["export", *args], obj=state)
    assert result.exit_code == 0, result.output


def test_export_to_csv_and_parquet_matches_the_api(cfg: Config, tmp_path: Path) -> None:
    produce_site(cfg, range(8000, 8030))
    ring = start_ring(cfg, "export", servers=2)
    try:
        wait_caught_up(ring, cfg)
        keys = [int(k) for k in SimSource(cfg.sites[0], "ems-a", PRIMARY).field.ikeys[:3]]
        t0, t1 = 8000 * 1000, 8030 * 1000
        span = ["--from", str(t0), "--to", str(t1)]
        _export(cfg, *map(str, keys), *span, "--out", str(tmp_path / "raw.csv"))
        _export(cfg, *map(str, keys), *span, "--step", "7000", "--out", str(tmp_path / "g.parquet"))

        with PegasusClient(cfg) as client:
            raw = [client.series(k, t0, t1 - 1) for k in keys]
            grids = [client.series(k, t0, t1, step=7000) for k in keys]
        with (tmp_path / "raw.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == sum(len(r["times"]) for r in raw) > 0
        first = [r for r in rows if int(r["ikey"]) == keys[0]]
        assert [int(r["time_ms"]) for r in first] == raw[0]["times"].tolist()
        assert [float(r["values"]) for r in first] == raw[0]["values"].tolist()

        table = pq.read_table(tmp_path / "g.parquet")
        assert table.column_names == ["ikey", "time_ms", "values", "min", "max", "avg", "count"]
        for key, got in zip(keys, grids, strict=True):
            part = table.filter(table["ikey"].to_numpy() == key)
            assert part["time_ms"].to_numpy().tolist() == got["times"].tolist()
            np.testing.assert_array_equal(part["avg"].to_numpy(), got["avg"])
    finally:
        ring.stop()
