"""Creates or validates the project's topics, idempotently.

An existing topic that differs from the configuration is reported, never
changed: altering partitions or retention of a production topic is an
operator's decision.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

from pegasus_kafka.config import AAS_APPS, Config
from pegasus_kafka.errors import KafkaUnavailable, TopicMismatch
from pegasus_kafka.kafka.clients import admin, wait_result

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


def topic_specs(cfg: Config) -> list[TopicSpec]:
    t = cfg.topics
    durable = {
        "retention.ms": "-1",
        "retention.bytes": "-1",
        "cleanup.policy": "delete",
        "compression.type": t.compression,
        "min.insync.replicas": str(t.min_insync_replicas),
        "unclean.leader.election.enable": "false",
        "max.message.bytes": str(8 * 1024 * 1024),
    }
    compacted = dict(durable, **{"cleanup.policy": "compact"})
    rf = t.replication_factor
    return [
        TopicSpec(cfg.scan_topic, t.partitions, rf, durable),
        # Metadata co-partitions with the scan topic: a point's data and its
        # description live in the same partition number.
        TopicSpec(cfg.meta_topic, t.partitions, rf, durable),
        TopicSpec(cfg.events_topic, t.partitions, rf, durable),
        TopicSpec(cfg.registry_topic, 1, rf, compacted),
        TopicSpec(cfg.deadletter_topic, 1, rf, durable),
        # Exceptions co-partition with the points they concern, so the copies
        # every ring publishes of one exception meet in one partition.
        *(TopicSpec(cfg.aas_topic(app), t.partitions, rf, durable) for app in AAS_APPS),
    ]


@dataclass
class EnsureReport:
    created: list[str] = field(default_factory=list)
    valid: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)


def ensure_topics(cfg: Config, timeout: float = 30.0) -> EnsureReport:
    """Create missing topics and validate existing ones.

    Raises :class:`TopicMismatch` listing every difference found.
    """
    client = admin(cfg)
    try:
        existing = client.list_topics(timeout=timeout).topics
    except Exception as exc:
        raise KafkaUnavailable.wrap(f"cannot list topics at {cfg.kafka.bootstrap}", exc) from None
    report = EnsureReport()
    specs = topic_specs(cfg)
    missing = [s for s in specs if s.name not in existing]
    if missing:
        futures = client.create_topics(
            [
                NewTopic(s.name, s.partitions, s.replication_factor, config=s.configs)
                for s in missing
            ],
            operation_timeout=timeout,
        )
        for name, fut in futures.items():
            try:
                wait_result(fut, f"create topic {name}", timeout)
            except KafkaUnavailable as exc:
                if exc.name != "TOPIC_ALREADY_EXISTS":
                    raise
            report.created.append(name)
            log.info("topic created topic=%s", name)
    for spec in specs:
        if spec.name in report.created:
            continue
        report.mismatches.extend(_compare(client, spec, existing[spec.name], timeout))
        if not any(m.startswith(spec.name + ":") for m in report.mismatches):
            report.valid.append(spec.name)
    if report.mismatches:
        raise TopicMismatch("; ".join(report.mismatches))
    return report


def _compare(client: Any, spec: TopicSpec, meta: Any, timeout: float) -> list[str]:
    problems = []
    parts = len(meta.partitions)
    if parts != spec.partitions:
        problems.append(f"{spec.name}: partitions is {parts}, config says {spec.partitions}")
    replicas = min((len(p.replicas) for p in meta.partitions.values()), default=0)
    if replicas != spec.replication_factor:
        problems.append(
            f"{spec.name}: replication factor is {replicas}, config says {spec.replication_factor}"
        )
    resource = ConfigResource(ResourceType.TOPIC, spec.name)
    futures = client.describe_configs([resource], request_timeout=timeout)
    entries = wait_result(futures[resource], f"describe topic {spec.name}", timeout)
    for key, want in spec.configs.items():
        have = entries[key].value if key in entries else None
        if have != want:
            problems.append(f"{spec.name}: {key} is {have}, config says {want}")
    return problems
