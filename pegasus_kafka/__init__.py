"""pegasus_kafka: a redundant real-time data store for EMS/SCADA data on Kafka and RocksDB.

The public API: configuration, the smart client, the record codecs and the
error tree. Everything else is reached through the ``pegasus`` command.
"""

__version__ = "0.1.0"

from pegasus_kafka.client import PegasusClient, QueryResult
from pegasus_kafka.config import Config, load_config
from pegasus_kafka.errors import PegasusError
from pegasus_kafka.schema import Frame, decode_frame, decode_record, encode_frame

__all__ = [
    "Config",
    "Frame",
    "PegasusClient",
    "PegasusError",
    "QueryResult",
    "__version__",
    "decode_frame",
    "decode_record",
    "encode_frame",
    "load_config",
]
