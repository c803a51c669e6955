"""The one place where requests are authenticated and errors become HTTP responses."""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import quote, urlencode

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from conversions_core.auth import Gate
from conversions_core.bodies import parse_body
from conversions_core.errors import ApiError, InvalidRequestError, NotFoundError, Problem
from conversions_core.models import Page, User, rule_for
from conversions_core.observability import logger, observe

__all__ = ["handle", "logger", "new_resolver"]

JSON = "application/json"
LIST_PARAMETERS = (
    "goal_id",
    "website_id",
    "datetime_field",
    "datetime_start",
    "datetime_end",
    "order_by",
    "order_type",
    "results_per_page",
)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, JSON, json.dumps(body, separators=(",", ":")), headers=headers)


def error_response(error: ApiError) -> Response:
    return json_response(error.status, _errors_body(error.status, error.problems), error.headers)


def _errors_body(status: int, problems: list[Problem]) -> dict[str, Any]:
    errors = []
    for problem in problems:
        entry: dict[str, Any] = {"title": problem.title, "status": status}
        if problem.parameter:
            entry["source"] = {"parameter": problem.parameter}
        errors.append(entry)
    return {"errors": errors}


def validation_error(error: RequestValidationError) -> ApiError:
    """Powertools' validation errors, as the contract's 400 (one entry per parameter)."""
    problems: dict[str, Problem] = {}
    for detail in error.errors():
        location, *rest = detail["loc"]
        name = rest[0] if rest and isinstance(rest[0], str) else None
        if location == "path":
            return NotFoundError(Problem("Conversion not found"))
        if name is None:
            problems.setdefault("", Problem("The body must be an object of fields"))
        else:
            problems.setdefault(name, Problem(rule_for(location, name, detail["type"]), name))
    return InvalidRequestError(*problems.values())


def new_resolver() -> APIGatewayRestResolver:
    """A REST API resolver with validation on and the contract's error format."""
    app = APIGatewayRestResolver(enable_validation=True)
    register_error_handlers(app)
    return app


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    @app.exception_handler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response:
        return error_response(validation_error(error))

    @app.not_found
    def _no_route(_: Exception) -> Response:
        return error_response(NotFoundError(Problem("No such endpoint")))

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response:
        logger.exception("Unhandled error")
        return json_response(500, _errors_body(500, [Problem("Internal server error")]))


def current_user(app: APIGatewayRestResolver) -> User:
    return app.context["user"]


def handle(app: APIGatewayRestResolver, event: dict[str, Any], context: Any, gate: Gate) -> dict[str, Any]:
    """Authenticate, rate-limit, normalise the body, then let the resolver route the request.

    Traced as one subsegment, and its outcome counted in metrics (see observability).
    """
    with observe(f"{event.get('httpMethod')} {event.get('resource')}") as outcome:
        response = _handle(app, event, context, gate)
        outcome["status"] = response.get("statusCode")
    return response


def _handle(app: APIGatewayRestResolver, event: dict[str, Any], context: Any, gate: Gate) -> dict[str, Any]:
    rate_headers: dict[str, str] = {}
    try:
        headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
        user = gate.authenticate(headers.get("authorization"))
        rate_headers = gate.count_request(user)
        if event.get("httpMethod") == "POST":
            _normalise_body(event, headers.get("content-type"))
        app.append_context(user=user)
        response = app.resolve(event, context)
    except ApiError as error:
        response = _proxy_response(error.status, _errors_body(error.status, error.problems), error.headers)
    except Exception:
        logger.exception("Unhandled error")
        response = _proxy_response(500, _errors_body(500, [Problem("Internal server error")]), {})
    finally:
        app.clear_context()
    return _with_headers(response, rate_headers)


def _normalise_body(event: dict[str, Any], content_type: str | None) -> None:
    """Replace a form or JSON body by the equivalent JSON object, which every route reads."""
    fields = parse_body(content_type, event.get("body"), bool(event.get("isBase64Encoded")))
    event["body"] = json.dumps(fields)
    event["isBase64Encoded"] = False
    for name in [n for n in event.get("headers") or {} if n.lower() == "content-type"]:
        del event["headers"][name]
    for name in [n for n in event.get("multiValueHeaders") or {} if n.lower() == "content-type"]:
        del event["multiValueHeaders"][name]
    event.setdefault("headers", {})
    event["headers"] = {**(event["headers"] or {}), "Content-Type": JSON}
    if event.get("multiValueHeaders") is not None:
        event["multiValueHeaders"]["Content-Type"] = [JSON]


def _proxy_response(status: int, body: Any, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "multiValueHeaders": {"Content-Type": [JSON], **{k: [v] for k, v in headers.items()}},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def _with_headers(response: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    if headers:
        multi = response.setdefault("multiValueHeaders", {})
        for name, value in headers.items():
            multi[name] = [value]
    return response


def documented(status: int, description: str, model: type | None = None) -> dict[int, Any]:
    """A route's success response for the OpenAPI document (errors are added by the generator)."""
    response: dict[str, Any] = {"description": description}
    if model is not None:
        response["content"] = {JSON: {"model": model}}
    return {status: response}


def ok(data: Any, status: int = 200) -> Response:
    return json_response(status, {"data": data})


def no_content() -> Response:
    return Response(204, None, "")


def list_response(
    app: APIGatewayRestResolver, page: Page, number: int, per_page: int, base_url: str | None
) -> Response:
    """The list endpoint's body: data, meta and links that page through the same query."""
    total_pages = math.ceil(page.total / per_page) if page.total else 0
    query = app.current_event.query_string_parameters or {}
    kept = {name: query[name] for name in LIST_PARAMETERS if name in query}
    url = _endpoint_url(app, base_url)

    def link(target: int | None) -> str | None:
        return None if target is None else f"{url}?{urlencode({**kept, 'page': target}, quote_via=quote)}"

    links = {
        "first": link(1),
        "last": link(total_pages or None),
        "next": link(number + 1 if number < total_pages else None),
        "prev": link(number - 1 if number > 1 else None),
        "self": link(number),
    }
    meta = {"page": number, "results_per_page": per_page, "total": page.total, "total_pages": total_pages}
    return json_response(200, {"data": [c.model_dump() for c in page.conversions], "meta": meta, "links": links})


def _endpoint_url(app: APIGatewayRestResolver, base_url: str | None) -> str:
    event = app.current_event
    path = "/api/goals-conversions"
    if base_url:
        return base_url.rstrip("/") + path
    headers = {name.lower(): value for name, value in (event.headers or {}).items()}
    scheme = headers.get("x-forwarded-proto", "https").split(",")[0].strip()
    host = headers.get("host") or event.request_context.domain_name or "localhost"
    called = ((event.raw_event.get("requestContext") or {}).get("path") or event.path).rstrip("/")
    own = event.path.rstrip("/")
    prefix = called[: len(called) - len(own)] if own and called.endswith(own) else ""
    return f"{scheme}://{host}{prefix}{path}"
