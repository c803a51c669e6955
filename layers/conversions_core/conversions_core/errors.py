"""Domain exceptions. Each carries its HTTP status; conversions_core.http turns them into responses."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One entry of the contract's `errors` list."""

    title: str
    parameter: str | None = None


class ApiError(Exception):
    status = 500

    def __init__(self, *problems: Problem, headers: dict[str, str] | None = None):
        super().__init__("; ".join(p.title for p in problems))
        self.problems = list(problems)
        self.headers = headers or {}


class InvalidRequestError(ApiError):
    status = 400


class UnauthorizedError(ApiError):
    status = 401

    def __init__(self) -> None:
        super().__init__(
            Problem("A valid API key is required: send 'Authorization: Bearer <api_key>'"),
            headers={"WWW-Authenticate": "Bearer"},
        )


class NotFoundError(ApiError):
    status = 404


class ConflictError(ApiError):
    status = 409


class UnsupportedMediaTypeError(ApiError):
    status = 415


class RateLimitedError(ApiError):
    status = 429


class ServiceUnavailableError(ApiError):
    status = 503


def invalid(parameter: str | None, title: str) -> InvalidRequestError:
    return InvalidRequestError(Problem(title, parameter))


def not_found(what: str, parameter: str | None = None) -> NotFoundError:
    return NotFoundError(Problem(f"{what} not found", parameter))


def invalid_many(problems: Iterable[tuple[str, str]]) -> InvalidRequestError:
    """A 400 listing several (parameter, title) problems."""
    return InvalidRequestError(*(Problem(title, name) for name, title in problems))


def not_found_many(problems: Iterable[tuple[str, str]]) -> NotFoundError:
    return NotFoundError(*(Problem(title, name) for name, title in problems))
