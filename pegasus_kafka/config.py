"""Configuration: frozen objects built once from one TOML file plus environment overrides.

The CLI, the servers, the collectors and the tests all build the same
:class:`Config`. Every key is optional; missing keys take the defaults below.
Unknown keys and wrong types are refused with the key named.

Environment overrides (applied after the file):

==============================  ==========================================
``PEGASUS_CONFIG``              path of the TOML file
``PEGASUS_KAFKA_BOOTSTRAP``     ``kafka.bootstrap``
``PEGASUS_TOPIC_PREFIX``        ``kafka.topic_prefix``
``PEGASUS_DATA_DIR``            ``store.data_dir``
``PEGASUS_KAFKA__<KEY>``        librdkafka passthrough: ``PEGASUS_KAFKA__SASL_PASSWORD``
                                sets ``sasl.password`` (underscores become dots)
==============================  ==========================================
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pegasus_kafka.errors import ConfigError

SECRET_MARKERS = ("password", "secret", "token", "key.pem", "private")


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "pegasus"
    #: librdkafka properties passed through verbatim (security.protocol, sasl.*, ssl.*, ...)
    client: Mapping[str, str] = field(default_factory=dict)

    def __reduce__(self) -> tuple[Any, tuple[str, str, dict[str, str]]]:
        # Configs travel to child processes (spawned servers); a mapping proxy
        # does not pickle, so the client settings go as a plain dict.
        return (_kafka_settings, (self.bootstrap, self.topic_prefix, dict(self.client)))

    def redacted(self) -> dict[str, str]:
        """The client settings safe to log: secrets are masked."""
        out = {"bootstrap.servers": self.bootstrap}
        for key, value in self.client.items():
            masked = any(marker in key.lower() for marker in SECRET_MARKERS)
            out[key] = "***" if masked else value
        return out


def _kafka_settings(bootstrap: str, topic_prefix: str, client: dict[str, str]) -> KafkaSettings:
    return KafkaSettings(bootstrap, topic_prefix, types.MappingProxyType(client))


@dataclass(frozen=True)
class TopicSettings:
    partitions: int = 6
    replication_factor: int = 1
    min_insync_replicas: int = 1
    compression: str = "zstd"


@dataclass(frozen=True)
class HostConfig:
    name: str
    #: the role the host starts in; the EMS decides it afterwards
    role: str = "primary"


@dataclass(frozen=True)
class SiteConfig:
    name: str
    #: unique small number: the high bits of every invariant key of the site
    code: int
    scan_period_ms: int = 5000
    hosts: tuple[HostConfig, ...] = ()
    #: simulated points, for the simulator source
    points: int = 1000
    substations: int = 20
    seed: int = 1
    #: the simulated EMS polls its RTUs (one per substation) in this many groups,
    #: spread evenly over the scan period: a group's points carry its poll time,
    #: and the collector sends each group as it is polled
    poll_groups: int = 1
    #: simulated status changes per day per 1,000 status points
    status_rate: float = 4.0
    #: scan numbers at which the simulated hosts swap roles (host failovers)
    failover_scans: tuple[int, ...] = ()
    #: scan numbers at which the simulated EMS renames one of its points
    rename_scans: tuple[int, ...] = ()
    #: scan numbers at which it moves one of its points to another substation
    move_scans: tuple[int, ...] = ()
    #: scan numbers at which a new point appears (it gets the next key)
    new_point_scans: tuple[int, ...] = ()
    #: scan numbers at which the EMS changes the limits of every limited analog;
    #: the first tightens them below the load curve, the next restores them, ...
    limit_change_scans: tuple[int, ...] = ()
    #: simulated limit excursions per day per 1,000 limited analogs
    excursion_rate: float = 0.0


@dataclass(frozen=True)
class RingConfig:
    name: str
    servers: int = 2
    site: str = ""
    #: first HTTP port of the ring's local servers (dev and demo)
    base_port: int = 0


@dataclass(frozen=True)
class StoreSettings:
    data_dir: str = ".pegasus/data"
    #: unsealed samples per partition before they are sealed into per-point blocks
    seal_samples: int = 400_000
    #: scan-time span of unsealed data before it is sealed (ms)
    seal_span_ms: int = 3_600_000
    #: fsync the RocksDB WAL on every batch
    sync_writes: bool = False
    #: every ring records each partition's digest at offsets that are multiples of this
    checkpoint_every: int = 1000
    #: memtables of all of a server's stores together (MiB)
    memtable_mb: int = 192
    #: block cache shared by all of a server's stores (MiB)
    block_cache_mb: int = 128


@dataclass(frozen=True)
class ServerSettings:
    http_host: str = "127.0.0.1"
    #: standby copies of each partition kept by other servers of a ring
    standby_replicas: int = 1
    #: a partition whose lag is at most this many records counts as in sync
    in_sync_lag: int = 50
    #: an in-sync server counts as out of sync again only beyond this lag, so a
    #: brief spike under load does not take its ring out of service
    out_of_sync_lag: int = 5000
    #: seconds between a server's registry heartbeats
    heartbeat_s: float = 2.0


@dataclass(frozen=True)
class CollectorSettings:
    spool_dir: str = ".pegasus/spool"
    spool_max_bytes: int = 2 * 1024**3
    #: "always" fsyncs every frame, "interval" once per fsync_interval_ms,
    #: "never" leaves it to the OS
    fsync: str = "interval"
    fsync_interval_ms: int = 200
    #: most points in one Kafka message
    frame_points: int = 4096


@dataclass(frozen=True)
class AasSettings:
    #: seconds between an application's checkpoints of its partitions' state
    checkpoint_s: float = 5.0
    #: how far (ms of scan time) the scan and event streams may drift apart and
    #: still have every status exception linked to its events
    link_horizon_ms: int = 3_600_000


#: the advanced applications a ring can run, each its own consumer group
AAS_APPS = ("status", "analog")


@dataclass(frozen=True)
class Config:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: TopicSettings = field(default_factory=TopicSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    collector: CollectorSettings = field(default_factory=CollectorSettings)
    aas: AasSettings = field(default_factory=AasSettings)
    sites: tuple[SiteConfig, ...] = ()
    rings: tuple[RingConfig, ...] = ()

    # Topic names derive from the prefix so several systems can share a cluster.
    @property
    def scan_topic(self) -> str:
        return f"{self.kafka.topic_prefix}.scan"

    @property
    def meta_topic(self) -> str:
        return f"{self.kafka.topic_prefix}.meta"

    @property
    def events_topic(self) -> str:
        return f"{self.kafka.topic_prefix}.events"

    @property
    def registry_topic(self) -> str:
        return f"{self.kafka.topic_prefix}.registry"

    @property
    def deadletter_topic(self) -> str:
        return f"{self.kafka.topic_prefix}.deadletter"

    @property
    def data_topics(self) -> tuple[str, ...]:
        """The topics every ring materialises: the SCADA streams, and the exceptions
        every ring's applications publish (so any ring serves them)."""
        apps = tuple(self.aas_topic(app) for app in AAS_APPS)
        return (self.scan_topic, self.meta_topic, self.events_topic, *apps)

    def aas_topic(self, app: str) -> str:
        """Where every ring's instances of an application publish, ids deduplicating."""
        return f"{self.kafka.topic_prefix}.aas.{app}"

    def aas_group(self, ring: str, app: str) -> str:
        return f"{self.kafka.topic_prefix}.aas.{ring}.{app}"

    def group_id(self, ring: str) -> str:
        """The ring's consumer group: systems sharing a cluster keep their groups apart."""
        return f"{self.kafka.topic_prefix}.ring.{ring}"

    def site(self, name: str) -> SiteConfig:
        for site in self.sites:
            if site.name == name:
                return site
        raise ConfigError("sites", f"no site named '{name}'")

    def ring(self, name: str) -> RingConfig:
        for ring in self.rings:
            if ring.name == name:
                return ring
        return RingConfig(name=name)

    def with_overrides(self, **sections: Any) -> Config:
        """A copy with whole sections replaced (tests and benchmarks use this)."""
        return dataclasses.replace(self, **sections)


def _check_type(key: str, value: Any, expected: Any) -> Any:
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {value!r}")
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"expected a number, got {value!r}")
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    raise ConfigError(key, f"unsupported setting type {expected!r}")


def _build(cls: type, table: Any, path: str) -> Any:
    """Build one frozen section from a TOML table, refusing unknown keys."""
    if not isinstance(table, dict):
        raise ConfigError(path, "expected a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - names)
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}", "unknown key")
    kwargs: dict[str, Any] = {}
    for name, value in table.items():
        key = f"{path}.{name}"
        hint = hints[name]
        origin = typing.get_origin(hint)
        if cls is KafkaSettings and name == "client":
            if not isinstance(value, dict):
                raise ConfigError(key, "expected a table of librdkafka properties")
            kwargs[name] = types.MappingProxyType({str(k): str(v) for k, v in value.items()})
        elif cls is SiteConfig and name.endswith("_scans"):
            if not isinstance(value, list):
                raise ConfigError(key, "expected a list of scan numbers")
            scans = [_check_type(f"{key}[{i}]", v, int) for i, v in enumerate(value)]
            if scans != sorted(set(scans)):
                raise ConfigError(key, "scan numbers must be increasing")
            kwargs[name] = tuple(scans)
        elif cls is SiteConfig and name == "hosts":
            if not isinstance(value, list):
                raise ConfigError(key, "expected a list of hosts")
            kwargs[name] = tuple(
                _build(HostConfig, h if isinstance(h, dict) else {"name": h}, f"{key}[{i}]")
                for i, h in enumerate(value)
            )
        elif origin is None:
            kwargs[name] = _check_type(key, value, hint)
        else:
            raise ConfigError(key, "unsupported setting")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(path, f"missing required key ({exc})") from None


def _validate(cfg: Config) -> None:
    if not 1 <= cfg.topics.partitions <= 65535:
        # Partition numbers are sorted as 16-bit integers when scans are cut.
        raise ConfigError("topics.partitions", "must be from 1 to 65535")
    if cfg.topics.replication_factor < 1:
        raise ConfigError("topics.replication_factor", "must be at least 1")
    if not 1 <= cfg.topics.min_insync_replicas <= cfg.topics.replication_factor:
        raise ConfigError("topics.min_insync_replicas", "must be between 1 and replication_factor")
    if cfg.topics.compression not in ("none", "gzip", "snappy", "lz4", "zstd"):
        raise ConfigError("topics.compression", f"unknown codec '{cfg.topics.compression}'")
    if cfg.collector.fsync not in ("always", "interval", "never"):
        raise ConfigError("collector.fsync", "must be always, interval or never")
    codes: dict[int, str] = {}
    for i, site in enumerate(cfg.sites):
        if not 0 < site.code < 2**15:
            raise ConfigError(f"sites[{i}].code", "must be between 1 and 32767")
        if site.code in codes:
            raise ConfigError(f"sites[{i}].code", f"already used by site '{codes[site.code]}'")
        codes[site.code] = site.name
        if site.scan_period_ms < 100:
            raise ConfigError(f"sites[{i}].scan_period_ms", "must be at least 100")
        if site.poll_groups < 1 or site.scan_period_ms // site.poll_groups < 100:
            raise ConfigError(
                f"sites[{i}].poll_groups", "must be at least 1, and groups at least 100 ms apart"
            )
        roles = [h.role for h in site.hosts]
        if any(r not in ("primary", "backup") for r in roles):
            raise ConfigError(f"sites[{i}].hosts", "role must be primary or backup")
        if site.hosts and roles.count("primary") != 1:
            raise ConfigError(f"sites[{i}].hosts", "exactly one host starts as primary")
    for name in ("seal_samples", "memtable_mb", "block_cache_mb"):
        if getattr(cfg.store, name) < 1:
            raise ConfigError(f"store.{name}", "must be at least 1")
    if cfg.server.in_sync_lag < 0:
        raise ConfigError("server.in_sync_lag", "must be at least 0")
    if cfg.server.out_of_sync_lag < cfg.server.in_sync_lag:
        raise ConfigError("server.out_of_sync_lag", "must be at least server.in_sync_lag")
    if cfg.server.heartbeat_s <= 0:
        raise ConfigError("server.heartbeat_s", "must be positive")
    names = [r.name for r in cfg.rings]
    if len(names) != len(set(names)):
        raise ConfigError("rings", "ring names must be unique")


def parse_config(doc: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Build a :class:`Config` from a parsed TOML document and environment overrides."""
    env = os.environ if env is None else env
    doc = dict(doc)
    sections: dict[str, Any] = {}
    plain = {
        "kafka": KafkaSettings,
        "topics": TopicSettings,
        "store": StoreSettings,
        "server": ServerSettings,
        "collector": CollectorSettings,
        "aas": AasSettings,
    }
    unknown = sorted(set(doc) - set(plain) - {"sites", "rings"})
    if unknown:
        raise ConfigError(unknown[0], "unknown section")
    kafka_table = dict(doc.get("kafka", {}))
    kafka_table["client"] = dict(kafka_table.get("client", {}))
    if "PEGASUS_KAFKA_BOOTSTRAP" in env:
        kafka_table["bootstrap"] = env["PEGASUS_KAFKA_BOOTSTRAP"]
    if "PEGASUS_TOPIC_PREFIX" in env:
        kafka_table["topic_prefix"] = env["PEGASUS_TOPIC_PREFIX"]
    for name, value in env.items():
        if name.startswith("PEGASUS_KAFKA__"):
            kafka_table["client"][name[len("PEGASUS_KAFKA__") :].lower().replace("_", ".")] = value
    doc["kafka"] = kafka_table
    store_table = dict(doc.get("store", {}))
    if "PEGASUS_DATA_DIR" in env:
        store_table["data_dir"] = env["PEGASUS_DATA_DIR"]
    doc["store"] = store_table
    for name, cls in plain.items():
        if name in doc:
            sections[name] = _build(cls, doc[name], name)
    for name, cls in (("sites", SiteConfig), ("rings", RingConfig)):
        entries = doc.get(name, [])
        if not isinstance(entries, list):
            raise ConfigError(name, "expected an array of tables ([[...]])")
        sections[name] = tuple(_build(cls, e, f"{name}[{i}]") for i, e in enumerate(entries))
    cfg = Config(**sections)
    _validate(cfg)
    return cfg


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load the config file (``path``, else ``$PEGASUS_CONFIG``, else defaults)."""
    env = os.environ if env is None else env
    chosen = path or env.get("PEGASUS_CONFIG")
    doc: dict[str, Any] = {}
    if chosen:
        try:
            with open(chosen, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError("PEGASUS_CONFIG", f"file not found: {chosen}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(chosen), f"not valid TOML: {exc}") from None
    return parse_config(doc, env)
