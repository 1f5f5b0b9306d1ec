"""A downstream consumer: read scan frames from Kafka and turn them into numpy columns.

It needs only schemas/ (through pegasus_kafka.schema) and a consumer group of
its own. Offsets are committed after each message is handled: at-least-once.

    PEGASUS_KAFKA_BOOTSTRAP=127.0.0.1:9092 python examples/consume_frames.py --max 10
"""

import argparse

from pegasus_kafka.config import load_config
from pegasus_kafka.kafka import clients
from pegasus_kafka.schema import DATA_TYPES, ROLES, decode_frame

parser = argparse.ArgumentParser()
parser.add_argument("--group", default="example-frames")
parser.add_argument("--max", type=int, default=0, help="stop after this many frames (0: never)")
args = parser.parse_args()

cfg = load_config()
consumer = clients.consumer(cfg, args.group)
consumer.subscribe([cfg.scan_topic])
seen = 0
try:
    while not args.max or seen < args.max:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        frame = decode_frame(msg.value())
        print(
            f"{frame.site}/{frame.host} {ROLES[frame.role]} scan {frame.seq} "
            f"{DATA_TYPES[frame.data_type]}: {frame.count} points, "
            f"first {frame.ikeys[:1].tolist()} = {frame.values[:1].tolist()}"
        )
        consumer.commit(message=msg, asynchronous=False)
        seen += 1
finally:
    consumer.close()
