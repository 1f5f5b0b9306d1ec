"""Ask the RDS for current values through the smart client (any in-sync ring answers).

PEGASUS_KAFKA_BOOTSTRAP=127.0.0.1:9092 python examples/query_current.py 1099511627777
"""

import sys

from pegasus_kafka.client import PegasusClient
from pegasus_kafka.config import load_config

with PegasusClient(load_config()) as client:
    result = client.current([int(k) for k in sys.argv[1:]])
    for point in result.body["points"]:
        print(point["ikey"], point["type"], point["value"], point["time_ms"], "from", result.ring)
