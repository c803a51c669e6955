"""The one place where requests are authenticated and errors become HTTP responses."""

from __future__ import annotations

import json
import re
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from conversions_core.auth import Gate
from conversions_core.bodies import parse_body
from conversions_core.errors import ApiError, InvalidRequestError, NotFoundError, Problem, UnauthorizedError, invalid
from conversions_core.links import PageLinks, base_url
from conversions_core.models import Page, User, int_to_digits, rule_for
from conversions_core.observability import logger, observe

__all__ = ["handle", "logger", "new_resolver"]

JSON = "application/json"
_HEADER_NAMES = {"idempotency-key": "Idempotency-Key"}
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
            if location == "header":  # Powertools reports header names lower-cased
                name = _HEADER_NAMES.get(name.lower(), name)
            title = rule_for(location, name, detail["type"], detail.get("input"))
            problems.setdefault(name, Problem(title, name))
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
        sent_twice = _headers_sent_more_than_once(event)
        if "authorization" in sent_twice:
            raise UnauthorizedError()
        user = gate.authenticate(headers.get("authorization"))
        rate_headers = gate.count_request(user)
        for name in ("Content-Type", "Idempotency-Key"):
            if name.lower() in sent_twice:
                raise invalid(name, f"{name} was sent more than once")
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


def _headers_sent_more_than_once(event: dict[str, Any]) -> set[str]:
    """Lower-cased names of the headers that came more than once (in one spelling or several)."""
    counts: dict[str, int] = {}
    for name, values in (event.get("multiValueHeaders") or {}).items():
        counts[name.lower()] = counts.get(name.lower(), 0) + len(values or [])
    single: dict[str, int] = {}
    for name in event.get("headers") or {}:
        single[name.lower()] = single.get(name.lower(), 0) + 1
    return {name for name in counts.keys() | single.keys() if max(counts.get(name, 0), single.get(name, 0)) > 1}


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


def list_response(app: APIGatewayRestResolver, page: Page, number: int, per_page: int, base: str | None) -> Response:
    """The list endpoint's body: data, meta and links that page through the same query."""
    query = app.current_event.query_string_parameters or {}
    kept = {name: query[name] for name in LIST_PARAMETERS if name in query}
    links = PageLinks(_endpoint_url(app, base), kept, number, per_page, page.total)
    meta = {"page": number, "results_per_page": per_page, "total": page.total, "total_pages": links.total_pages}
    body = {"data": [c.model_dump() for c in page.conversions], "meta": meta, "links": links.as_dict()}
    return Response(200, JSON, _dumps_with_any_page(body, number))


def _dumps_with_any_page(body: dict[str, Any], number: int) -> str:
    """JSON of a list body whose meta.page may be too long for json.dumps (over 4,300 digits)."""
    digits = int_to_digits(number)
    if len(digits) < 4000:
        return json.dumps(body, separators=(",", ":"))
    placeholder = "\x00page\x00"
    text = json.dumps({**body, "meta": {**body["meta"], "page": placeholder}}, separators=(",", ":"))
    return text.replace(json.dumps(placeholder), digits, 1)


def _endpoint_url(app: APIGatewayRestResolver, public_base_url: str | None) -> str:
    event = app.current_event
    headers = {name.lower(): value for name, value in (event.headers or {}).items()}
    called = ((event.raw_event.get("requestContext") or {}).get("path") or event.path).rstrip("/")
    own = event.path.rstrip("/")
    prefix = called[: len(called) - len(own)] if own and called.endswith(own) else ""
    if not _STAGE_PREFIX.fullmatch(prefix):
        prefix = ""
    scheme, host = headers.get("x-forwarded-proto"), headers.get("host")
    return base_url(public_base_url, scheme, host, event.request_context.domain_name, prefix) + "/api/goals-conversions"


_STAGE_PREFIX = re.compile(r"(?:/[A-Za-z0-9_-]+)?")
