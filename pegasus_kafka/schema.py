"""Avro schemas (``schemas/*.avsc``) and the record codecs built on them.

The schema files are the single source of truth for every record on every
topic. They are parsed once, on first use. Records are plain Avro binary
(no registry framing); each topic carries exactly one record type, named in
the ``pegasus.schema`` Kafka header.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
from fastavro.schema import parse_schema

from pegasus_kafka.errors import MalformedRecord, SchemaError

DATA_TYPES = ("ANALOG", "LIMIT", "ACCUMULATOR", "STATUS")
ANALOG, LIMIT, ACCUMULATOR, STATUS = range(4)
ROLES = ("PRIMARY", "BACKUP")
PRIMARY, BACKUP = 0, 1

#: Quality bits, after IEC 60870-5-104 QDS.
Q_OVERFLOW, Q_MANUAL, Q_BLOCKED, Q_SUBSTITUTED, Q_NOT_TOPICAL, Q_INVALID = (
    0x01,
    0x02,
    0x10,
    0x20,
    0x40,
    0x80,
)

SCHEMA_HEADER = "pegasus.schema"
#: where a decoder's message names an object by its address
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
#: record type of each advanced application's exceptions topic
EXCEPTION_RECORDS = {"status": "pegasus.StatusException", "analog": "pegasus.AnalogException"}


def schema_dir() -> Path:
    """Where the .avsc files live: ``$PEGASUS_SCHEMAS`` or the repository's schemas/."""
    env = os.environ.get("PEGASUS_SCHEMAS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "schemas"


@cache
def schemas() -> dict[str, Any]:
    """Every schema, parsed once, by full name (``pegasus.ScanFrame``)."""
    folder = schema_dir()
    files = sorted(folder.glob("*.avsc"))
    if not files:
        raise SchemaError(f"no schemas found in {folder}")
    raw: dict[str, Any] = {}
    for path in files:
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise SchemaError(f"{path.name}: not valid JSON: {exc}") from None
        raw[f"{doc.get('namespace', '')}.{doc['name']}"] = doc
    named: dict[str, Any] = {}
    parsed: dict[str, Any] = {}
    pending = dict(raw)
    # Named types referenced across files parse first; retry until no progress.
    while pending:
        progressed = False
        for name, doc in list(pending.items()):
            try:
                parsed[name] = parse_schema(doc, named_schemas=named)
            except fastavro.schema.UnknownType:
                continue
            del pending[name]
            progressed = True
        if not progressed:
            raise SchemaError(f"unresolvable type references in {sorted(pending)}")
    return parsed


class RecordCodec:
    """Encodes and decodes one record type as schemaless Avro binary."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.schema = schemas()[name]
        # Read with timestamps as the integer milliseconds they are on the
        # wire: the RDS keeps them so, and no datetime is built per record.
        self._reader = _wire_types(self.schema)

    def encode(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        try:
            fastavro.schemaless_writer(buf, self.schema, record)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise MalformedRecord(self.name, f"cannot encode: {exc}") from None
        return buf.getvalue()

    def decode(self, data: bytes | None) -> dict[str, Any]:
        if not data:
            raise MalformedRecord(self.name, "empty value")
        buf = io.BytesIO(data)
        try:
            record = fastavro.schemaless_reader(buf, self._reader, None)
        except (
            EOFError,
            ValueError,
            IndexError,
            TypeError,
            KeyError,
            UnicodeDecodeError,
            OverflowError,
            MemoryError,
        ) as exc:
            # The reason lands in the store and its digest: no object's address.
            text = _ADDRESS.sub("", str(exc))
            raise MalformedRecord(self.name, f"{type(exc).__name__}: {text}") from None
        if buf.tell() != len(data):
            raise MalformedRecord(self.name, f"{len(data) - buf.tell()} trailing bytes")
        if not isinstance(record, dict):
            raise MalformedRecord(self.name, "not a record")
        return record


@cache
def codec(name: str) -> RecordCodec:
    """The codec for a record type, built once."""
    if name not in schemas():
        raise SchemaError(f"unknown record type {name}")
    return RecordCodec(name)


@dataclass(frozen=True)
class Frame:
    """A decoded scan frame, columns as numpy arrays (no copy of the Kafka bytes)."""

    site: str
    host: str
    role: int
    seq: int
    scan_time_ms: int
    scan_period_ms: int
    data_type: int
    chunk: int
    ikeys: np.ndarray  # int64[N]
    values: np.ndarray  # float64[N], or float64[N, 4] for LIMIT
    quality: np.ndarray  # uint8[N]
    changes: np.ndarray  # uint8[N] for STATUS, else empty

    @property
    def count(self) -> int:
        return int(self.ikeys.shape[0])

    def to_record(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "host": self.host,
            "role": ROLES[self.role],
            "seq": self.seq,
            "scan_time_ms": self.scan_time_ms,
            "scan_period_ms": self.scan_period_ms,
            "data_type": DATA_TYPES[self.data_type],
            "chunk": self.chunk,
            "count": self.count,
            "ikeys": np.ascontiguousarray(self.ikeys, dtype="<i8").tobytes(),
            "values": np.ascontiguousarray(self.values, dtype="<f8").tobytes(),
            "quality": np.ascontiguousarray(self.quality, dtype=np.uint8).tobytes(),
            "changes": np.ascontiguousarray(self.changes, dtype=np.uint8).tobytes(),
        }


def encode_frame(frame: Frame) -> bytes:
    return codec("pegasus.ScanFrame").encode(frame.to_record())


def _column(rec: dict[str, Any], name: str, dtype: str, expected: int) -> np.ndarray:
    data = rec[name]
    size = np.dtype(dtype).itemsize
    if len(data) != expected * size:
        raise MalformedRecord(
            "pegasus.ScanFrame", f"column {name} has {len(data)} bytes, expected {expected * size}"
        )
    return np.frombuffer(data, dtype=dtype)


def decode_frame(data: bytes | None) -> Frame:
    """Decode a scan frame; malformed bytes raise :class:`MalformedRecord`."""
    return frame_of(codec("pegasus.ScanFrame").decode(data))


def value_width(dtype: int) -> int:
    """Values a sample of data type ``dtype`` holds: a limit's four, else one."""
    return 4 if dtype == LIMIT else 1


def frame_of(rec: dict[str, Any]) -> Frame:
    """The frame a decoded ScanFrame record holds, its columns as numpy views
    of the record's bytes (bytes or memoryviews)."""
    n = rec["count"]
    if n < 0:
        raise MalformedRecord("pegasus.ScanFrame", f"negative count {n}")
    dtype = DATA_TYPES.index(rec["data_type"])
    width = value_width(dtype)
    values = _column(rec, "values", "<f8", n * width)
    changes = (
        _column(rec, "changes", "u1", n)
        if dtype == STATUS and rec["changes"]
        else np.zeros(n if dtype == STATUS else 0, dtype=np.uint8)
    )
    return Frame(
        site=rec["site"],
        host=rec["host"],
        role=ROLES.index(rec["role"]),
        seq=rec["seq"],
        scan_time_ms=rec["scan_time_ms"],
        scan_period_ms=rec["scan_period_ms"],
        data_type=dtype,
        chunk=rec["chunk"],
        ikeys=_column(rec, "ikeys", "<i8", n),
        values=values.reshape(n, 4) if width == 4 else values,
        quality=_column(rec, "quality", "u1", n),
        changes=changes,
    )


def _as_ms(value: Any) -> int:
    """fastavro turns timestamp-millis into datetimes; the RDS keeps integers."""
    if isinstance(value, int):
        return value
    return round(value.timestamp() * 1000)


def plain(value: Any) -> Any:
    """A decoded value with every timestamp as integer milliseconds, as on the wire.

    For records decoded with a plain Avro reader, which turns timestamp-millis
    into datetimes (:func:`decode_record` keeps the integers already).
    """
    if isinstance(value, dt.datetime):
        return _as_ms(value)
    if isinstance(value, dict):
        out = value
        for k, v in value.items():
            if isinstance(v, dt.datetime):
                out = dict(value) if out is value else out
                out[k] = _as_ms(v)
            elif isinstance(v, dict | list):
                out = dict(value) if out is value else out
                out[k] = plain(v)
        return out
    if isinstance(value, list) and any(isinstance(v, dt.datetime | dict | list) for v in value):
        return [plain(v) for v in value]
    return value


def _wire_types(schema: Any) -> Any:
    """A parsed schema without its logical types: the same bytes, read as the
    primitive values they encode."""
    if isinstance(schema, dict):
        return {k: _wire_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_wire_types(v) for v in schema]
    return schema


def decode_record(name: str, data: bytes | None) -> dict[str, Any]:
    """Decode a non-frame record, with timestamps kept as integer milliseconds."""
    return codec(name).decode(data)
