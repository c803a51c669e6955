"""CORS as the HTTP API answers it when template.yaml's CorsConfiguration is on: the allowed
methods, headers, exposed headers and max age from the template, the origins from `serve
--cors-origin` (as CorsAllowedOrigins gives them when deployed).

With CORS configured, API Gateway answers every preflight itself (an OPTIONS request with
`Origin` and `Access-Control-Request-Method`), whatever the path, and adds the CORS headers to
the answers to requests from an allowed origin. A request from any other origin gets no CORS
header, so the browser keeps its script from reading the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from goals_conversions_local.template import Template

__all__ = ["Cors", "origins_option"]


def origins_option(values: list[str] | None) -> tuple[str, ...]:
    """Origins from `--cors-origin`, each given alone or as a comma-separated list."""
    return tuple(origin.strip() for value in values or () for origin in value.split(",") if origin.strip())


@dataclass(frozen=True)
class Cors:
    origins: tuple[str, ...]
    methods: tuple[str, ...]
    headers: tuple[str, ...]
    exposed: tuple[str, ...]
    max_age: int

    @classmethod
    def from_template(cls, template: Template, origins: tuple[str, ...]) -> Cors | None:
        """The template's CORS settings for these origins; None (no CORS) when there are none."""
        if not origins:
            return None
        config = template.cors_configuration()
        return cls(
            origins=origins,
            methods=tuple(config.get("AllowMethods", ())),
            headers=tuple(config.get("AllowHeaders", ())),
            exposed=tuple(config.get("ExposeHeaders", ())),
            max_age=int(config.get("MaxAge", 0)),
        )

    def allowed(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin answer to `origin`: itself, `*`, or None when not allowed."""
        if origin is None:
            return None
        if "*" in self.origins:
            return "*"
        return origin if origin in self.origins else None

    def preflight(self, method: str, headers: list[tuple[str, str]]) -> dict[str, Any] | None:
        """The answer to a preflight (204; its CORS headers only for an allowed origin), or None
        for any other request."""
        origin = _header(headers, "origin")
        if method != "OPTIONS" or origin is None or _header(headers, "access-control-request-method") is None:
            return None
        allowed = self.allowed(origin)
        answer: dict[str, str] = {}
        if allowed is not None:
            answer = {
                "Access-Control-Allow-Origin": allowed,
                "Access-Control-Allow-Methods": ",".join(self.methods),
                "Access-Control-Allow-Headers": ",".join(self.headers),
                "Access-Control-Max-Age": str(self.max_age),
                **_vary(allowed),
            }
        return {"statusCode": 204, "headers": answer, "body": ""}

    def answered(self, response: dict[str, Any], headers: list[tuple[str, str]]) -> dict[str, Any]:
        """The response with the CORS headers an allowed origin's request gets."""
        allowed = self.allowed(_header(headers, "origin"))
        if allowed is None:
            return response
        cors = {"Access-Control-Allow-Origin": allowed, "Access-Control-Expose-Headers": ",".join(self.exposed)}
        return {**response, "headers": {**(response.get("headers") or {}), **cors, **_vary(allowed)}}


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name), None)


def _vary(allowed: str) -> dict[str, str]:
    """A specific origin echoed: caches keep one answer per origin."""
    return {} if allowed == "*" else {"Vary": "Origin"}
