"""Users, API keys, websites, goals, and the visitors, sessions and events conversions name.

These change rarely (imports, and later the goals API), so requests read them eventually
consistent: half the price of a strongly consistent read.
"""

from __future__ import annotations

from typing import Any

from conversions_core.errors import not_found
from conversions_core.repository.dynamo import Table
from conversions_core.repository.items import REFERENCE_KINDS, User
from conversions_core.repository.keys import api_key_key, entity_key


class Accounts:
    def __init__(self, table: Table):
        self.table = table

    def user_by_key_hash(self, key_hash: str, consistent: bool = False) -> User | None:
        """The user owning the API key with this SHA-256 hash, or None. One read: the key item
        carries the user's status and rate limit (written with the user by the import)."""
        item = self.table.get(api_key_key(key_hash), consistent=consistent)
        if item is None:
            return None
        return User(item["user_id"], item["status"], item.get("rate_limit_per_minute"), key_hash)

    def entity(self, kind: str, entity_id: int, consistent: bool = False) -> dict[str, Any] | None:
        """A user, website, goal, visitor, session or event item by id, or None."""
        return self.table.get(entity_key(kind, entity_id), consistent=consistent)

    def entities(
        self, wanted: list[tuple[str, int]], consistent: bool = False
    ) -> dict[tuple[str, int], dict[str, Any]]:
        """The items that exist of (kind, id) pairs, by pair: BatchGetItem, 100 keys a call."""
        pairs = {entity_key(kind, entity_id)["pk"]: (kind, entity_id) for kind, entity_id in wanted}
        items = self.table.batch_get([entity_key(*pair) for pair in wanted], consistent=consistent)
        return {pairs[item["pk"]]: item for item in items}

    def owned(self, user: User, kind: str, entity_id: int) -> dict[str, Any] | None:
        """The user's website or goal, or None for anyone else's (or a missing one)."""
        item = self.entity(kind, entity_id)
        return item if item is not None and item.get("user_id") == user.user_id else None

    def goal_with_references(
        self, user: User, goal_id: int, refs: dict[str, int | None]
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, Any] | None]]:
        """The user's goal, its website and the referenced visitor, session and event (by field,
        None when missing): one GetItem, then one BatchGetItem."""
        goal = self.owned(user, "GOAL", goal_id)
        if goal is None:
            raise not_found("Goal", "goal_id")
        wanted = {name: entity_key(REFERENCE_KINDS[name], value) for name, value in refs.items() if value is not None}
        website_key = entity_key("WEBSITE", goal["website_id"])
        items = {item["pk"]: item for item in self.table.batch_get([website_key, *wanted.values()])}
        website = items.get(website_key["pk"])
        if website is None:
            raise not_found("Goal", "goal_id")
        return goal, website, {name: items.get(key["pk"]) for name, key in wanted.items()}
