"""Unforeseen failures, and the base URL of pagination links."""

import dataclasses
import io

from conftest import api_event, invoke
from conversions_core.http import logger
from conversions_core.wiring import build_services
from functions.get_conversion import app as get_app
from functions.list_conversions import app as list_app


def test_an_unforeseen_failure_is_a_generic_500_in_the_contract_format(tenant, monkeypatch):
    def explode(*_args, **_kwargs):
        raise RuntimeError("table xyz exploded at internal-id-42")

    monkeypatch.setattr(get_app.endpoint.load().services.repository.conversions, "get", explode)
    log = io.StringIO()
    previous = logger.registered_handler.setStream(log)
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
    endpoint = list_app.endpoint.load()
    settings = dataclasses.replace(endpoint.services.settings, public_base_url="https://api.example.com/v1/")
    monkeypatch.setattr(endpoint, "services", build_services(settings, endpoint.services.client))
    result = invoke(list_app, api_event("list_conversions", headers=tenant.auth, query={"order_type": "ASC"}))
    assert result.json["links"]["self"] == "https://api.example.com/v1/api/goals-conversions?order_type=ASC&page=1"


def test_links_keep_the_stage_prefix_of_the_default_api_url(tenant):
    result = invoke(list_app, api_event("list_conversions", headers=tenant.auth, query={}))
    assert result.json["links"]["first"] == (
        "https://abc123.execute-api.eu-west-1.amazonaws.com/Prod/api/goals-conversions?page=1"
    )
