"""The smart client: balances queries across in-sync rings and fails over."""

from pegasus_kafka.client.client import Columns, PegasusClient, QueryResult

__all__ = ["Columns", "PegasusClient", "QueryResult"]
