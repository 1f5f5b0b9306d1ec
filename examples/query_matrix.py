"""Several points over a period on a regular grid, as numpy arrays (any in-sync ring answers).

PEGASUS_KAFKA_BOOTSTRAP=127.0.0.1:9092 python examples/query_matrix.py FROM_MS TO_MS STEP_MS IKEY...
"""

import sys

from pegasus_kafka.client import PegasusClient
from pegasus_kafka.config import load_config

t0, t1, step, *keys = (int(a) for a in sys.argv[1:])
with PegasusClient(load_config()) as client:
    m = client.matrix(keys, t0, t1, step)
print(m["times"].shape, m["values"].shape, "avg per step:", m["avg"].round(2), "from", m.ring)
