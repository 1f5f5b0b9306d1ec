"""pegasus_kafka.downstream: per-point samples equal what the hosts scanned, and
a commit makes a restarted consumer carry on where it stopped."""

from __future__ import annotations

import uuid

import numpy as np

from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.downstream import SampleStream
from pegasus_kafka.schema import BACKUP, LIMIT, PRIMARY
from tests.helpers import wait_for
from tests.integration.harness import produce_site


def test_samples_are_what_each_host_scanned_and_commits_resume(cfg: Config) -> None:
    produce_site(cfg, range(3000, 3003))
    site = cfg.sites[0]
    want: dict[tuple[str, int, int], float] = {}
    for host, role in ((site.hosts[0].name, PRIMARY), (site.hosts[1].name, BACKUP)):
        src = SimSource(site, host, role)
        for seq in range(3000, 3003):
            result = src.read(seq)
            for scan in result.scans:
                if scan.data_type != LIMIT:
                    for k, v in zip(scan.ikeys.tolist(), scan.values.tolist(), strict=True):
                        want[(host, k, result.scan_time_ms)] = v
    group = f"samples-{uuid.uuid4().hex[:8]}"
    stream = SampleStream(cfg, group)
    got: dict[tuple[str, int, int], float] = {}

    def half() -> bool:
        for s in stream.poll(timeout=0.5, max_records=5):
            if s.data_type != "LIMIT":
                got[(s.host, s.ikey, s.scan_time_ms)] = float(s.value)  # type: ignore[arg-type]
        return len(got) >= len(want) // 2

    wait_for(half, 60, "half the samples", interval=0)
    stream.commit()
    stream.close()
    # A new member of the same group starts after what was committed.
    stream = SampleStream(cfg, group)

    def rest() -> bool:
        for s in stream.poll(timeout=0.5):
            if s.data_type != "LIMIT":
                key = (s.host, s.ikey, s.scan_time_ms)
                assert key not in got, "a committed sample came again"
                got[key] = float(s.value)  # type: ignore[arg-type]
        return len(got) >= len(want)

    wait_for(rest, 60, "every sample", interval=0)
    stream.close()
    assert got.keys() == want.keys()
    assert np.array_equal(
        np.array([got[k] for k in sorted(want)]), np.array([want[k] for k in sorted(want)])
    )
