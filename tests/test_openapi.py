"""The committed OpenAPI document is the one the handlers generate."""

import json

import pytest

from conftest import ROOT, TEMPLATE
from goals_conversions_local.openapi import build_document, render

pytestmark = pytest.mark.no_database

COMMITTED = ROOT / "docs" / "openapi.json"


def test_committed_openapi_document_matches_the_handlers():
    generated = render(build_document(TEMPLATE))
    assert COMMITTED.read_text() == generated, "docs/openapi.json is stale: run `make openapi` and commit it"


def test_document_describes_every_operation_with_its_success_status():
    document = json.loads(COMMITTED.read_text())
    successes = {
        (method.upper(), path): sorted(status for status in operation["responses"] if status.startswith("2"))
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    expected = {
        ("GET", "/api/goals-conversions"): ["200"],
        ("POST", "/api/goals-conversions"): ["201"],
        ("GET", "/api/goals-conversions/statistics"): ["200"],
        ("GET", "/api/goals-conversions/changes"): ["200"],
        ("GET", "/api/goals-conversions/{conversion_id}"): ["200"],
        ("POST", "/api/goals-conversions/{conversion_id}"): ["200"],
        ("DELETE", "/api/goals-conversions/{conversion_id}"): ["204"],
        ("GET", "/api/goals"): ["200"],
        ("POST", "/api/goals"): ["201"],
        ("GET", "/api/goals/{goal_id}"): ["200"],
        ("POST", "/api/goals/{goal_id}"): ["200"],
        ("DELETE", "/api/goals/{goal_id}"): ["204"],
    }
    # Every path is served with a trailing slash too (tests/test_local_server.py): the same
    # operation, declared once.
    assert successes == expected
    assert "content" not in document["paths"]["/api/goals-conversions/{conversion_id}"]["delete"]["responses"]["204"]


def test_operations_have_the_ids_a_generated_client_names_its_functions_by():
    document = json.loads(COMMITTED.read_text())
    ids = {operation["operationId"] for operations in document["paths"].values() for operation in operations.values()}
    canonical = {"listConversions", "getConversion", "createConversion", "updateConversion", "deleteConversion"}
    canonical |= {"listChanges", "conversionStatistics"}
    canonical |= {"listGoals", "getGoal", "createGoal", "updateGoal", "deleteGoal"}
    assert ids == canonical


def test_each_body_is_described_as_json_and_as_two_named_forms():
    document = json.loads(COMMITTED.read_text())
    schemas = document["components"]["schemas"]
    bodies = {
        operation["operationId"]: operation["requestBody"]["content"]
        for operations in document["paths"].values()
        for operation in operations.values()
        if "requestBody" in operation
    }
    assert set(bodies) == {"createConversion", "updateConversion", "createGoal", "updateGoal"}
    for content in bodies.values():
        model = content["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert content["application/x-www-form-urlencoded"]["schema"] == {"$ref": f"#/components/schemas/{model}Form"}
        assert content["multipart/form-data"]["schema"] == {"$ref": f"#/components/schemas/{model}Multipart"}
        for form in (f"{model}Form", f"{model}Multipart"):
            assert set(schemas[form]["properties"]) == set(schemas[model]["properties"])


def test_an_update_offers_no_goal_attribute_and_documents_them_as_refused():
    schemas = json.loads(COMMITTED.read_text())["components"]["schemas"]
    goal_attributes = ["website_id", "type", "name", "path", "key", "is_enabled"]
    for name in ("ConversionUpdate", "ConversionUpdateForm", "ConversionUpdateMultipart"):
        assert set(schemas[name]["properties"]) == {
            "goal_id",
            "visitor_id",
            "session_id",
            "event_id",
            "value",
            "currency",
        }
        assert schemas[name]["propertyNames"] == {"not": {"enum": goal_attributes}}
