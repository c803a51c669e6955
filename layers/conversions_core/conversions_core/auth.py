"""API keys (looked up by SHA-256 hash) and the per-key rate limit."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from conversions_core.errors import RateLimitedError, UnauthorizedError
from conversions_core.models import User
from conversions_core.repository.accounts import Accounts
from conversions_core.repository.ratelimit import RateLimitCounter


def hash_api_key(api_key: str) -> str:
    """SHA-256 hex digest: keys are long random secrets, so a fast unsalted hash is enough and
    lets the lookup be a GetItem on the hash (no key comparison, hence no timing leak)."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def bearer_key(authorization: str | None) -> str | None:
    """The key of an 'Authorization: Bearer <key>' header, or None."""
    if not authorization or not authorization.isprintable():
        return None  # CR, LF, NUL and other control characters have no place in a header value
    scheme, _, key = authorization.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or any(c.isspace() or c == "," for c in key):
        return None  # a comma: two Authorization headers, which API Gateway joins with one
    return key


@dataclass(frozen=True)
class Quota:
    """A rate-limited caller's limit a minute, and what is left of it after this request."""

    limit: int
    remaining: int


class Gate:
    """Authenticates a request's API key and counts it against the key's rate limit."""

    def __init__(self, accounts: Accounts, counter: RateLimitCounter, default_limit: int):
        self._accounts = accounts
        self._counter = counter
        self._default_limit = default_limit

    def authenticate(self, authorization: str | None) -> User:
        key = bearer_key(authorization)
        if key is None:
            raise UnauthorizedError()
        user = self._accounts.user_by_key_hash(hash_api_key(key))
        if user is None or user.status != "active":
            raise UnauthorizedError()
        return user

    def count_request(self, user: User) -> Quota | None:
        """Count the request; its quota (None for an unlimited user), RateLimitedError past it."""
        limit = self._default_limit if user.rate_limit_per_minute is None else user.rate_limit_per_minute
        if limit == 0:
            return None
        used, reset = self._counter.hit(user.api_key_hash)
        if used > limit:
            raise RateLimitedError(limit, reset)
        return Quota(limit, limit - used)
