"""pegasus_kafka: a redundant real-time data store for EMS/SCADA data on Kafka and RocksDB."""

__version__ = "0.1.0"
