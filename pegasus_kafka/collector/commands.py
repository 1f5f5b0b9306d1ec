"""Host failovers on command, for the simulated site.

``pegasus collector failover --site S`` appends a scan number to the site's
command file next to the collectors' spools. Every collector of the site
reads the file before each scan and makes its source swap roles from that
scan on. Both hosts thus switch at the same scan, and a restarted collector
replays the same switches, so a host's role stays a pure function of the
schedule and the commands.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config, SiteConfig

log = logging.getLogger(__name__)


def command_file(cfg: Config, site: SiteConfig) -> Path:
    return Path(cfg.collector.spool_dir) / cfg.kafka.topic_prefix / site.name / "failovers"


def request_failover(cfg: Config, site: SiteConfig, at: int | None = None, lead: int = 2) -> int:
    """Ask the site's collectors to swap host roles at scan ``at`` (default: ``lead``
    scans from now); returns the scan."""
    if at is None:
        at = int(time.time() * 1000) // site.scan_period_ms + lead
    path = command_file(cfg, site)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(f"{at}\n")
    return at


class FailoverCommands:
    """Applies the site's commanded failovers to one collector's source."""

    def __init__(self, cfg: Config, source: SimSource) -> None:
        self.path = command_file(cfg, source.site)
        self.source = source
        self._done: set[int] = set()

    def __call__(self, seq: int) -> None:
        try:
            lines = self.path.read_text().split()
        except FileNotFoundError:
            return
        for line in lines:
            if not line.isdigit() or int(line) in self._done:
                continue
            at = int(line)
            self._done.add(at)
            self.source.fail_over(at)
            log.info(
                "host failover commanded site=%s host=%s at_scan=%d role_now=%s",
                self.source.site.name,
                self.source.host,
                at,
                "primary" if self.source.role_at(seq) == 0 else "backup",
            )
