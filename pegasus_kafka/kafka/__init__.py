"""Kafka I/O: client configuration, topics, the local development broker."""
