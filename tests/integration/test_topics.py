from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

from pegasus_kafka.bench.fleet import bench_config, drop_bench_topics
from pegasus_kafka.errors import TopicMismatch
from pegasus_kafka.kafka import clients
from pegasus_kafka.kafka.topics import ensure_topics, topic_specs
from tests.conftest import make_config


def test_ensure_creates_then_validates(tmp_path: Path, kafka_bootstrap: str) -> None:
    cfg = make_config(tmp_path, bootstrap=kafka_bootstrap)
    first = ensure_topics(cfg)
    assert sorted(first.created) == sorted(
        [*cfg.data_topics, cfg.registry_topic, cfg.deadletter_topic]
    )
    second = ensure_topics(cfg)
    assert second.created == [] and len(second.valid) == len(first.created)
    admin = clients.admin(cfg)
    res = ConfigResource(ResourceType.TOPIC, cfg.scan_topic)
    entries = admin.describe_configs([res])[res].result(timeout=10)
    assert entries["retention.ms"].value == "-1"
    assert entries["unclean.leader.election.enable"].value == "false"
    reg = ConfigResource(ResourceType.TOPIC, cfg.registry_topic)
    assert (
        admin.describe_configs([reg])[reg].result(timeout=10)["cleanup.policy"].value == "compact"
    )


def test_a_mismatch_is_reported_and_never_changed(tmp_path: Path, kafka_bootstrap: str) -> None:
    cfg = make_config(tmp_path, bootstrap=kafka_bootstrap, partitions=3)
    admin = clients.admin(cfg)
    fut = admin.create_topics([NewTopic(cfg.scan_topic, 2, 1)])[cfg.scan_topic]
    fut.result(timeout=30)
    with pytest.raises(TopicMismatch) as err:
        ensure_topics(cfg)
    assert f"{cfg.scan_topic}: partitions is 2, config says 3" in str(err.value)
    assert "retention.ms" in str(err.value)
    md = admin.list_topics(timeout=10).topics[cfg.scan_topic]
    assert len(md.partitions) == 2


def test_a_bench_drops_its_own_topics_and_no_others(tmp_path: Path, kafka_bootstrap: str) -> None:
    mine = make_config(tmp_path / "mine", bootstrap=kafka_bootstrap)
    ensure_topics(mine)
    bench = bench_config(mine, 100, tmp_path / "bench")
    ensure_topics(bench)
    created = {t.name for t in topic_specs(bench)}
    assert created <= set(drop_bench_topics())
    admin = clients.admin(mine)

    def left() -> set[str]:
        return created & set(admin.list_topics(timeout=10).topics)

    deadline = time.monotonic() + 30
    while left() and time.monotonic() < deadline:
        time.sleep(0.2)  # poll
    assert not left()
    assert {t.name for t in topic_specs(mine)} <= set(admin.list_topics(timeout=10).topics)
