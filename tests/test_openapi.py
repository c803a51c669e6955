"""The committed OpenAPI document is the one the handlers generate."""

import json

from conftest import ROOT, TEMPLATE
from goals_conversions_local.openapi import build_document, render

COMMITTED = ROOT / "docs" / "openapi.json"


def test_committed_openapi_document_matches_the_handlers():
    generated = render(build_document(TEMPLATE))
    assert COMMITTED.read_text() == generated, "docs/openapi.json is stale: run `make openapi` and commit it"


def test_document_describes_the_five_operations_with_their_success_statuses():
    document = json.loads(COMMITTED.read_text())
    successes = {
        (method.upper(), path): sorted(status for status in operation["responses"] if status.startswith("2"))
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    assert successes == {
        ("GET", "/api/goals-conversions"): ["200"],
        ("POST", "/api/goals-conversions"): ["201"],
        ("GET", "/api/goals-conversions/{conversion_id}"): ["200"],
        ("POST", "/api/goals-conversions/{conversion_id}"): ["200"],
        ("DELETE", "/api/goals-conversions/{conversion_id}"): ["204"],
    }
    assert "content" not in document["paths"]["/api/goals-conversions/{conversion_id}"]["delete"]["responses"]["204"]
