"""Event files for `invoke`, read as API Gateway's HTTP API delivers events (payload format 2.0).

People write events by hand, or with `sam local generate-event`, with header names in capitals
and a query in `rawQueryString` alone. API Gateway never sends those: it lower-cases header names
(joining a repeated header with commas) and sends the query both raw and parsed. The handlers rely
on that, as deployed, so `invoke` does here what API Gateway does there. An event of another
payload format (1.0, a REST API's) is left as it is, for the handler to refuse.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import parse_qsl, urlencode

__all__ = ["as_delivered"]


def as_delivered(event: Any) -> Any:
    """The event as API Gateway would deliver it: a new event, or `event` itself when it is not
    an HTTP API event of payload format 2.0."""
    if not isinstance(event, dict) or event.get("version") != "2.0":
        return event
    delivered = copy.deepcopy(event)
    if isinstance(event.get("headers"), dict):
        delivered["headers"] = _joined((name.lower(), str(value)) for name, value in event["headers"].items())
    raw = event.get("rawQueryString")
    if "queryStringParameters" not in event and raw:
        delivered["queryStringParameters"] = _joined(parse_qsl(raw, keep_blank_values=True))
    elif "rawQueryString" not in event and isinstance(event.get("queryStringParameters"), dict):
        delivered["rawQueryString"] = urlencode(event["queryStringParameters"])
    return delivered


def _joined(pairs: Any) -> dict[str, str]:
    """Name -> value, a name given more than once having its values joined with commas, in order."""
    joined: dict[str, str] = {}
    for name, value in pairs:
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined
