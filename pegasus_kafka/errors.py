"""The error tree. Every error the project raises is a ``PegasusError``.

Each subclass names what the operator should do about it. Kafka errors are
wrapped with their librdkafka code kept, so callers decide by code, never by
message text. The one place that reads message text is
:func:`kafka_error_from_text`, for the few errors librdkafka reports only as a
string.
"""

from __future__ import annotations

from typing import Any


class PegasusError(Exception):
    """Root of every error raised by pegasus_kafka."""

    hint = ""

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} ({self.hint})" if self.hint else base


class ConfigError(PegasusError):
    """The configuration is invalid; the message names the key."""

    hint = "fix the named key in the config file or its environment override"

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config key '{key}': {problem}")
        self.key = key
        self.problem = problem


class SchemaError(PegasusError):
    """A schema file under schemas/ is missing or invalid."""

    hint = "schemas/*.avsc are the single source of truth; restore them from the repository"


class MalformedRecord(PegasusError):
    """Bytes that do not decode as the topic's schema."""

    hint = "the record is skipped and copied to the dead-letter topic"

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"malformed {what}: {detail}")
        self.what = what
        self.detail = detail


class KafkaUnavailable(PegasusError):
    """Kafka did not answer, or answered with an error."""

    hint = "check that the brokers in kafka.bootstrap are reachable"

    def __init__(self, message: str, code: int | None = None, name: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.name = name

    @classmethod
    def wrap(cls, context: str, err: Any) -> KafkaUnavailable:
        """Wrap a ``confluent_kafka.KafkaError`` (or KafkaException) keeping its code."""
        inner = err.args[0] if getattr(err, "args", None) else err
        code = inner.code() if hasattr(inner, "code") else None
        name = inner.name() if hasattr(inner, "name") else None
        text = inner.str() if hasattr(inner, "str") else str(inner)
        return cls(f"{context}: {name or 'error'}: {text}", code=code, name=name)


class TopicMismatch(PegasusError):
    """An existing topic differs from the configuration; it is never changed silently."""

    hint = "change the topic by hand or the config to match, then run 'pegasus topics ensure'"


class BrokerError(PegasusError):
    """The local development broker could not be fetched, started or stopped."""

    hint = "see the broker log named in the message"


class MissingTool(PegasusError):
    """A tool the command needs (java, mvn, ...) is not installed."""

    hint = "install the named tool and run the command again"


class StoreError(PegasusError):
    """A RocksDB store is unusable (wrong format version, corrupt, locked)."""

    hint = "move the store directory aside; the ring rebuilds it by replay or snapshot"


class StoreClosed(StoreError):
    """A partition's store closed (its partition moved or the server stopped)
    while work on it was staged; the work is redone by the next owner."""

    hint = "nothing to do: the partition's next owner redoes the work"


class NotInSync(PegasusError):
    """The ring answering is still syncing and refuses to serve partial data."""

    hint = "query another ring, or wait for 'pegasus ring sync'"


class QueryError(PegasusError):
    """A query was invalid (unknown point, inverted time range, ...)."""

    hint = "correct the query"


class NotHeld(QueryError):
    """This server holds no copy of the partition asked for (it moved, or never was here)."""

    hint = "ask the server the ring registry lists for that partition"


class UnknownPoint(QueryError):
    """The query names a point this RDS does not hold."""

    hint = "check the invariant key with 'pegasus query meta'"


class NoRingAvailable(PegasusError):
    """No in-sync ring answered the query."""

    hint = "check 'pegasus ring list'; at least one ring must be in sync"


class RegistryError(PegasusError):
    """A ring-registry operation was refused (unknown ring, last in-sync ring, ...)."""

    hint = "see 'pegasus ring list'"


def kafka_error_from_text(text: str) -> KafkaUnavailable:
    """Classify an error that librdkafka gave only as text.

    This is the one helper allowed to look at message text.
    """
    lowered = text.lower()
    if "connection refused" in lowered or "all brokers are down" in lowered:
        return KafkaUnavailable(f"brokers unreachable: {text}", name="_ALL_BROKERS_DOWN")
    if "timed out" in lowered:
        return KafkaUnavailable(f"timed out: {text}", name="_TIMED_OUT")
    return KafkaUnavailable(text)


class ReplayError(PegasusError):
    """A recorded file cannot be replayed as it is."""

    hint = "fix or drop the named line; nothing from the file was sent"
