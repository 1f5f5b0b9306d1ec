"""The published OpenAPI description of the ring server API (served at /openapi.json)."""

from __future__ import annotations

from typing import Any

from pegasus_kafka import __version__
from pegasus_kafka.api.exceptions import GROUPS, SORTS
from pegasus_kafka.config import AAS_APPS

_ERROR = {
    "description": "Error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error", "detail"],
                "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
            }
        }
    },
}
_ERRORS = {"400": _ERROR, "404": _ERROR, "503": _ERROR}


def _param(
    name: str, schema: dict[str, Any], required: bool, where: str = "query"
) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": schema}


_INT = {"type": "integer", "format": "int64"}
_LOCAL = _param("local", {"type": "string", "enum": ["1"]}, False)

_STEP_OPTIONAL = _param("step", {"type": "integer", "minimum": 1}, False)
_FILL = _param("fill", {"type": "string", "enum": ["previous", "linear"]}, False)
_FORMAT = _param("format", {"type": "string", "enum": ["json", "columns"]}, False)
_COLUMNS_OK = {
    "description": "Columns: light JSON, or with format=columns the compact binary encoding "
    "(zstd-compressed numpy columns, see pegasus_kafka/columnar.py)",
    "content": {"application/json": {}, "application/x-pegasus-columns": {}},
}

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "pegasus_kafka ring server",
        "version": __version__,
        "description": "Real-time data store of EMS/SCADA data. Times are milliseconds since "
        "the epoch (UTC). 'local=1' restricts a query to this server's own partitions.",
    },
    "paths": {
        "/v1/current": {
            "get": {
                "summary": "Current values of many points",
                "parameters": [
                    _param("ikeys", {"type": "string", "pattern": "^[0-9, ]+$"}, True),
                    _FORMAT,
                    _LOCAL,
                ],
                "responses": {
                    "200": {"description": "One entry per key, in request order"},
                    **_ERRORS,
                },
            },
            "post": {
                "summary": "Current values of many points (keys in the body)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["ikeys"],
                                "properties": {"ikeys": {"type": "array", "items": _INT}},
                            }
                        }
                    },
                },
                "parameters": [_FORMAT, _LOCAL],
                "responses": {
                    "200": {"description": "One entry per key, in request order"},
                    **_ERRORS,
                },
            },
        },
        "/v1/history": {
            "get": {
                "summary": "One point's samples: raw, or on a regular grid with per-step stats",
                "description": "Resolved, or one host's mirror stream with 'host'. With 'step' "
                "(ms): columns times, values (by the fill rule), min, max, avg, count.",
                "parameters": [
                    _param("ikey", _INT, True),
                    _param("from", _INT, True),
                    _param("to", _INT, True),
                    _param("host", {"type": "string"}, False),
                    _STEP_OPTIONAL,
                    _FILL,
                    _FORMAT,
                    _LOCAL,
                ],
                "responses": {"200": _COLUMNS_OK, **_ERRORS},
            }
        },
        "/v1/matrix": {
            "get": {
                "summary": "Many points on one regular grid, with per-step stats",
                "parameters": [
                    _param("ikeys", {"type": "string", "pattern": "^[0-9, ]+$"}, True),
                    _param("from", _INT, True),
                    _param("to", _INT, True),
                    _param("step", {"type": "integer", "minimum": 1}, True),
                    _FILL,
                    _FORMAT,
                ],
                "responses": {"200": _COLUMNS_OK, **_ERRORS},
            }
        },
        "/v1/events": {
            "get": {
                "summary": "System events by time range",
                "parameters": [
                    _param("from", _INT, True),
                    _param("to", _INT, True),
                    _param("limit", {"type": "integer", "minimum": 1, "maximum": 100000}, False),
                    _param("partition", {"type": "integer", "minimum": 0}, False),
                    _LOCAL,
                ],
                "responses": {"200": {"description": "Events in time order"}, **_ERRORS},
            }
        },
        "/v1/exceptions": {
            "get": {
                "summary": "Exceptions mined by an advanced application, as a report",
                "description": "Status exceptions carry the system events linked to them "
                "in 'events'. With group_by, counts per group (largest first, or smallest "
                "with sort=time); otherwise exceptions sorted by 'sort' ('-' first for "
                "descending; records without the field come last).",
                "parameters": [
                    _param("app", {"type": "string", "enum": list(AAS_APPS)}, True),
                    _param("from", _INT, True),
                    _param("to", _INT, True),
                    _param("ikey", _INT, False),
                    _param("substation", {"type": "string"}, False),
                    _param(
                        "kind",
                        {
                            "type": "string",
                            "enum": ["CHANGE", "MOMENTARY", "VIOLATION", "RETURN", "UNUSUAL"],
                        },
                        False,
                    ),
                    _param("group_by", {"type": "string", "enum": list(GROUPS)}, False),
                    _param(
                        "sort",
                        {"type": "string", "enum": [*SORTS, *(f"-{s}" for s in SORTS)]},
                        False,
                    ),
                    _param("limit", {"type": "integer", "minimum": 1, "maximum": 100000}, False),
                    _param("partition", {"type": "integer", "minimum": 0}, False),
                    _LOCAL,
                ],
                "responses": {"200": {"description": "Exceptions or groups"}, **_ERRORS},
            }
        },
        "/v1/meta/{ikey}": {
            "get": {
                "summary": "Every version of a point's metadata (its audit trail)",
                "parameters": [_param("ikey", _INT, True, "path"), _LOCAL],
                "responses": {"200": {"description": "Versions, oldest first"}, **_ERRORS},
            }
        },
        "/v1/points": {
            "get": {
                "summary": "Search points by their current metadata",
                "description": "name: substring; site, substation, type: exact; case ignored.",
                "parameters": [
                    _param("name", {"type": "string"}, False),
                    _param("site", {"type": "string"}, False),
                    _param("substation", {"type": "string"}, False),
                    _param(
                        "type",
                        {"type": "string", "enum": ["ANALOG", "LIMIT", "ACCUMULATOR", "STATUS"]},
                        False,
                    ),
                    _param("limit", {"type": "integer", "minimum": 1, "maximum": 100000}, False),
                    _param("partition", {"type": "integer", "minimum": 0}, False),
                    _LOCAL,
                ],
                "responses": {"200": {"description": "Current descriptions, by key"}, **_ERRORS},
            }
        },
        "/v1/health": {
            "get": {
                "summary": "Server and ring state, lag, owned partitions and digests",
                "responses": {"200": {"description": "Health"}},
            }
        },
        "/v1/snapshot": {
            "get": {
                "summary": "A consistent RocksDB checkpoint of one owned partition, as a tar",
                "description": "Used by a ring that syncs from a peer's snapshot. Headers "
                "x-pegasus-applied-offset and x-pegasus-digest give the store's state.",
                "parameters": [
                    _param("topic", {"type": "string"}, True),
                    _param("partition", {"type": "integer", "minimum": 0}, True),
                ],
                "responses": {
                    "200": {
                        "description": "The store directory as an uncompressed tar",
                        "content": {"application/x-tar": {}},
                    },
                    **_ERRORS,
                },
            }
        },
    },
}
