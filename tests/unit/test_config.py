from __future__ import annotations

from pathlib import Path

import pytest

from pegasus_kafka.config import load_config, parse_config
from pegasus_kafka.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_defaults_without_a_file() -> None:
    cfg = load_config(env={})
    assert cfg.kafka.bootstrap == "127.0.0.1:9092"
    assert cfg.scan_topic == "pegasus.scan" and cfg.registry_topic == "pegasus.registry"


def test_the_dev_config_loads() -> None:
    cfg = load_config(REPO / "ops" / "pegasus.toml", env={})
    assert [r.name for r in cfg.rings] == ["ring-a", "ring-b"]
    assert [h.role for h in cfg.site("north").hosts] == ["primary", "backup"]


def test_environment_overrides_the_file() -> None:
    env = {
        "PEGASUS_KAFKA_BOOTSTRAP": "k1:9093",
        "PEGASUS_TOPIC_PREFIX": "x",
        "PEGASUS_DATA_DIR": "/srv/rds",
        "PEGASUS_KAFKA__SASL_PASSWORD": "hunter2",
        "PEGASUS_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
    }
    cfg = load_config(REPO / "ops" / "pegasus.toml", env=env)
    assert cfg.kafka.bootstrap == "k1:9093" and cfg.scan_topic == "x.scan"
    assert cfg.store.data_dir == "/srv/rds"
    assert cfg.kafka.client["security.protocol"] == "SASL_SSL"
    redacted = cfg.kafka.redacted()
    assert redacted["sasl.password"] == "***" and "hunter2" not in repr(redacted)


def test_config_is_frozen() -> None:
    cfg = load_config(env={})
    with pytest.raises(AttributeError):
        cfg.kafka.bootstrap = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"kafka": {"bootstrp": "x"}}, "kafka.bootstrp"),
        ({"topics": {"partitions": "six"}}, "topics.partitions"),
        ({"topics": {"partitions": 0}}, "topics.partitions"),
        ({"topics": {"compression": "brotli"}}, "topics.compression"),
        ({"nonsense": {}}, "nonsense"),
        ({"sites": [{"name": "a"}]}, "sites[0]"),
        ({"sites": [{"name": "a", "code": 1}, {"name": "b", "code": 1}]}, "sites[1].code"),
        ({"sites": [{"name": "a", "code": 1, "hosts": ["h1", "h2"]}]}, "sites[0].hosts"),
        ({"store": {"sync_writes": "yes"}}, "store.sync_writes"),
    ],
)
def test_bad_config_names_the_key(doc: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(doc, env={})
    assert err.value.key == key
    assert key in str(err.value)


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[kafka\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, env={})


def test_a_config_pickles_for_child_processes() -> None:
    import pickle

    cfg = parse_config({"kafka": {"client": {"security.protocol": "SSL"}}}, env={})
    copy = pickle.loads(pickle.dumps(cfg))
    assert copy == cfg and dict(copy.kafka.client) == {"security.protocol": "SSL"}


def test_failover_scans_must_be_increasing_integers() -> None:
    site = {"name": "s", "code": 1, "failover_scans": [5, 9]}
    assert parse_config({"sites": [site]}, env={}).sites[0].failover_scans == (5, 9)
    for bad in ([9, 5], ["x"], 7):
        with pytest.raises(ConfigError, match="failover_scans"):
            parse_config({"sites": [dict(site, failover_scans=bad)]}, env={})
