"""The Powertools internals conversions_core.powertools_compat relies on still behave as it expects.

A Powertools upgrade that renames or changes one fails here, by name, rather than as a route that
no longer answers its trailing slash, a cold start that builds validation in the first request,
or validation errors that lose the parameter they are about."""

from __future__ import annotations

from importlib.metadata import version
from typing import Annotated

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel

from conftest import load_event
from conversions_core import powertools_compat
from conversions_core.powertools_compat import TrailingSlashRoutes, build_validation, routes, validation_built

pytestmark = pytest.mark.no_database

INSTALLED = version("aws-lambda-powertools")
CHANGED = f"aws-lambda-powertools {INSTALLED} (checked: {powertools_compat.CHECKED_VERSION}) changed "


class Item(BaseModel):
    name: str


def resolver() -> APIGatewayHttpResolver:
    class Resolver(TrailingSlashRoutes, APIGatewayHttpResolver):
        pass

    app = Resolver(enable_validation=True)

    @app.get("/things")
    def things(limit: Annotated[int, Query()] = 1) -> dict:
        return {"limit": limit}

    @app.post("/things/<thing_id>")
    def thing(thing_id: str, item: Item) -> dict:
        return {"id": thing_id, "name": item.name}

    return app


def event(method: str, path: str, query: str = "", body: str | None = None) -> dict:
    built = load_event("list_conversions")
    built["rawPath"] = built["requestContext"]["http"]["path"] = path
    built["requestContext"]["http"]["method"] = method
    built["routeKey"] = "$default"
    built["rawQueryString"] = query
    built["queryStringParameters"] = dict(pair.split("=") for pair in query.split("&")) if query else None
    built["body"] = body
    return built


def test_compile_regex_is_a_static_method_taking_a_rule_and_a_base_regex():
    pattern = ApiGatewayResolver._compile_regex("/things/<thing_id>", "^{}/*$")
    found = pattern.match("/things/abc/")
    assert found and found.groupdict() == {"thing_id": "abc"}, CHANGED + "ApiGatewayResolver._compile_regex"


def test_a_resolver_with_trailing_slash_routes_answers_both_forms():
    app = resolver()
    for path in ("/things", "/things/"):
        response = app.resolve(event("GET", path), {})
        assert response["statusCode"] == 200, CHANGED + f"how routes use _compile_regex: {path} got {response}"


def test_routes_are_listed_and_their_validation_is_built_on_demand():
    app = resolver()
    listed = routes(app)
    paths = sorted(route.path for route in listed)
    assert paths == ["/things", "/things/<thing_id>"], (
        CHANGED + f"the resolver's _static_routes, _dynamic_routes: {paths}"
    )
    assert not any(validation_built(route) for route in listed), CHANGED + "Route._dependant (built lazily)"
    for route in listed:
        build_validation(route)
    assert all(validation_built(route) for route in listed), CHANGED + "Route.dependant / Route.body_field"


@pytest.mark.parametrize(
    ("request_event", "location"),
    [
        (event("GET", "/things", query="limit=x"), ("query", "limit")),
        (event("POST", "/things/1", body='{"name": 5}'), ("body", "name")),
    ],
)
def test_validation_errors_name_where_and_which_parameter(request_event, location):
    app = resolver()
    seen = []

    @app.exception_handler(RequestValidationError)
    def _capture(error: RequestValidationError):
        seen.extend(detail["loc"] for detail in error.errors())
        raise error

    with pytest.raises(RequestValidationError):
        app.resolve(request_event, {})
    assert seen and tuple(seen[0][:2]) == location, CHANGED + f"a validation error's loc: {seen}"
