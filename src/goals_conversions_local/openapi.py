"""The OpenAPI document, generated from the five handlers' Powertools resolvers."""

from __future__ import annotations

import json
from typing import Any

from goals_conversions_local.runtime import Functions
from goals_conversions_local.template import Template

TITLE = "Goal Conversions API"
VERSION = "1.0.0"

ERROR_SCHEMA = {
    "type": "object",
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["title", "status"],
                "properties": {
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "source": {"type": "object", "properties": {"parameter": {"type": "string"}}},
                },
            },
        }
    },
}


def build_document(template: Template | None = None, functions: Functions | None = None) -> dict[str, Any]:
    """One document for all functions: each handler module's resolver describes its route."""
    template = template or Template()
    functions = functions or Functions(template)
    document: dict[str, Any] = {}
    for spec in template.functions():
        module = functions.module(spec)
        part = json.loads(
            module.app.get_openapi_json_schema(
                title=TITLE,
                version=VERSION,
                description="Record goal conversions and list, filter, page through, fix and delete them.",
                security_schemes={"bearerAuth": {"type": "http", "scheme": "bearer"}},
                security=[{"bearerAuth": []}],
            )
        )
        if not document:
            document = part
            continue
        for path, operations in part.get("paths", {}).items():
            document["paths"].setdefault(path, {}).update(operations)
        schemas = part.get("components", {}).get("schemas", {})
        document.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
    _contract_errors(document)
    return document


def _contract_errors(document: dict[str, Any]) -> None:
    """Powertools documents 422 validation errors; this API answers 400 in its own format."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        components.pop(name, None)
    components["Errors"] = ERROR_SCHEMA
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}}}
    statuses = {
        "400": "Invalid parameter or body",
        "401": "Missing or invalid API key",
        "404": "Not found, or not the caller's",
        "429": "Rate limit exceeded",
    }
    for operations in document.get("paths", {}).values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if "204" in responses:
                responses["204"].pop("content", None)  # no body
            wanted = dict(statuses)
            if method == "post":
                wanted["409"] = "Conflict (Idempotency-Key reuse or concurrent change)"
                wanted["415"] = "Unsupported Content-Type"
            for status, description in wanted.items():
                responses.setdefault(status, {"description": description, **error})


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
