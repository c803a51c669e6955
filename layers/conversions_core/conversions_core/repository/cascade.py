"""What a goal's change does to its conversions, done in the background from the table's stream.

A job brings a goal's conversions in line with the goal as it is when the job runs, read then
(strongly consistent), never with what the stream record that started it said:

- the goal gone: its conversions are deleted (their stream records then take them out of the
  counts);
- the goal on a website: each conversion on another website moves there (its visitor, session
  and event belonged to the old website and are cleared); its stream record moves its count.

So a goal moved twice, or moved then deleted, while a job is under way, ends with every
conversion where the goal is, whichever job runs last. A job walks the goal index a page at a
time; each page's conversions are read by id (the index may lag), and each is changed in a
transaction guarded by its version, so that a conversion changed meanwhile (moved to another
goal by a request) is read again, never changed on a stale picture. A job longer than one
invocation leaves a JOB# item holding where it stopped; its stream record brings the next
invocation, which goes on from there.

A conversion created, or moved to a goal, while that goal was going is caught when its own
stream record arrives: its goal is read, and the conversion deleted or moved like the others.
A conversion DynamoDB's TTL deleted (retention) has its listed item deleted. Every step is safe
to repeat.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from conversions_core.repository.dynamo import Cancelled, Table, from_dynamo, to_dynamo
from conversions_core.repository.items import REFERENCE_FIELDS, StoredConversion, StoredGoal
from conversions_core.repository.keys import (
    GOAL_INDEX,
    Scope,
    conversion_key,
    entity_key,
    job_key,
    listed_item,
    listed_key,
)
from conversions_core.repository.stream import CONVERSION, GOAL, JOB, StreamRecord

PAGE = 100
PAGES_PER_INVOCATION = 10
_ATTEMPTS = 3  # reads and writes of one conversion that another request keeps changing


class Cascade:
    def __init__(self, table: Table):
        self.table = table

    def apply(self, records: list[StreamRecord]) -> int:
        """Carry out what the batch's goal and job records ask; returns conversions changed."""
        changed, arrived, expired = 0, [], {}
        for record in records:
            if record.kind == CONVERSION and record.expired:
                expired[record.old.id] = listed_key(record.old)  # DynamoDB's TTL took the item by id
            elif record.kind == GOAL and record.old is not None:
                if record.new is None or record.new.website_id != record.old.website_id:
                    changed += self.follow(record.old.goal_id)
            elif record.kind == JOB and record.new is not None:
                job = record.new
                after = json.loads(job["after"]) if job.get("after") else None
                changed += self.follow(job["goal_id"], after, int(job.get("round", 0)))
            elif record.kind == CONVERSION and record.new is not None:
                if record.old is None or record.old.goal_id != record.new.goal_id:
                    arrived.append(record.new)
        self.table.batch_delete(list(expired.values()))  # deleting a missing item is fine: a retry does no harm
        return changed + self._reconcile(arrived)

    def follow(self, goal_id: int, after: dict[str, Any] | None = None, rounds: int = 0) -> int:
        """Bring a goal's conversions in line with the goal, from `after` in its index, a few
        pages at a time; a JOB# item carries the rest over to the next invocation."""
        changed = 0
        for _ in range(PAGES_PER_INVOCATION):
            goal = self._goal(goal_id)  # again each page: the goal may move or go meanwhile
            page, after = self._page(goal_id, after)
            changed += sum(self._settle(conversion, goal_id, goal) for conversion in self._by_id(page))
            if after is None:
                self.table.delete(job_key(goal_id))
                return changed
        self.table.put({**job_key(goal_id), "goal_id": goal_id, "after": json.dumps(after), "round": rounds + 1})
        return changed

    def _goal(self, goal_id: int) -> StoredGoal | None:
        item = self.table.get(entity_key("GOAL", goal_id), consistent=True)
        return StoredGoal.from_item(item) if item else None

    def _page(self, goal_id: int, after: dict[str, Any] | None) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        kwargs: dict[str, Any] = {"ExclusiveStartKey": after} if after else {}
        response = next(
            self.table.query(
                IndexName=GOAL_INDEX,
                KeyConditionExpression="goal_pk = :p",
                ExpressionAttributeValues=to_dynamo({":p": Scope("GOAL", goal_id).partition}),
                Limit=PAGE,
                **kwargs,
            )
        )
        return [from_dynamo(i) for i in response["Items"]], response.get("LastEvaluatedKey")

    def _by_id(self, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The page's conversions as stored by id (the index may lag them); a listed item whose
        conversion is gone stands for itself: an orphan (a deletion stopped half-way)."""
        stored = self.table.batch_get([conversion_key(item["id"]) for item in listed], consistent=True)
        by_id = {item["id"]: item for item in stored}
        return [by_id.get(item["id"], item) for item in listed]

    def _settle(self, item: dict[str, Any] | None, goal_id: int, goal: StoredGoal | None) -> bool:
        """Delete or move one conversion of the goal (its item by id) as the goal is now; whether
        it changed. Read again when a request changed it meanwhile."""
        if item is not None and item["pk"] != conversion_key(item["id"])["pk"]:
            self.table.delete(listed_key(StoredConversion.from_item(item)))  # an orphan listed item
            return False
        for _ in range(_ATTEMPTS):
            if item is None:
                return False
            conversion = StoredConversion.from_item(item)
            if conversion.goal_id != goal_id or (goal is not None and conversion.website_id == goal.website_id):
                return False  # moved to another goal by a request, or already where its goal is
            try:
                if goal is None:
                    self._delete(conversion, item.get("version"))
                else:
                    self._move(conversion, item.get("version"), goal.website_id)
                return True
            except Cancelled as cancelled:
                if "ConditionalCheckFailed" not in cancelled.reasons:
                    raise
            item = self.table.get(conversion_key(conversion.id), consistent=True)
        return False

    def _delete(self, conversion: StoredConversion, version: int | None) -> None:
        self.table.retry_on_conflict(
            lambda: self.table.transact(
                [
                    {"Delete": {"Key": to_dynamo(conversion_key(conversion.id)), **_same_version(version)}},
                    {"Delete": {"Key": to_dynamo(listed_key(conversion))}},
                ]
            )
        )

    def _move(self, conversion: StoredConversion, version: int | None, website_id: int) -> None:
        moved = conversion.but(website_id=website_id, **dict.fromkeys(REFERENCE_FIELDS))
        update = {
            "Key": to_dynamo(conversion_key(conversion.id)),
            "UpdateExpression": "SET website_id = :w, version = :next REMOVE visitor_id, session_id, event_id",
            **_same_version(version, {":w": website_id, ":next": (version or 0) + 1}),
        }
        self.table.retry_on_conflict(
            lambda: self.table.transact(
                [
                    {"Update": update},
                    {"Put": {"Item": to_dynamo(listed_item(moved))}},
                    {"Delete": {"Key": to_dynamo(listed_key(conversion))}},
                ]
            )
        )

    def _reconcile(self, arrived: list[StoredConversion]) -> int:
        """Conversions created on (or moved to) a goal that went away or moved meanwhile."""
        if not arrived:
            return 0
        by_goal: dict[int, list[StoredConversion]] = defaultdict(list)
        for conversion in arrived:
            by_goal[conversion.goal_id].append(conversion)
        keys = [entity_key("GOAL", goal_id) for goal_id in by_goal]
        goals = {item["goal_id"]: StoredGoal.from_item(item) for item in self.table.batch_get(keys, consistent=True)}
        changed = 0
        for goal_id, conversions in by_goal.items():
            goal = goals.get(goal_id)
            if goal is not None and all(c.website_id == goal.website_id for c in conversions):
                continue
            stored = self.table.batch_get([conversion_key(c.id) for c in conversions], consistent=True)
            changed += sum(self._settle(item, goal_id, goal) for item in stored)
        return changed


def _same_version(version: int | None, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The condition that the item by id is as read (an item of an old version may have none)."""
    if version is None:
        guard: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(version)"}
        return {**guard, "ExpressionAttributeValues": to_dynamo(values)} if values else guard
    return {
        "ConditionExpression": "version = :v",
        "ExpressionAttributeValues": to_dynamo({**(values or {}), ":v": version}),
    }
