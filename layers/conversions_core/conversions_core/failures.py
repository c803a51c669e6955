"""The counting function's failures queue: where a stream record it cannot read is set aside,
as itself, so that its batch goes on and the record can be looked at and replayed."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3

SQS_MESSAGE_BYTES = 256 * 1024


class FailuresQueue:
    """SQS messages of `{"reason", "record"}`; a record too large for a message goes as its keys
    and sequence number (the whole record is in the function's log)."""

    def __init__(self, queue: str | None, client: Any = None):
        self.queue = queue  # a queue URL, or locally a queue's name
        self._client = client

    @classmethod
    def from_env(cls) -> FailuresQueue:
        return cls(os.environ.get("FAILURES_QUEUE_URL") or None)

    def park(self, entries: list[tuple[dict[str, Any], str]]) -> None:
        """Send (record, reason) pairs; raises when the queue cannot take them (the stream then
        delivers the record again, so nothing is lost)."""
        if not entries:
            return
        if self.queue is None:
            raise RuntimeError("no failures queue is configured (FAILURES_QUEUE_URL)")
        client = self._client = self._client or boto3.client("sqs")
        url = self.queue if "://" in self.queue else client.get_queue_url(QueueName=self.queue)["QueueUrl"]
        for record, reason in entries:  # one at a time: poison is rare, and a batch has one size limit
            client.send_message(QueueUrl=url, MessageBody=_message(record, reason))


def _message(record: dict[str, Any], reason: str) -> str:
    body = json.dumps({"reason": reason, "record": record}, default=str)
    if len(body.encode()) <= SQS_MESSAGE_BYTES:
        return body
    stream = record.get("dynamodb") or {}
    cut = {"eventID": record.get("eventID"), "Keys": stream.get("Keys"), "SequenceNumber": stream.get("SequenceNumber")}
    return json.dumps({"reason": reason, "record": cut, "truncated": True}, default=str)
