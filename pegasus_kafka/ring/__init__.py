"""The ring: materialisation of the RDS into RocksDB, one store per (topic, partition)."""
