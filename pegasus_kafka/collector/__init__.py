"""Collectors: read an EMS host's scans from a source and write them to Kafka."""
