"""Reading a batch of records at once: the compiled check of :mod:`pegasus_kafka._avro`.

A ring server needs only a few fields of each record it applies. Here a
record type of ``schemas/`` becomes a program for the compiled check, which
goes through a whole batch in one call and builds no record: for each value,
whether it is a record of the type, and where each wanted field lies in it.

The check accepts only what the full decoder (:meth:`RecordCodec.decode`)
reads, with the same field values; it may refuse more. So each value it
refuses is decoded in full, and the decoder's verdict stands: what a batch
read returns is what decoding each record would.
"""

from __future__ import annotations

import struct
from functools import cache
from typing import Any

import numpy as np

import pegasus_kafka._avro as _avro
from pegasus_kafka.errors import MalformedRecord, SchemaError
from pegasus_kafka.schema import Frame, codec, frame_of, schemas

_PRIMITIVE_OPS = {
    "long": _avro.OP_LONG,
    "int": _avro.OP_INT,
    "float": _avro.OP_FLOAT,
    "double": _avro.OP_DOUBLE,
    "boolean": _avro.OP_BOOLEAN,
    "string": _avro.OP_STRING,
    "bytes": _avro.OP_BYTES,
    "null": _avro.OP_NULL,
}
#: fields whose value the check reads
_INTEGER_OPS = (_avro.OP_LONG, _avro.OP_INT, _avro.OP_ENUM, _avro.OP_BOOLEAN)
#: fields the check finds: where their content starts and ends (two slots)
_SPAN_OPS = (_avro.OP_STRING, _avro.OP_BYTES, _avro.OP_FIXED)

_FRAME = "pegasus.ScanFrame"
_FRAME_FIELDS = tuple(f["name"] for f in schemas()[_FRAME]["fields"])


def _field_type(schema: Any) -> Any:
    """A field's type, named types looked up and logical types dropped."""
    if isinstance(schema, str):
        if schema in _PRIMITIVE_OPS:
            return schema
        if schema not in schemas():
            raise SchemaError(f"no compiled check for type {schema}")
        return schemas()[schema]
    if isinstance(schema, dict) and schema.get("type") in _PRIMITIVE_OPS:
        return schema["type"]
    return schema


def _step(record: str, field: dict[str, Any]) -> tuple[int, int]:
    """(op, argument) of one field of a flat record."""
    kind = _field_type(field["type"])
    if isinstance(kind, str):
        return _PRIMITIVE_OPS[kind], 0
    if isinstance(kind, dict) and kind.get("type") == "enum":
        return _avro.OP_ENUM, len(kind["symbols"])
    if isinstance(kind, dict) and kind.get("type") == "fixed":
        return _avro.OP_FIXED, int(kind["size"])
    raise SchemaError(f"{record}.{field['name']}: no compiled check for its type")


@cache
def _program(record: str, wanted: tuple[str, ...]) -> tuple[bytes, dict[str, int], int]:
    """Record type ``record`` as a program for :func:`pegasus_kafka._avro.scan`,
    the slot of each wanted field, and the number of slots. Only flat records
    compile: fields of primitive, enum and fixed types."""
    fields = schemas()[record]["fields"]
    steps = {f["name"]: _step(record, f) for f in fields}
    missing = [name for name in wanted if name not in steps]
    if missing:
        raise SchemaError(f"{record} has no fields {missing}")
    slots: dict[str, int] = {}
    count = 0
    for name in wanted:
        op = steps[name][0]
        if op not in _INTEGER_OPS + _SPAN_OPS:
            raise SchemaError(f"{record}.{name}: the check reads integers, strings and bytes only")
        slots[name] = count
        count += 2 if op in _SPAN_OPS else 1
    program = b"".join(
        struct.pack("<BBI", op, slots.get(name, _avro.NO_SLOT), arg)
        for name, (op, arg) in steps.items()
    )
    return program, slots, count


def _scan(
    record: str, values: list[bytes | None], wanted: tuple[str, ...]
) -> tuple[bytes, list[list[int]], dict[str, int]]:
    """The check's status of each value (0: a record), its slots as lists, one per
    slot, and each wanted field's slot."""
    program, slots, count = _program(record, wanted)
    status, raw = _avro.scan(program, count, values)
    columns = np.frombuffer(raw, np.int64).reshape(len(values), count).T.tolist()
    return status, columns, slots


def _as_int(record: str, name: str, value: Any) -> int:
    """A decoded integer field as the check reads it: an enum as its index."""
    if isinstance(value, str):
        field = next(f for f in schemas()[record]["fields"] if f["name"] == name)
        return int(_field_type(field["type"])["symbols"].index(value))
    return int(value)


def int_fields(
    record: str, values: list[bytes | None], names: tuple[str, ...]
) -> tuple[list[str | None], list[list[int]]]:
    """Whether each of ``values`` is a record of type ``record``, and its integer
    fields ``names`` (long, int, enum index or boolean), one list per field.

    The first list holds None for each record, and why it is not one for each
    other value, as the decoder says. Values that are not records get zeros.
    """
    if _program(record, names)[2] != len(names):  # a string or bytes field takes two slots
        raise SchemaError(f"{record}: {', '.join(names)} are not all integer fields")
    status, columns, _ = _scan(record, values, names)
    problems: list[str | None] = [None] * len(values)
    for i, code in enumerate(status):
        if code == 0:
            continue
        try:
            decoded = codec(record).decode(values[i])
        except MalformedRecord as exc:
            problems[i] = str(exc)
            continue
        for column, name in zip(columns, names, strict=True):
            column[i] = _as_int(record, name, decoded[name])
    return problems, columns


@cache
def _frame_layout() -> tuple[list[str], list[str], dict[str, list[str]]]:
    """The ScanFrame's string fields, bytes fields, and enum fields' symbols."""
    strings, spans, symbols = [], [], {}
    for field in schemas()[_FRAME]["fields"]:
        op = _step(_FRAME, field)[0]
        if op == _avro.OP_STRING:
            strings.append(field["name"])
        elif op in _SPAN_OPS:
            spans.append(field["name"])
        elif op == _avro.OP_ENUM:
            symbols[field["name"]] = _field_type(field["type"])["symbols"]
    return strings, spans, symbols


def decode_frames(values: list[bytes | None]) -> list[Frame | MalformedRecord]:
    """Each value's scan frame, or why it is not one, as
    :func:`~pegasus_kafka.schema.decode_frame` gives it; the columns are views
    of the value's bytes."""
    status, columns, slots = _scan(_FRAME, values, _FRAME_FIELDS)
    strings, spans, symbols = _frame_layout()
    out: list[Frame | MalformedRecord] = []
    for value, code, row in zip(values, status, zip(*columns, strict=True), strict=True):
        try:
            if code != 0:
                out.append(frame_of(codec(_FRAME).decode(value)))
                continue
            view = memoryview(value or b"")
            rec: dict[str, Any] = {name: row[slot] for name, slot in slots.items()}
            for name in strings:
                rec[name] = str(view[row[slots[name]] : row[slots[name] + 1]], "utf-8")
            for name in spans:
                rec[name] = view[row[slots[name]] : row[slots[name] + 1]]
            for name, names in symbols.items():
                rec[name] = names[rec[name]]
            out.append(frame_of(rec))
        except MalformedRecord as exc:
            out.append(exc)
    return out
