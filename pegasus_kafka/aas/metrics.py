"""Prometheus metrics of the advanced applications."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RECORDS = Counter("pegasus_aas_records", "Records mined", ["ring", "app", "topic"])
EXCEPTIONS = Counter("pegasus_aas_exceptions", "Exceptions published", ["ring", "app", "kind"])
MALFORMED = Counter("pegasus_aas_malformed", "Records skipped as malformed", ["ring", "app"])
LAG = Gauge("pegasus_aas_lag_records", "Scan records not yet mined", ["ring", "app", "partition"])
