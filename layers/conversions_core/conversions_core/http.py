"""The HTTP edge of every function (API Gateway HTTP API, payload 2.0): the resolver, the entry
point that authenticates and rate-limits before routing, and the one place errors become
responses."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from contextvars import ContextVar
from functools import cache
from typing import Annotated, Any
from urllib.parse import parse_qsl

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.depends import DependencyResolutionError, Depends
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths

from conversions_core.auth import Quota
from conversions_core.bodies import normalised_json, parse_body
from conversions_core.errors import (
    ConflictError,
    DatabaseBusyError,
    DomainError,
    GoneError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    Problem,
    RateLimitedError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    invalid,
)
from conversions_core.links import PageLinks, base_url
from conversions_core.models import User
from conversions_core.observability import logger, observe
from conversions_core.powertools_compat import TrailingSlashRoutes, build_validation, routes
from conversions_core.services import Services
from conversions_core.values import ListBody

__all__ = ["AppServices", "CurrentUser", "entry_point", "error_response", "get_services", "list_response", "new_app"]

JSON = "application/json"
_STATUSES: tuple[tuple[type[DomainError], int], ...] = (
    (InvalidInputError, 400),
    (UnauthorizedError, 401),
    (NotFoundError, 404),
    (ConflictError, 409),
    (GoneError, 410),
    (PayloadTooLargeError, 413),
    (UnsupportedMediaTypeError, 415),
    (RateLimitedError, 429),
    (DatabaseBusyError, 503),
)
_HEADER_NAMES = {"idempotency-key": "Idempotency-Key"}  # Powertools reports header names lower-cased
_REPEATABLE_ONCE = ("Content-Type", "Idempotency-Key")
_STAGE_PREFIX = re.compile(r"(?:/[A-Za-z0-9_-]+)?")


class HttpApiResolver(TrailingSlashRoutes, APIGatewayHttpResolver):
    """Powertools' HTTP API resolver, answering a path with or without its trailing slash (the
    template routes both to the function)."""


# -- errors -----------------------------------------------------------------------------------


def errors_body(status: int, problems: list[Problem]) -> dict[str, Any]:
    errors = []
    for problem in problems:
        entry: dict[str, Any] = {"title": problem.title, "status": status}
        if problem.parameter:
            entry["source"] = {"parameter": problem.parameter}
        errors.append(entry)
    return {"errors": errors}


def error_response(error: DomainError) -> Response[str]:
    """The contract's error response for a domain error: its status, body and headers."""
    status = next(status for kind, status in _STATUSES if isinstance(error, kind))
    headers = {}
    if isinstance(error, UnauthorizedError):
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(error, RateLimitedError):
        headers = {**quota_headers(Quota(error.limit, 0)), "X-RateLimit-Reset": str(error.reset_seconds)}
        headers["Retry-After"] = str(error.reset_seconds)
    elif isinstance(error, DatabaseBusyError):
        headers["Retry-After"] = "1"
    elif isinstance(error, ConflictError) and error.retry_after:
        headers["Retry-After"] = str(error.retry_after)
    return Response(status, JSON, json.dumps(errors_body(status, error.problems), separators=(",", ":")), headers)


def _unexpected() -> Response[str]:
    logger.exception("Unhandled error")
    return Response(500, JSON, json.dumps(errors_body(500, [Problem("Internal server error")])))


def validation_error(error: RequestValidationError, rules: dict[str, str], repeated: set[str]) -> DomainError:
    """Powertools' validation errors, as the contract's 400 (one entry per parameter, titled by
    `rules` or by the validator that refused it); a path parameter that is not valid names no
    record: 404."""
    problems: dict[str, Problem] = {}
    for detail in error.errors():
        location, *rest = detail["loc"]
        name = rest[0] if rest and isinstance(rest[0], str) else None
        if location == "path":  # e.g. conversion_id: "Conversion not found"
            return NotFoundError(Problem(f"{(name or 'record').removesuffix('_id').capitalize()} not found"))
        if name is None:
            problems.setdefault("", Problem("The body must be an object of fields"))
            continue
        if location == "header":
            name = _HEADER_NAMES.get(name.lower(), name)
        if location == "query" and name in repeated:
            title = f"{name} was sent more than once"
        elif detail["type"] == "contract":
            title = detail["msg"]
        elif detail["type"] == "missing":
            title = f"{name} is required"
        else:
            title = rules.get(name, f"{name} is not valid")
        problems.setdefault(name, Problem(title, name))
    return InvalidInputError(*problems.values())


@cache
def get_services() -> Services:
    """The container's clients and repositories, built once, at init (`new_app` asks first).
    Tests give a resolver others through its dependency_overrides."""
    return Services.from_env()


AppServices = Annotated[Services, Depends(get_services)]


def new_app(rules: dict[str, str], part: str) -> HttpApiResolver:
    """A resolver with validation on and every error in the contract's format; `rules` titles
    the 400 for each parameter. The container's services, and the repository `part` the routes
    use (conversions, goals, statistics) with its modules, are built here, in Lambda's init, not
    in the first request, which runs at the function's share of a CPU."""
    getattr(get_services().repository, part)
    app = HttpApiResolver(enable_validation=True)

    @app.exception_handler(DomainError)
    def _domain(error: DomainError) -> Response[str]:
        return error_response(error)

    @app.exception_handler(DependencyResolutionError)
    def _dependency(error: DependencyResolutionError) -> Response[str]:
        cause = error.__cause__
        return error_response(cause) if isinstance(cause, DomainError) else _unexpected()

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response[str]:
        repeated = _repeated_query_names(app.current_event.raw_event)
        return error_response(validation_error(error, rules, repeated))

    @app.not_found
    def _no_route(_: Exception) -> Response[str]:
        return error_response(NotFoundError(Problem("No such endpoint")))

    @app.exception_handler(Exception)
    def _unexpected_error(_: Exception) -> Response[str]:
        return _unexpected()

    return app


# -- the request around the route --------------------------------------------------------------

_user: ContextVar[User] = ContextVar("user")


def current_user() -> User:
    """The authenticated caller of the request being handled."""
    return _user.get()


CurrentUser = Annotated[User, Depends(current_user)]


def entry_point(app: HttpApiResolver) -> Callable[[dict[str, Any], Any], Any]:
    """A function's Lambda handler: authenticate, count against the rate limit, read the body,
    then route, with the services the routes get (`get_services`, or the app's override)."""

    # Powertools builds a route's validation (its parameters' and body's pydantic adapters) on
    # the route's first request; built here, it is part of init.
    for route in routes(app):
        build_validation(route)

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        chosen = app.dependency_overrides.get(get_services, get_services)()
        chosen.deadline.start(context)
        with observe(event.get("routeKey", "")) as outcome:
            refused = _not_payload_2(event)
            response = refused or _handle(app, chosen, event, context)
            outcome["status"] = response.get("statusCode")
        return response

    return lambda_handler


def _not_payload_2(event: dict[str, Any]) -> dict[str, Any] | None:
    """A 501 for an event that is not an HTTP API's payload format 2.0, before any work (no
    authentication, no rate-limit count): a REST API, or an HTTP API integration set to payload
    1.0, would otherwise reach the routes with fields they cannot read. None for a 2.0 event."""
    if event.get("version") == "2.0":
        return None
    found = event.get("version") or ("1.0 (a REST API's)" if "httpMethod" in event else "missing")
    title = (
        'This function takes API Gateway HTTP API events, payload format 2.0 (version "2.0"); '
        f"this event's payload format is {found}"
    )
    logger.error("Event refused: not payload format 2.0", extra={"payload_format": found})
    return _proxy(Response(501, JSON, json.dumps(errors_body(501, [Problem(title)]), separators=(",", ":"))))


def _handle(app: HttpApiResolver, services: Services, event: dict[str, Any], context: Any) -> dict[str, Any]:
    quota: Quota | None = None
    token = None
    try:
        headers = event.get("headers") or {}  # names lower-cased, repeated headers joined by commas
        user = services.gate.authenticate(headers.get("authorization"))
        quota = services.gate.count_request(user)
        for name in _REPEATABLE_ONCE:
            if _sent_more_than_once(headers.get(name.lower())):
                raise invalid(name, f"{name} was sent more than once (API Gateway joins repeated headers with commas)")
        if event.get("requestContext", {}).get("http", {}).get("method") == "POST":
            _normalise_body(event, headers.get("content-type"))
        token = _user.set(user)
        response = app.resolve(event, context)
    except DomainError as error:
        response = _proxy(error_response(error))
    except Exception:
        response = _proxy(_unexpected())
    finally:
        if token is not None:
            _user.reset(token)
    if quota is not None:
        response.setdefault("headers", {}).update(quota_headers(quota))
    return response


def quota_headers(quota: Quota) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(quota.limit), "X-RateLimit-Remaining": str(quota.remaining)}


def _sent_more_than_once(value: str | None) -> bool:
    """API Gateway joins repeated headers with a comma; neither header holds one (outside quotes)."""
    return value is not None and "," in re.sub(r'"[^"]*"', "", value)


def _repeated_query_names(event: dict[str, Any]) -> set[str]:
    names = [name for name, _ in parse_qsl(event.get("rawQueryString") or "", keep_blank_values=True)]
    return {name for name in names if names.count(name) > 1}


def _normalise_body(event: dict[str, Any], content_type: str | None) -> None:
    """Replace a form or JSON body by the equivalent JSON object, which every route reads."""
    fields = parse_body(content_type, event.get("body"), bool(event.get("isBase64Encoded")))
    event["body"] = normalised_json(fields)
    event["isBase64Encoded"] = False
    event["headers"] = {**(event.get("headers") or {}), "content-type": JSON}


def _proxy(response: Response[str]) -> dict[str, Any]:
    """A response built outside the resolver, as the resolver builds one for payload 2.0."""
    return {
        "statusCode": response.status_code,
        "headers": {"Content-Type": JSON, **{k: str(v) for k, v in response.headers.items()}},
        "body": response.body,
        "isBase64Encoded": False,
    }


# -- lists -------------------------------------------------------------------------------------


def list_response(
    app: HttpApiResolver,
    body: type[ListBody],
    data: list[Any],
    total: int,
    number: int,
    per_page: int,
    kept: tuple[str, ...],
    public_base_url: str | None,
) -> Response[str]:
    """A list's body (`body` model): data, meta, and links that page through the same query,
    keeping the list parameters (`kept`) the request sent."""
    event = app.current_event
    query = event.query_string_parameters or {}
    links = PageLinks(
        _endpoint_url(event.raw_event, public_base_url),
        {name: query[name] for name in kept if name in query},
        number,
        per_page,
        total,
    )
    meta = {"page": number, "results_per_page": per_page, "total": total, "total_pages": links.total_pages}
    return Response(200, JSON, body.render(data, meta, links.as_dict()))


def _endpoint_url(event: dict[str, Any], public_base_url: str | None) -> str:
    """This endpoint's absolute URL (without query): see conversions_core.links."""
    headers = event.get("headers") or {}
    path = event.get("rawPath") or "/"
    route_path = (event.get("routeKey") or " /").split(" ", 1)[1]
    own = "/" + "/".join(route_path.strip("/").split("/")[:2])  # /api/<resource>
    prefix = path[: path.find(own)] if own in path else ""
    if not _STAGE_PREFIX.fullmatch(prefix):
        prefix = ""
    domain = (event.get("requestContext") or {}).get("domainName")
    url = base_url(public_base_url, headers.get("x-forwarded-proto"), headers.get("host"), domain, prefix)
    return url + own
