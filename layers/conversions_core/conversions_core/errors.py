"""Domain errors: what went wrong, in the contract's words. Only conversions_core.http knows the
HTTP status, headers and body each becomes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One entry of the contract's `errors` list: a title, and the parameter it is about."""

    title: str
    parameter: str | None = None


class DomainError(Exception):
    def __init__(self, *problems: Problem):
        super().__init__("; ".join(p.title for p in problems))
        self.problems = list(problems)


class InvalidInputError(DomainError):
    """A value or combination of values the contract refuses."""


class UnauthorizedError(DomainError):
    def __init__(self) -> None:
        super().__init__(Problem("A valid API key is required: send 'Authorization: Bearer <api_key>'"))


class NotFoundError(DomainError):
    """Missing, or another user's: the two look the same."""


class ConflictError(DomainError):
    """Another request got there first; `retry_after` seconds when retrying soon may succeed."""

    def __init__(self, *problems: Problem, retry_after: int | None = None):
        super().__init__(*problems)
        self.retry_after = retry_after


class GoneError(DomainError):
    """What the request names existed but is kept no longer (a changes cursor past retention)."""


class PayloadTooLargeError(DomainError):
    pass


class UnsupportedMediaTypeError(DomainError):
    pass


class RateLimitedError(DomainError):
    def __init__(self, limit: int, reset_seconds: int):
        super().__init__(Problem(f"Rate limit of {limit} requests a minute exceeded; retry in {reset_seconds} s"))
        self.limit = limit
        self.reset_seconds = reset_seconds


class DatabaseBusyError(DomainError):
    """DynamoDB throttled or failed beyond the client's retries."""

    def __init__(self, title: str = "The database is busy; retry shortly"):
        super().__init__(Problem(title))


def invalid(parameter: str | None, title: str) -> InvalidInputError:
    return InvalidInputError(Problem(title, parameter))


def not_found(what: str, parameter: str | None = None) -> NotFoundError:
    return NotFoundError(Problem(f"{what} not found", parameter))


def invalid_many(problems: Iterable[tuple[str, str]]) -> InvalidInputError:
    """A refusal listing several (parameter, title) problems."""
    return InvalidInputError(*(Problem(title, name) for name, title in problems))


def not_found_many(problems: Iterable[tuple[str, str]]) -> NotFoundError:
    return NotFoundError(*(Problem(title, name) for name, title in problems))
