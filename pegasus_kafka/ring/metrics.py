"""Prometheus metrics of the ring servers: rates, lag, latency, errors."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from pegasus_kafka.ring.base import ApplyResult

SAMPLES = Counter("pegasus_ring_samples", "Samples materialised", ["ring", "topic"])
RECORDS = Counter("pegasus_ring_records", "Records applied", ["ring", "topic"])
DUPLICATES = Counter(
    "pegasus_ring_duplicates", "Records skipped as already applied", ["ring", "topic"]
)
DEAD = Counter("pegasus_ring_dead_letters", "Records skipped as malformed", ["ring", "topic"])
STORE_BYTES = Gauge(
    "pegasus_ring_store_bytes", "Size of a partition's store", ["ring", "topic", "partition"]
)
LAG = Gauge("pegasus_ring_lag_records", "Records not yet applied", ["ring", "topic", "partition"])
BATCH = Histogram(
    "pegasus_ring_batch_seconds",
    "Time to apply one batch to one partition",
    ["ring"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
SEAL = Histogram(
    "pegasus_ring_seal_seconds",
    "Time to seal one frozen head into blocks",
    ["ring"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SEAL_ERRORS = Counter("pegasus_ring_seal_errors", "Seals that failed", ["ring"])


def observe_batch(
    ring: str, topic: str, partition: int, result: ApplyResult, seconds: float
) -> None:
    del partition  # per-partition detail lives in the lag gauge; rates stay per topic
    SAMPLES.labels(ring, topic).inc(result.samples)
    RECORDS.labels(ring, topic).inc(result.applied)
    if result.duplicates:
        DUPLICATES.labels(ring, topic).inc(result.duplicates)
    if result.dead:
        DEAD.labels(ring, topic).inc(len(result.dead))
    BATCH.labels(ring).observe(seconds)
