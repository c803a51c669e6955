"""DynamoDB's rule for items inside a running transaction, in front of the embedded database.

DynamoDB does not queue a transaction behind another: while a TransactWriteItems is writing
an item, another transaction that touches the item is cancelled (reason TransactionConflict),
and a plain write of it fails with TransactionConflictException. moto applies calls one at a
time and never refuses them; this WSGI middleware holds each transaction's items for a few
milliseconds while it runs, and refuses what DynamoDB would refuse. It also logs the keys every
write touched, so a test can tell which items were written by whom.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from typing import Any

_PREFIX = "DynamoDB_20120810."
# The key attributes of the template's tables: pk (and sk), or id for the idempotency table.
_KEYS = (("pk", "sk"), ("id",))
_WRITES = {"TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"}


def _key(table: str, attributes: dict[str, Any]) -> tuple[str, str]:
    names = next(names for names in _KEYS if names[0] in attributes)
    return table, json.dumps({name: attributes[name] for name in names if name in attributes}, sort_keys=True)


def written_keys(operation: str, request: dict[str, Any]) -> list[tuple[str, str]]:
    """(table, key) of every item a write request touches."""
    if operation == "TransactWriteItems":
        keys = []
        for entry in request["TransactItems"]:
            action = next(iter(entry.values()))
            keys.append(_key(action["TableName"], action.get("Key") or action["Item"]))
        return keys
    if operation == "BatchWriteItem":
        return [
            _key(table, next(iter(entry.values())).get("Key") or entry["PutRequest"]["Item"])
            for table, entries in request["RequestItems"].items()
            for entry in entries
        ]
    return [_key(request["TableName"], request.get("Key") or request["Item"])]


class ConflictRule:
    """WSGI middleware: DynamoDB's transaction conflicts, in front of the embedded database."""

    def __init__(self, app: Any, hold_seconds: float = 0.02):
        self._app = app
        self.hold_seconds = hold_seconds  # public: a test may hold items longer than its peers
        self._held: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self.log: list[tuple[str, list[tuple[str, str]]]] = []  # (operation, keys) of the writes let through
        self.refused: list[tuple[str, list[tuple[str, str]]]] = []  # and of the writes refused

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        operation = environ.get("HTTP_X_AMZ_TARGET", "").removeprefix(_PREFIX)
        if operation not in _WRITES:
            return self._app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        keys = written_keys(operation, json.loads(body))
        if operation == "TransactWriteItems":
            return self._transaction(environ, start_response, keys)
        with self._lock:
            conflict = any(self._held[key] for key in keys)
        if conflict:
            self.refused.append((operation, keys))
            return _error(start_response, "TransactionConflictException", "Transaction is ongoing for the item")
        response = self._app(environ, start_response)
        self.log.append((operation, keys))
        return response

    def _transaction(self, environ: dict[str, Any], start_response: Any, keys: list[tuple[str, str]]) -> list[bytes]:
        with self._lock:
            conflicts = [bool(self._held[key]) for key in keys]
            if not any(conflicts):
                self._held.update(keys)
        if any(conflicts):
            self.refused.append(("TransactWriteItems", keys))
            reasons = [
                {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
                if conflict
                else {"Code": "None"}
                for conflict in conflicts
            ]
            codes = ", ".join(reason["Code"] for reason in reasons)
            return _error(
                start_response,
                "TransactionCanceledException",
                f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
                CancellationReasons=reasons,
            )
        try:
            time.sleep(self.hold_seconds)  # the transaction is under way: its items are held
            response = self._app(environ, start_response)
            self.log.append(("TransactWriteItems", keys))
            return response
        finally:
            with self._lock:
                self._held.subtract(keys)


def _error(start_response: Any, code: str, message: str, **extra: Any) -> list[bytes]:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message, **extra}).encode()
    headers = [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(body)))]
    start_response("400 Bad Request", headers)
    return [body]
