"""One real Kafka broker for the whole integration session.

Chosen in order: ``PEGASUS_KAFKA_BOOTSTRAP`` if set, then a testcontainers
broker if a Docker engine answers, then the local KRaft broker from ops/.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pegasus_kafka.config import Config
from pegasus_kafka.kafka.broker import KAFKA_VERSION, LocalBroker
from pegasus_kafka.kafka.topics import ensure_topics
from tests.conftest import make_config

pytestmark = pytest.mark.integration


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("PEGASUS_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer(f"apache/kafka:{KAFKA_VERSION}").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    state = Path(tempfile.mkdtemp(prefix="pegasus-test-broker-"))
    broker = LocalBroker(state)
    try:
        yield broker.start()
    finally:
        broker.stop()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def cfg(tmp_path: Path, kafka_bootstrap: str) -> Config:
    """A config with topics of its own, already created."""
    config = make_config(tmp_path, bootstrap=kafka_bootstrap)
    ensure_topics(config)
    return config
