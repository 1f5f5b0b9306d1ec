"""Fixtures for every tier."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest

from pegasus_kafka.config import (
    CollectorSettings,
    Config,
    HostConfig,
    ServerSettings,
    SiteConfig,
    StoreSettings,
)


def make_config(
    tmp_path: Path,
    bootstrap: str = "127.0.0.1:9",
    partitions: int = 3,
    points: int = 300,
    **store: int,
) -> Config:
    """A config of its own for one test: unique topics, its own data directory."""
    base = Config()
    site = SiteConfig(
        name="north",
        code=1,
        scan_period_ms=1000,
        points=points,
        substations=5,
        seed=11,
        status_rate=2_000_000.0,
        hosts=(HostConfig("ems-a", "primary"), HostConfig("ems-b", "backup")),
    )
    return base.with_overrides(
        kafka=dataclasses.replace(
            base.kafka, bootstrap=bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}"
        ),
        topics=dataclasses.replace(base.topics, partitions=partitions),
        store=StoreSettings(data_dir=str(tmp_path / "data"), **store),
        server=ServerSettings(heartbeat_s=0.5, in_sync_lag=0),
        collector=CollectorSettings(spool_dir=str(tmp_path / "spool")),
        sites=(site,),
    )


@pytest.fixture
def unit_config(tmp_path: Path) -> Config:
    return make_config(tmp_path)
