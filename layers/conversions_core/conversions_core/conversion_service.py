"""Recording conversions: the contract's rules around the repository's writes (the goal must be
the caller's and enabled, references must exist on its website and belong together)."""

from __future__ import annotations

from typing import Any

from conversions_core.errors import ConflictError, Problem, invalid, invalid_many, not_found_many
from conversions_core.models import REFERENCE_FIELDS, WORTH_FIELDS, Conversion
from conversions_core.money import Worth, resolve
from conversions_core.repository import Repository
from conversions_core.repository.items import StoredConversion, User
from conversions_core.rules import NOT_FOUND, Violation, reference_violations


def create(
    repository: Repository,
    user: User,
    goal_id: int,
    refs: dict[str, int | None],
    worth: dict[str, str | None] | None = None,
) -> Conversion:
    """Record a conversion of one of the user's goals, worth what `worth` sends (value and
    currency as text) or the goal's default."""
    goal, website, found = repository.accounts.goal_with_references(user, goal_id, refs)
    _refuse_disabled(goal)
    _refuse(reference_violations(website, refs, found))
    default = Worth.stored(goal.get("value"), goal.get("currency"))
    resolved = resolve(worth or {}, default, goal.get("currency"), creating=True)
    value, currency = (resolved.value, resolved.currency) if resolved else (None, None)
    return Conversion.from_stored(repository.conversions.create(user, goal, refs, value, currency))


def update(repository: Repository, user: User, conversion_id: int, changes: dict[str, Any]) -> Conversion:
    """Apply the sent fields (None clears a reference, an empty value clears the worth); a new
    goal moves the website too and keeps the conversion's value."""
    if "goal_id" in changes and changes["goal_id"] is None:
        raise invalid("goal_id", "goal_id cannot be cleared: a conversion always has a goal")

    def revise(current: StoredConversion) -> StoredConversion:
        refs = {name: changes.get(name, getattr(current, name)) for name in REFERENCE_FIELDS}
        goal_id = changes.get("goal_id") or current.goal_id
        goal, website, found = repository.accounts.goal_with_references(user, goal_id, refs)
        if "goal_id" in changes:  # the create's rule for a goal_id sent; other fields may fix a conversion
            _refuse_disabled(goal)
        _refuse(reference_violations(website, refs, found))
        sent = {name: changes[name] for name in WORTH_FIELDS if name in changes}
        worth = resolve(sent, Worth.stored(current.value, current.currency), goal.get("currency"), creating=False)
        value, currency = (worth.value, worth.currency) if worth else (None, None)
        return current.but(
            goal_id=goal["goal_id"], website_id=goal["website_id"], **refs, value=value, currency=currency
        )

    return Conversion.from_stored(repository.conversions.update(user, conversion_id, revise))


def _refuse_disabled(goal: dict[str, Any]) -> None:
    if not goal.get("is_enabled", True):
        raise ConflictError(Problem("The goal is disabled: enable it to record its conversions", "goal_id"))


def _refuse(violations: list[Violation]) -> None:
    """Raise the contract's error for the first kind of violation: tracking mode and unrelated
    references are a 400, references that do not exist a 404."""
    if not violations:
        return
    problems = [(v.field, v.title) for v in violations]
    if violations[0].rule == NOT_FOUND:
        raise not_found_many(problems)
    raise invalid_many(problems)
