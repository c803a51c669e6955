"""Unforeseen failures, and the base URL of pagination links."""

import dataclasses
import io
from types import SimpleNamespace

from conftest import api_event, invoke, services_for, services_of, with_conversions
from conversions_core.http import logger
from functions.get_conversion import app as get_app
from functions.list_conversions import app as list_app


def test_an_unforeseen_failure_is_a_generic_500_in_the_contract_format(tenant, monkeypatch):
    def explode(*_args, **_kwargs):
        raise RuntimeError("table xyz exploded at internal-id-42")

    broken = with_conversions(get_app, SimpleNamespace(get=explode))
    log = io.StringIO()
    previous = logger.registered_handler.setStream(log)
    with services_for(get_app, broken):
        result = invoke(get_app, api_event("get_conversion", headers=tenant.auth, conversion_id=1))
    assert result.status == 500
    assert result.headers["content-type"] == "application/json"
    assert result.json == {"errors": [{"title": "Internal server error", "status": 500}]}
    assert "RuntimeError" not in result.text and "internal-id-42" not in result.text
    logger.registered_handler.setStream(previous)
    logged = log.getvalue()
    assert "internal-id-42" in logged
    assert '"correlation_id":"c6af9ac6-7b61-11e6-9a41-93e8deadbeef"' in logged.replace(" ", "")


def test_public_base_url_replaces_the_called_host_in_links(tenant, monkeypatch):
    services = services_of(list_app)
    settings = dataclasses.replace(services.settings, public_base_url="https://api.example.com/v1/")
    with services_for(list_app, dataclasses.replace(services, settings=settings)):
        result = invoke(list_app, api_event("list_conversions", headers=tenant.auth, query={"order_type": "ASC"}))
    assert result.json["links"]["self"] == "https://api.example.com/v1/api/goals-conversions?order_type=ASC&page=1"


def test_links_on_the_default_stage_have_no_prefix(tenant):
    result = invoke(list_app, api_event("list_conversions", headers=tenant.auth, query={}))
    assert (
        result.json["links"]["first"]
        == "https://abc123.execute-api.eu-west-1.amazonaws.com/api/goals-conversions?page=1"
    )


def test_links_keep_the_prefix_of_a_named_stage(tenant):
    event = api_event("list_conversions", headers=tenant.auth, query={})
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/prod/api/goals-conversions"
    event["requestContext"]["stage"] = "prod"
    result = invoke(list_app, event)
    assert result.json["links"]["first"] == (
        "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/api/goals-conversions?page=1"
    )
