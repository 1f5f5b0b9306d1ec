"""The Quix Streams side of ``pegasus bench ingest``: the same per-point
materialisation (each point's latest value and its full history, both hosts'
streams kept apart) written the way a Quix Streams user would write it.

It runs in a virtual environment of its own (Quix Streams pins an older
confluent-kafka), so it imports nothing from pegasus_kafka: frames are decoded
from ``schemas/`` with fastavro, as any downstream consumer would.

Each frame is split into one message per point by the deserializer. State is
Quix's RocksDB state, with its changelog topics (the default, which is what
makes it recoverable); the scan topic's partitions already follow the points,
so per-point keys within each message key's state need no repartitioning.

Prints one JSON line: samples materialised and the seconds from the first to
the last of them.

    python quix_app.py --bootstrap HOST:PORT --topic T --schemas DIR --seconds 60
"""

from __future__ import annotations

import argparse
import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
from quixstreams import Application, State
from quixstreams.models.serializers import Deserializer


def _frame_schema(folder: Path) -> Any:
    named: dict[str, Any] = {}
    for name in ("pegasus.DataType", "pegasus.HostRole", "pegasus.ScanFrame"):
        doc = json.loads((folder / f"{name}.avsc").read_text())
        schema = fastavro.parse_schema(doc, named_schemas=named)
    return schema


class FrameToPoints(Deserializer):
    """A scan frame as one message per point."""

    def __init__(self, schema: Any) -> None:
        super().__init__()
        self.schema = schema

    @property
    def split_values(self) -> bool:
        return True

    def __call__(self, value: bytes, ctx: Any) -> list[dict[str, Any]]:
        rec: Any = fastavro.schemaless_reader(io.BytesIO(value), self.schema, None)
        t = rec["scan_time_ms"]
        t = t if isinstance(t, int) else round(t.timestamp() * 1000)
        keys = np.frombuffer(rec["ikeys"], "<i8").tolist()
        values = np.frombuffer(rec["values"], "<f8")
        if rec["data_type"] == "LIMIT":
            vals: list[Any] = values.reshape(-1, 4).tolist()
        else:
            vals = values.tolist()
        quality = list(rec["quality"])
        return [
            {"ikey": k, "t": t, "v": v, "q": q} for k, v, q in zip(keys, vals, quality, strict=True)
        ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--schemas", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    topic = app.topic(
        args.topic, value_deserializer=FrameToPoints(_frame_schema(Path(args.schemas)))
    )
    sdf = app.dataframe(topic)
    seen = {"n": 0, "first": 0.0, "last": 0.0}

    def materialise(row: dict[str, Any], state: State) -> None:
        key = row["ikey"]
        state.set(f"latest:{key}", [row["t"], row["v"], row["q"]])
        state.set(f"h:{key}:{row['t']}", row["v"])
        now = time.perf_counter()
        if not seen["n"]:
            seen["first"] = now
        seen["n"] += 1
        seen["last"] = now

    sdf = sdf.update(materialise, stateful=True)
    budget = threading.Timer(args.seconds, app.stop)
    budget.start()
    app.run(timeout=5.0)  # stops once the topic has been idle for 5 s
    budget.cancel()
    print(json.dumps({"samples": seen["n"], "seconds": seen["last"] - seen["first"]}))


if __name__ == "__main__":
    main()
