"""Recorded scans replay into the RDS exactly: frame files and CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner

from pegasus_kafka.cli import common
from pegasus_kafka.cli.main import cli
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.kafka.topics import ensure_topics
from pegasus_kafka.ring.scan import ScanPartition
from pegasus_kafka.schema import ANALOG, BACKUP, PRIMARY, STATUS
from tests.integration.harness import start_ring, wait_caught_up


def _collector(cfg: Config, *args: str) -> str:
    state = common.State(None, 0)
    state._cfg = cfg
    result = CliRunner().invoke(cli.commands["collector"], list(args), obj=state)
    assert result.exit_code == 0, result.output
    return result.output


def test_frame_files_and_csv_replay_into_the_rds_exactly(cfg: Config, tmp_path: Path) -> None:
    ensure_topics(cfg)
    scans = range(9500, 9510)
    span = ["--from-scan", str(scans.start), "--scans", str(len(scans))]
    frames, table = tmp_path / "ems-a.frames", tmp_path / "ems-b.csv"
    _collector(cfg, "record", "--site", "north", "--host", "ems-a", *span, "--out", str(frames))
    _collector(cfg, "record", "--site", "north", "--host", "ems-b", *span, "--out", str(table))
    for host, kind, path in (("ems-a", "frames", frames), ("ems-b", "csv", table)):
        run = ["run", "--site", "north", "--host", host, "--source", kind, "--file", str(path)]
        assert "replayed 10 scans" in _collector(cfg, *run)

    ring = start_ring(cfg, "replayed", servers=1)
    try:
        wait_caught_up(ring, cfg)
        site = cfg.sites[0]
        for host, role in (("ems-a", PRIMARY), ("ems-b", BACKUP)):
            src = SimSource(site, host, role)
            for dtype in (ANALOG, STATUS):
                ikey = int(src.field.ikeys[src.field.dtype == dtype][0])
                mat = next(
                    m
                    for m in ring.servers[0].server.parts.values()
                    if isinstance(m, ScanPartition) and m.knows(dtype, ikey)
                )
                got = mat.history(dtype, ikey, 0, 2**62)[f"{site.name}/{host}"]
                idx = int(np.flatnonzero(src.field.ikeys == ikey)[0])
                want = [
                    float(src.field.values(s, src.read(s).scan_time_ms, src._salt)[0][idx])
                    for s in scans
                ]
                assert got.values.tolist() == want, (host, dtype)
                assert got.times.tolist() == [src.read(s).scan_time_ms for s in scans]
    finally:
        ring.stop()


def test_a_bad_recording_is_refused_with_its_line_and_sends_nothing(
    cfg: Config, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "scan,time_ms,ikey,type,value,quality,role\n1,1000,5,ANALOG,1.5,0,primary\n"
        "2,2000,5,ANALOG,oops,0,primary\n"
    )
    state = common.State(None, 0)
    state._cfg = cfg
    args = ["run", "--site", "north", "--host", "ems-a", "--source", "csv", "--file", str(bad)]
    result = CliRunner().invoke(cli.commands["collector"], args, obj=state)
    assert result.exit_code == 1
    assert "bad.csv:3" in result.output and "nothing from the file was sent" in result.output
