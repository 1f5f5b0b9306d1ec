"""Advanced application servers: exception mining per ring, published to Kafka."""

from pegasus_kafka.aas.analog import AnalogMiner
from pegasus_kafka.aas.runner import AppRunner
from pegasus_kafka.aas.status import StatusMiner

__all__ = ["AnalogMiner", "AppRunner", "StatusMiner"]
