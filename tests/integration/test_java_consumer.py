"""The Java consumer in examples/ decodes the topics from schemas/ alone, and its
decoding equals the Python one, record for record."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from confluent_kafka import TopicPartition

from pegasus_kafka.aas.runner import AppRunner
from pegasus_kafka.aas.truth import analog_truth, status_truth
from pegasus_kafka.config import Config
from pegasus_kafka.downstream import plain
from pegasus_kafka.kafka import clients
from pegasus_kafka.schema import codec, schema_dir
from tests.integration.harness import produce_site
from tests.integration.test_aas import Downstream, _config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "java-consumer"
TOPICS = {
    "scan": "pegasus.ScanFrame",
    "aas.status": "pegasus.StatusException",
    "aas.analog": "pegasus.AnalogException",
}
COLUMNS = {"ikeys": "<i8", "values": "<f8", "quality": "u1", "changes": "u1"}

pytestmark = pytest.mark.skipif(
    not (shutil.which("mvn") and shutil.which("java")), reason="needs Java and Maven"
)


def _build(tmp_path: Path) -> str:
    """Build the example with Maven; returns its class path."""
    work = tmp_path / "java-consumer"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("target"))
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "package",
            "dependency:build-classpath",
            "-Dmdep.outputFile=target/classpath.txt",
        ],
        cwd=work,
        check=True,
        timeout=900,
    )
    deps = (work / "target" / "classpath.txt").read_text().strip()
    return f"{work / 'target' / 'classes'}{os.pathsep}{deps}"


def _python_decoding(cfg: Config) -> dict[tuple[str, int, int], Any]:
    """Every record of the topics decoded in Python, the first copy of each id."""
    consumer = clients.consumer(cfg, "python-decoding")
    out: dict[tuple[str, int, int], Any] = {}
    seen: set[str] = set()
    try:
        for suffix, record in TOPICS.items():
            topic = f"{cfg.kafka.topic_prefix}.{suffix}"
            for p in range(cfg.topics.partitions):
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                consumer.assign([TopicPartition(topic, p, 0)])
                got = 0
                while got < high:
                    for msg in consumer.consume(500, timeout=1.0):
                        got = msg.offset() + 1
                        value = plain(codec(record).decode(msg.value()))
                        if "id" in value:
                            if value["id"] in seen:
                                continue
                            seen.add(value["id"])
                        for name, dtype in COLUMNS.items():
                            if name in value and isinstance(value[name], bytes):
                                value[name] = np.frombuffer(value[name], dtype).tolist()
                        out[(topic, p, msg.offset())] = value
    finally:
        consumer.close()
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(b, float) and math.isnan(b):
        return a == "NaN"
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and float(a) == float(b)
    return bool(a == b)


def test_the_java_consumer_decodes_what_python_decodes(cfg: Config, tmp_path: Path) -> None:
    classpath = _build(tmp_path)
    cfg = _config(cfg)
    produce_site(cfg, range(7000, 7030))
    runners = [AppRunner(cfg, "r1", app) for app in ("status", "analog")]
    threads = [threading.Thread(target=r.run, daemon=True) for r in runners]
    for t in threads:
        t.start()
    site = cfg.sites[0]
    try:
        # Everything mined, links included, before the two decodings are compared.
        Downstream(cfg, "status").drain_until(set(status_truth(site, 7000, 7029)), linked=True)
        Downstream(cfg, "analog").drain_until(set(analog_truth(site, "ems-a", 7000, 7029)))
    finally:
        for r in runners:
            r.stop()
        for t in threads:
            t.join(60)
    expected = _python_decoding(cfg)
    run = subprocess.run(
        [
            "java",
            "-cp",
            classpath,
            "io.pegasus.examples.PegasusConsumer",
            "--bootstrap",
            cfg.kafka.bootstrap,
            "--prefix",
            cfg.kafka.topic_prefix,
            "--schemas",
            str(schema_dir()),
            "--topics",
            ",".join(TOPICS),
            "--group",
            "java-decoding",
            "--idle-ms",
            "5000",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    got = {(r["topic"], r["partition"], r["offset"]): r["value"] for r in lines}
    assert got.keys() == expected.keys()
    kinds = {v["kind"] for v in got.values() if "kind" in v}
    assert {"CHANGE", "LINK", "VIOLATION", "RETURN"} <= kinds
    for key, value in expected.items():
        assert _same(got[key], value), key
