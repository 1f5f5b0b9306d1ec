"""The query API every ring server serves over HTTP."""
