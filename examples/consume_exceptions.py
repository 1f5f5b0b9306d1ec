"""A downstream consumer of the exceptions every ring's applications publish.

Each exception arrives once even though every ring publishes it: the stream
keeps the first copy of each id. Offsets are committed after each batch is
handled: at least once.

    PEGASUS_KAFKA_BOOTSTRAP=127.0.0.1:9092 python examples/consume_exceptions.py --max 10
"""

import argparse
import json

from pegasus_kafka.config import load_config
from pegasus_kafka.downstream import ExceptionStream

parser = argparse.ArgumentParser()
parser.add_argument("--app", choices=["status", "analog"], default="status")
parser.add_argument("--group", default="example-exceptions")
parser.add_argument("--max", type=int, default=0, help="stop after this many (0: never)")
args = parser.parse_args()

stream = ExceptionStream(load_config(), args.group, args.app)
seen = 0
try:
    while not args.max or seen < args.max:
        for rec in stream.poll(timeout=1.0):
            if rec["kind"] == "LINK":
                event = rec["event"]
                print(f"  {rec['exception_id'][:8]} <- {event['kind']} {event['text']}")
            else:
                what = {k: rec.get(k) for k in ("kind", "ikey", "name", "time_ms")}
                print(f"{rec['id'][:8]} {json.dumps(what)}")
            seen += 1
        stream.commit()
finally:
    stream.close()
