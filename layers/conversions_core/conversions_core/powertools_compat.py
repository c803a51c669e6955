"""The Powertools internals the HTTP edge relies on, in one place, so that an upgrade that changes
them fails loudly in tests/test_powertools_compat.py rather than quietly in a request.

Checked against aws-lambda-powertools 3.37.0 (pinned in pyproject.toml and in the layer's
requirements.txt):

- `ApiGatewayResolver._compile_regex(rule, base_regex)`, a private static method, turns a route's
  rule into the regex paths are matched with. Overriding it is how a resolver answers a path with
  a trailing slash too, as Powertools' own REST resolver does (`TrailingSlashRoutes`).
- `ApiGatewayResolver._static_routes` and `_dynamic_routes` hold the registered routes (`routes`).
- `Route.dependant` and `Route.body_field`, properties, build a route's validation (its
  parameters' and body's pydantic adapters) on first access, and `Route._dependant` holds it once
  built (`build_validation`, `validation_built`): init builds it, not the first request.
- A validation error's `loc` is `(where, name, ...)`, `where` being `query`, `path`, `header` or
  `body` (conversions_core.http turns each into the contract's 400 naming the parameter).
"""

from __future__ import annotations

import re

from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver, Route

__all__ = ["CHECKED_VERSION", "TrailingSlashRoutes", "build_validation", "routes", "validation_built"]

CHECKED_VERSION = "3.37.0"
_WITH_OR_WITHOUT_SLASH = "^{}/*$"


class TrailingSlashRoutes:
    """A resolver mixin: each route matches its path with or without a trailing slash (HTTP API
    routes are exact, and the template routes both forms to the function)."""

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = "^{}$") -> re.Pattern[str]:
        pattern: re.Pattern[str] = ApiGatewayResolver._compile_regex(rule, _WITH_OR_WITHOUT_SLASH)
        return pattern


def routes(app: ApiGatewayResolver) -> list[Route]:
    """The resolver's registered routes."""
    return [*app._static_routes, *app._dynamic_routes]


def build_validation(route: Route) -> None:
    """Build the route's validation now (Powertools builds it on the route's first request)."""
    route.dependant, route.body_field  # noqa: B018


def validation_built(route: Route) -> bool:
    return route._dependant is not None
