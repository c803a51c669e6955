"""What a goal's change does to its conversions, done in the background from the table's stream.

- A goal deleted: its conversions are deleted, in pages (their stream records then take them out
  of the counts). The item by id goes first: a conversion half-deleted is still found by the
  goal index and finished on the next pass.
- A goal moved to another website: each conversion moves with it in one transaction (its item
  by id updated under a condition on its old website and goal, its listed item moved to the new
  website's partition); its visitor, session and event belonged to the old website and are
  cleared. Its stream record moves its count.
- A job longer than one invocation leaves a JOB# item that says where to go on; its stream
  record brings the next invocation.
- A conversion created while its goal was being deleted or moved is caught when its own stream
  record arrives: its goal is read, and the conversion deleted or moved like the others.

Every step is safe to repeat: deleting what is gone does nothing, and a move's condition
refuses a conversion that already moved.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from conversions_core.models import Conversion
from conversions_core.repository.dynamo import Cancelled, Table, from_dynamo, to_dynamo
from conversions_core.repository.keys import (
    CONVERSION_PREFIX,
    GOAL_INDEX,
    GOAL_PREFIX,
    JOB_PREFIX,
    Scope,
    conversion_from_item,
    conversion_key,
    entity_key,
    job_key,
    listed_item,
    listed_key,
)

PAGE = 100
PAGES_PER_INVOCATION = 10
DELETE, MOVE = "delete", "move"


class Cascade:
    def __init__(self, table: Table):
        self.table = table

    def apply(self, records: list[dict[str, Any]]) -> int:
        """Carry out what the batch's goal and job records ask; returns conversions changed."""
        changed, created = 0, []
        for record in records:
            stream = record["dynamodb"]
            partition = stream["Keys"]["pk"]["S"]
            old = from_dynamo(stream["OldImage"]) if "OldImage" in stream else None
            new = from_dynamo(stream["NewImage"]) if "NewImage" in stream else None
            if partition.startswith(GOAL_PREFIX) and old is not None:
                if new is None:
                    changed += self.run({"kind": DELETE, "goal_id": old["goal_id"]})
                elif new["website_id"] != old["website_id"]:
                    changed += self.run({"kind": MOVE, "goal_id": new["goal_id"], "website_id": new["website_id"]})
            elif partition.startswith(JOB_PREFIX) and new is not None:
                changed += self.run(new)
            elif partition.startswith(CONVERSION_PREFIX) and old is None and new is not None:
                created.append(conversion_from_item(new))
        return changed + self._reconcile(created)

    def run(self, job: dict[str, Any]) -> int:
        """Move or delete a goal's conversions, a few pages at a time; a JOB# item carries the
        rest over to the next invocation, and goes when nothing is left."""
        after = json.loads(job["after"]) if job.get("after") else None
        changed = 0
        for _ in range(PAGES_PER_INVOCATION):
            page, after = self._page(job["goal_id"], after if job["kind"] == MOVE else None)
            if job["kind"] == DELETE:
                changed += self._delete([conversion_from_item(i) for i in page])
            else:
                changed += sum(self._move(conversion_from_item(i), job["website_id"]) for i in page)
            if after is None:
                self.table.delete(job_key(job["goal_id"]))
                return changed
        rest = {**job, "after": json.dumps(after), "round": int(job.get("round", 0)) + 1}
        self.table.put({**job_key(job["goal_id"]), **rest})
        return changed

    def _page(self, goal_id: int, after: dict[str, Any] | None) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        scope = Scope("GOAL", goal_id)
        kwargs: dict[str, Any] = {"ExclusiveStartKey": after} if after else {}
        response = next(
            self.table.query(
                IndexName=GOAL_INDEX,
                KeyConditionExpression="goal_pk = :p",
                ExpressionAttributeValues=to_dynamo({":p": scope.partition}),
                Limit=PAGE,
                **kwargs,
            )
        )
        return [from_dynamo(i) for i in response["Items"]], response.get("LastEvaluatedKey")

    def _delete(self, conversions: list[Conversion]) -> int:
        self.table.batch_delete([conversion_key(c.id) for c in conversions])
        self.table.batch_delete([listed_key(c) for c in conversions])
        return len(conversions)

    def _move(self, conversion: Conversion, website_id: int) -> bool:
        if conversion.website_id == website_id:
            return False
        moved = conversion.model_copy(update={"website_id": website_id, "visitor_id": None})
        moved = moved.model_copy(update={"session_id": None, "event_id": None})
        update = {
            "Key": to_dynamo(conversion_key(conversion.id)),
            "UpdateExpression": "SET website_id = :w, version = version + :one REMOVE visitor_id, session_id, event_id",
            "ConditionExpression": "website_id = :old AND goal_id = :g",
            "ExpressionAttributeValues": to_dynamo(
                {":w": website_id, ":one": 1, ":old": conversion.website_id, ":g": conversion.goal_id}
            ),
        }
        try:
            self.table.transact(
                [
                    {"Update": update},
                    {"Put": {"Item": to_dynamo(listed_item(moved))}},
                    {"Delete": {"Key": to_dynamo(listed_key(conversion))}},
                ]
            )
        except Cancelled as cancelled:
            if cancelled.reasons[:1] == ["ConditionalCheckFailed"]:
                return False  # it moved already, or changed goal meanwhile
            raise
        return True

    def _reconcile(self, created: list[Conversion]) -> int:
        """Conversions created while their goal went away or moved: deleted or moved too."""
        if not created:
            return 0
        by_goal: dict[int, list[Conversion]] = defaultdict(list)
        for conversion in created:
            by_goal[conversion.goal_id].append(conversion)
        goals = {
            g["goal_id"]: g for g in self.table.batch_get([entity_key("GOAL", i) for i in by_goal], consistent=True)
        }
        changed = 0
        for goal_id, conversions in by_goal.items():
            goal = goals.get(goal_id)
            if goal is None:
                changed += self._delete(conversions)
            else:
                changed += sum(self._move(c, goal["website_id"]) for c in conversions)
        return changed
