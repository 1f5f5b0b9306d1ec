"""Recorded scans read back as they were read: every poll group, at its time."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from pegasus_kafka.collector import replay
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import HostConfig, SiteConfig
from pegasus_kafka.schema import LIMIT, PRIMARY

SITE = SiteConfig(
    "r", 4, 1000, (HostConfig("a", "primary"), HostConfig("b", "backup")),
    points=120, substations=6, status_rate=5e5,
)  # fmt: skip


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("kind", ["frames", "csv"])
def test_a_recording_replays_each_poll_group_at_its_time(
    tmp_path: Path, groups: int, kind: str
) -> None:
    site = dataclasses.replace(SITE, poll_groups=groups)
    source = SimSource(site, "a", PRIMARY)
    path = tmp_path / f"a.{kind}"
    scans = range(40, 44)
    if kind == "frames":
        replay.record_frames(source, scans, path, partitions=2)
        got = replay.read_frames(site, "a", path)
    else:
        replay.write_csv(source, scans, path)
        got = replay.read_csv(site, "a", path)
    assert got.seqs == list(scans) and got.poll_groups == groups
    for seq in scans:
        for group in range(groups):
            want, back = source.read(seq, group), got.read(seq, group)
            assert (back.scan_time_ms, back.role) == (want.scan_time_ms, want.role)
            sent = {s.data_type: s for s in want.scans if s.data_type != LIMIT and len(s.ikeys)}
            assert {s.data_type for s in back.scans} == set(sent)
            for s in back.scans:
                # A frame file holds a scan partition by partition.
                mine, theirs = np.argsort(s.ikeys), np.argsort(sent[s.data_type].ikeys)
                assert np.array_equal(s.ikeys[mine], sent[s.data_type].ikeys[theirs])
                assert np.array_equal(s.values[mine], sent[s.data_type].values[theirs])
