"""Seed files: validated as a whole, then written through the repository."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator

from conversions_core.auth import hash_api_key
from conversions_core.errors import InvalidInputError
from conversions_core.goals import NAME_LENGTH, Key, checked_goal
from conversions_core.money import CurrencyCode, ValueText, resolve
from conversions_core.repository import Repository, ids
from conversions_core.repository.items import REFERENCE_KINDS, StoredConversion
from conversions_core.rules import reference_violations
from conversions_core.values import DATETIME_FORMAT, PositiveId


class SeedError(Exception):
    """A seed that breaks the contract's rules; nothing was written."""

    def __init__(self, problems: list[str]):
        super().__init__(f"{len(problems)} problem(s) in the seed:\n" + "\n".join(f"- {p}" for p in problems))
        self.problems = problems


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeedUser(_Record):
    user_id: PositiveId
    api_key: str = Field(min_length=1, max_length=512)
    status: Literal["active", "disabled"] = "active"
    rate_limit_per_minute: Annotated[int, Strict(), Field(ge=0)] | None = None


class SeedWebsite(_Record):
    website_id: PositiveId
    user_id: PositiveId
    host: str = ""
    tracking_mode: Literal["normal", "lightweight"] = "normal"


class SeedGoal(_Record):
    """A goal; the fields beyond the first seed format's default as the goals API does."""

    goal_id: PositiveId
    website_id: PositiveId
    type: Literal["pageview", "custom", "scroll"] = "custom"
    name: str = Field(default="", max_length=NAME_LENGTH)
    key: Key | None = None
    path: str | None = None
    scroll_percentage: Annotated[int, Strict(), Field(ge=1, le=100)] | None = None
    is_enabled: Annotated[bool, Strict()] = True
    value: ValueText = None
    currency: CurrencyCode = None
    datetime: str | None = None
    last_datetime: str | None = None

    @field_validator("datetime", "last_datetime")
    @classmethod
    def _seconds_in_utc(cls, value: str | None) -> str | None:
        if value is not None:
            datetime.strptime(value, DATETIME_FORMAT)
        return value


class SeedVisitor(_Record):
    visitor_id: PositiveId
    website_id: PositiveId


class SeedSession(_Record):
    session_id: PositiveId
    website_id: PositiveId
    visitor_id: PositiveId | None = None


class SeedEvent(_Record):
    event_id: PositiveId
    website_id: PositiveId
    session_id: PositiveId | None = None


class SeedConversion(_Record):
    id: PositiveId
    goal_id: PositiveId
    visitor_id: PositiveId | None = None
    session_id: PositiveId | None = None
    event_id: PositiveId | None = None
    datetime: str
    value: ValueText = None
    currency: CurrencyCode = None

    @field_validator("datetime")
    @classmethod
    def _seconds_in_utc(cls, value: str) -> str:
        datetime.strptime(value, DATETIME_FORMAT)
        return value


class Seed(_Record):
    users: list[SeedUser] = []
    websites: list[SeedWebsite] = []
    goals: list[SeedGoal] = []
    visitors: list[SeedVisitor] = []
    sessions: list[SeedSession] = []
    events: list[SeedEvent] = []
    conversions: list[SeedConversion] = []


# What a stored visitor, session or event keeps through an import: the conversions naming it
# were checked against these.
_KEPT_FIELDS = {
    "VISITOR": ("website_id",),
    "SESSION": ("website_id", "visitor_id"),
    "EVENT": ("website_id", "session_id"),
}

_KINDS = {
    "users": ("USER", "user_id"),
    "websites": ("WEBSITE", "website_id"),
    "goals": ("GOAL", "goal_id"),
    "visitors": ("VISITOR", "visitor_id"),
    "sessions": ("SESSION", "session_id"),
    "events": ("EVENT", "event_id"),
}


class _Checker:
    """Collects every problem of a seed, resolving references in the seed first, then the table."""

    def __init__(self, seed: Seed, repository: Repository, now: datetime):
        self.seed = seed
        self.repository = repository
        self.now = now
        self.problems: list[str] = []
        self.known: dict[str, dict[int, dict[str, Any]]] = {}
        self.replaced_keys: list[str] = []  # hashes of the keys of users imported again with another
        self.stored: dict[tuple[str, int], dict[str, Any]] = {}  # the seed's websites and goals already stored

    def run(self) -> list[StoredConversion]:
        for section, (kind, id_field) in _KINDS.items():
            self.known[kind] = {}
            for index, record in enumerate(getattr(self.seed, section)):
                record_id = getattr(record, id_field)
                if record_id in self.known[kind]:
                    self.problems.append(f"{section}[{index}]: {id_field} {record_id} appears twice")
                self.known[kind][record_id] = record.model_dump()
        self._check_keys()
        self._check_owners()
        self._check_stored_owners()
        self._check_stored_tracking()
        self._check_goals()
        return self._check_conversions()

    def lookup(self, kind: str, entity_id: int | None) -> dict[str, Any] | None:
        if entity_id is None:
            return None
        if entity_id not in self.known[kind]:
            found = self.repository.accounts.entity(kind, entity_id, consistent=True)
            self.known[kind][entity_id] = found  # type: ignore[assignment]
        return self.known[kind][entity_id]

    def _check_keys(self) -> None:
        seen: dict[str, int] = {}
        for index, user in enumerate(self.seed.users):
            if user.api_key in seen:
                self.problems.append(f"users[{index}]: api_key is also the key of user {seen[user.api_key]}")
            seen[user.api_key] = user.user_id
            key_hash = hash_api_key(user.api_key)
            holder = self.repository.accounts.user_by_key_hash(key_hash, consistent=True)
            if holder is not None and holder.user_id != user.user_id:
                self.problems.append(f"users[{index}]: api_key is the key of user {holder.user_id}")
            stored = self.repository.accounts.entity("USER", user.user_id, consistent=True)
            if stored is not None and stored.get("api_key_hash") not in (None, key_hash):
                self.replaced_keys.append(stored["api_key_hash"])  # the old key stops working

    def _check_goals(self) -> None:
        """Each goal made whole as the goals API would (a path's /, a generated key, a name),
        following its type's rules, its key free on its website."""
        taken: dict[tuple[int, str], int] = {}
        now = self.now.strftime(DATETIME_FORMAT)
        first_converted: dict[int, str] = {}  # each goal's earliest conversion in the seed
        for row in self.seed.conversions:
            first_converted[row.goal_id] = min(row.datetime, first_converted.get(row.goal_id, row.datetime))
        for index, goal in enumerate(self.seed.goals):
            fields = self.known["GOAL"][goal.goal_id]
            fields["name"] = fields["name"] or f"Goal {goal.goal_id}"
            fields["datetime"] = fields["datetime"] or self._created(
                goal.goal_id, now, first_converted.get(goal.goal_id)
            )
            for name in ("datetime", "last_datetime"):
                if (fields[name] or "") > now:
                    self.problems.append(f"goals[{index}]: {name} {fields[name]} is in the future")
            try:
                fields.update(_stored_worth(fields))
                fields.update(checked_goal(fields, sent=set()))
            except InvalidInputError as error:
                self.problems += [f"goals[{index}]: {problem.title}" for problem in error.problems]
                continue
            place = (goal.website_id, fields["key"])
            owner = taken.get(place) or self.repository.goals.key_owner(*place)
            if owner not in (None, goal.goal_id):
                self.problems.append(f"goals[{index}]: key {fields['key']} is the key of goal {owner} on its website")
            taken[place] = goal.goal_id

    def _created(self, goal_id: int, now: str, first_converted: str | None) -> str:
        """A goal's datetime when the seed gives none: the earliest of the import's moment, its
        first conversion's in the seed and, for a goal already stored, its stored datetime and
        its first stored conversion's, so that a goal is never created after its own conversions."""
        moments = [now, first_converted]
        stored = self.stored.get(("GOAL", goal_id))
        if stored is not None:
            first_stored = self.repository.importer.first_conversion(goal_id)
            moments += [stored.get("datetime"), first_stored.datetime if first_stored else None]
        return min(moment for moment in moments if moment)

    def _check_owners(self) -> None:
        for index, website in enumerate(self.seed.websites):
            if self.lookup("USER", website.user_id) is None:
                self.problems.append(f"websites[{index}]: user {website.user_id} does not exist")
        for index, goal in enumerate(self.seed.goals):
            if self.lookup("WEBSITE", goal.website_id) is None:
                self.problems.append(f"goals[{index}]: website {goal.website_id} does not exist")
        for section in ("visitors", "sessions", "events"):
            for index, record in enumerate(getattr(self.seed, section)):
                if self.lookup("WEBSITE", record.website_id) is None:
                    self.problems.append(f"{section}[{index}]: website {record.website_id} does not exist")
        for index, session in enumerate(self.seed.sessions):
            self._check_parent(f"sessions[{index}]", "VISITOR", session.visitor_id, session.website_id)
        for index, event in enumerate(self.seed.events):
            self._check_parent(f"events[{index}]", "SESSION", event.session_id, event.website_id)

    def _check_stored_owners(self) -> None:
        """A website or goal already in the table stays its user's: an import never gives it (and,
        through the goal, its conversions) to another user."""
        records = [(f"websites[{i}]", "WEBSITE", w.website_id, w.user_id) for i, w in enumerate(self.seed.websites)]
        for index, goal in enumerate(self.seed.goals):
            website = self.lookup("WEBSITE", goal.website_id)
            if website is not None:
                records.append((f"goals[{index}]", "GOAL", goal.goal_id, website["user_id"]))
        self.stored = self.repository.accounts.entities([(kind, entity_id) for _, kind, entity_id, _ in records], True)
        for where, kind, entity_id, user_id in records:
            stored = self.stored.get((kind, entity_id))
            if stored is not None and stored.get("user_id") != user_id:
                self.problems.append(f"{where}: {kind.lower()} {entity_id} belongs to user {stored.get('user_id')}")

    def _check_stored_tracking(self) -> None:
        """A visitor, session or event already in the table stays where it is (its website, a
        session's visitor, an event's session), so the conversions that name it stay valid."""
        records = [
            (f"{section}[{index}]", kind, getattr(record, id_field), record)
            for section, (kind, id_field) in _KINDS.items()
            if kind in _KEPT_FIELDS
            for index, record in enumerate(getattr(self.seed, section))
        ]
        stored = self.repository.accounts.entities([(kind, entity_id) for _, kind, entity_id, _ in records], True)
        for where, kind, entity_id, record in records:
            item = stored.get((kind, entity_id))
            if item is None:
                continue
            for field in _KEPT_FIELDS[kind]:
                if item.get(field) != getattr(record, field):
                    kept = f"{kind.lower()} {entity_id} has {field} {item.get(field)}"
                    self.problems.append(f"{where}: {kept}; an import does not change it")

    def _check_parent(self, where: str, kind: str, parent_id: int | None, website_id: int) -> None:
        parent = self.lookup(kind, parent_id)
        if parent_id is not None and (parent is None or parent["website_id"] != website_id):
            self.problems.append(f"{where}: {kind.lower()} {parent_id} does not exist on website {website_id}")

    def _check_conversions(self) -> list[StoredConversion]:
        ceiling = ids.first_id_at(self.now)
        taken = self.repository.importer.existing_conversion_ids([row.id for row in self.seed.conversions])
        seen: set[int] = set()
        checked = []
        for index, row in enumerate(self.seed.conversions):
            where = f"conversions[{index}] (id {row.id})"
            conversion = self._conversion(where, row)
            if conversion is not None:
                checked.append((where, conversion))
            if row.datetime > self.now.strftime(DATETIME_FORMAT):
                self.problems.append(f"{where}: datetime {row.datetime} is in the future")
            if row.id in taken or row.id in seen:
                self.problems.append(f"{where}: id {row.id} is already taken")
            elif row.id >= ceiling:
                self.problems.append(f"{where}: id must be below {ceiling}, the first id the service can give now")
            seen.add(row.id)
        by_user: dict[int, list[tuple[str, StoredConversion]]] = {}
        for where, conversion in checked:
            by_user.setdefault(conversion.user_id, []).append((where, conversion))
        for user_id, rows in by_user.items():
            self._check_order(user_id, rows)
        return [conversion for _, conversion in checked]

    def _check_order(self, user_id: int, rows: list[tuple[str, StoredConversion]]) -> None:
        """Every list is one user's: within a user, ids must grow with datetime, among the rows
        and against what is stored. Rows go before all the user's stored conversions or after them."""
        ordered = sorted(rows, key=lambda pair: pair[1].id)
        for (_, before), (where, after) in zip(ordered, ordered[1:], strict=False):
            if after.datetime < before.datetime:
                self.problems.append(
                    f"{where}: datetime {after.datetime} is earlier than id {before.id} ({before.datetime}); "
                    "ids must grow with datetime"
                )
        oldest, newest = self.repository.importer.edge_conversions(user_id)
        if oldest is None or newest is None:
            return
        for where, row in ordered:
            after_newest = row.id > newest.id and row.datetime >= newest.datetime
            before_oldest = row.id < oldest.id and row.datetime <= oldest.datetime
            if not (after_newest or before_oldest):
                self.problems.append(
                    f"{where}: user {user_id} has conversions from id {oldest.id} ({oldest.datetime}) to id "
                    f"{newest.id} ({newest.datetime}); an imported conversion must come before all of them "
                    "or after all of them, in both id and datetime"
                )

    def _conversion(self, where: str, row: SeedConversion) -> StoredConversion | None:
        goal = self.lookup("GOAL", row.goal_id)
        website = self.lookup("WEBSITE", goal["website_id"]) if goal else None
        if goal is None or website is None:
            self.problems.append(f"{where}: goal {row.goal_id} does not exist")
            return None
        refs = {"visitor_id": row.visitor_id, "session_id": row.session_id, "event_id": row.event_id}
        found = {name: self.lookup(REFERENCE_KINDS[name], value) for name, value in refs.items()}
        for violation in reference_violations(website, refs, found):
            self.problems.append(f"{where}: {violation.title}")
        try:
            worth = _stored_worth(row.model_dump())
        except InvalidInputError as error:
            self.problems += [f"{where}: {problem.title}" for problem in error.problems]
            return None
        return StoredConversion(
            website_id=goal["website_id"], user_id=website["user_id"], **{**row.model_dump(), **worth}
        )


def _stored_worth(fields: dict[str, Any]) -> dict[str, Any]:
    """A seed record's value and currency as stored: both, or neither (a conversion without
    them takes none, not its goal's default); InvalidInputError otherwise."""
    sent = {name: fields.get(name) for name in ("value", "currency")}
    worth = resolve(sent, None, None, creating=True)
    return {"value": worth.value if worth else None, "currency": worth.currency if worth else None}


def load_seed(repository: Repository, data: Any, now: datetime | None = None) -> dict[str, int]:
    """Validate a whole seed and write it; SeedError (and nothing written) when it breaks a rule."""
    try:
        seed = Seed.model_validate(data)
    except ValidationError as error:
        raise SeedError(
            [f"{'.'.join(str(p) for p in e['loc']) or 'seed'}: {e['msg']}" for e in error.errors()]
        ) from None
    checker = _Checker(seed, repository, now or datetime.now(UTC))
    conversions = checker.run()
    if checker.problems:
        raise SeedError(checker.problems)
    users = [(u.model_dump(exclude={"api_key"}, exclude_none=True), hash_api_key(u.api_key)) for u in seed.users]
    entities = [
        (kind, checker.known[kind][getattr(record, id_field)] if kind == "GOAL" else record.model_dump())
        for section, (kind, id_field) in _KINDS.items()
        if section != "users"
        for record in getattr(seed, section)
    ]
    entities = [(kind, _with_owner(kind, fields, checker)) for kind, fields in entities]
    repository.importer.write(users, entities, conversions, tuple(checker.replaced_keys))
    return {section: len(getattr(seed, section)) for section in Seed.model_fields}


def _with_owner(kind: str, fields: dict[str, Any], checker: _Checker) -> dict[str, Any]:
    """Goals (and websites) carry their user_id so ownership checks are one read."""
    if kind == "GOAL":
        website = checker.lookup("WEBSITE", fields["website_id"])
        return {**fields, "user_id": website["user_id"]}  # type: ignore[index]
    return fields
