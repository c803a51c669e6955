"""The OpenAPI document, generated from the five handlers' Powertools resolvers."""

from __future__ import annotations

import json
import typing
from typing import Any

from conversions_core.goals import GoalType
from conversions_core.values import MAX_ID
from goals_conversions_local.runtime import Functions
from goals_conversions_local.template import Template

TITLE = "Goal Conversions API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Record goal conversions and list, filter, page through, fix and delete them. Every path is also"
    " served with a trailing slash: the same operation, not listed twice."
)
# A body model's form versions, as components of their own: `<Model>Form` and `<Model>Multipart`,
# the names a generated client gives its classes.
FORMS = (
    ("application/x-www-form-urlencoded", "Form", "an urlencoded form"),
    ("multipart/form-data", "Multipart", "a multipart form"),
)

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
        if not spec.routes:
            continue
        module = functions.module(spec)
        part = json.loads(
            module.app.get_openapi_json_schema(
                title=TITLE,
                version=VERSION,
                description=DESCRIPTION,
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
    _exact_numbers(document)
    _optional_parameters(document)
    _request_bodies(document)
    _importable_bodies(document)
    _shared_enum(document, "GoalType", list(typing.get_args(GoalType)), "A goal's type")
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
        "503": "The database is throttling or failing; retry after Retry-After seconds",
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
                wanted["413"] = "Body over 1 MB"
                wanted["415"] = "Unsupported Content-Type"
            for status, description in wanted.items():
                responses.setdefault(status, {"description": description, **error})
            for status, response in responses.items():  # an operation's own error statuses (410) too
                if status[0] in "45":
                    response.update(error)


def _exact_numbers(node: Any) -> None:
    """Powertools renders numeric bounds as floats: 2**63 - 1 becomes 2**63, 0 becomes 0.0.

    Bounds are integers here (ids and page numbers), and a float maximum of 2**63 would
    document an id the API refuses.
    """
    if isinstance(node, dict):
        for name, value in node.items():
            if name in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") and isinstance(value, float):
                node[name] = MAX_ID if value >= float(MAX_ID) else int(value)
            else:
                _exact_numbers(value)
    elif isinstance(node, list):
        for value in node:
            _exact_numbers(value)


def _optional_parameters(document: dict[str, Any]) -> None:
    """An optional parameter is sent or left out; it has no null value (Python's `X | None`)."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                variants = [v for v in schema.get("anyOf", []) if v.get("type") != "null"]
                if "anyOf" in schema and len(variants) == 1:
                    del schema["anyOf"]
                    schema.update(variants[0])


def _request_bodies(document: dict[str, Any]) -> None:
    """Bodies are read as multipart, urlencoded or JSON (see conversions_core.bodies), each form
    described by a component of its own (`<Model>Form`, `<Model>Multipart`): a client generator
    then names its classes after them, and tells them apart. A body whose fields are all optional
    may be left out. A 204 has no content."""
    schemas = document.get("components", {}).get("schemas", {})
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                if response.get("content") == {"application/json": {}}:
                    del response["content"]
            body = operation.get("requestBody")
            if not body:
                continue
            schema = body["content"]["application/json"]["schema"]
            name = schema.get("$ref", "").rsplit("/", 1)[-1]
            target = schemas.get(name, schema)
            body["required"] = bool(target.get("required"))
            for media_type, suffix, kind in FORMS:
                form = _form_schema(target, kind)
                if name:
                    schemas[name + suffix] = {**form, "title": name + suffix}
                    form = {"$ref": f"#/components/schemas/{name}{suffix}"}
                body["content"][media_type] = {"schema": form}


def _form_schema(schema: dict[str, Any], kind: str) -> dict[str, Any]:
    """A body model as a form: a field is one string, and an empty one means null (clear).

    An unknown field may be sent (it is ignored), but not as a list, which a form sends as a
    repeated name (refused: see conversions_core.bodies).
    """
    properties = {}
    for name, field in schema.get("properties", {}).items():
        if "anyOf" in field:
            variants = [{"const": ""} if v.get("type") == "null" else v for v in field["anyOf"]]
            field = {**field, "anyOf": variants}
        properties[name] = field
    description = (
        f"{schema.get('description', '')} Sent as {kind}: every field is text; integers in ASCII digits,"
        " booleans as true or false, 1 or 0 in any letter case; an empty field is a null, which clears."
    ).strip()
    return {**schema, "description": description, "properties": properties, "additionalProperties": {"type": "string"}}


def _importable_bodies(document: dict[str, Any]) -> None:
    """openapi-python-client (0.29, its issue #1451) types a body of several media types as
    optional (`| Unset = UNSET`) whatever `required` says, and imports `Unset` only when the body
    or a parameter is optional: a module for an operation with a required body and no optional
    parameter fails at import. Such a body is declared optional, as the client treats it anyway;
    the service answers a request without one with the 400 that names each missing field."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            body = operation.get("requestBody")
            optional_parameters = [p for p in operation.get("parameters", []) if not p.get("required")]
            if body and len(body["content"]) > 1 and not optional_parameters:
                body["required"] = False


def _shared_enum(document: dict[str, Any], name: str, values: list[str], description: str) -> None:
    """One component for an enum that bodies, responses and parameters share, so that a generated
    client has one class for it (not one per model and form)."""
    reference = {"$ref": f"#/components/schemas/{name}"}

    def replace(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("enum") == values and node.get("type") == "string" and "default" not in node:
                return reference
            return {key: replace(value) for key, value in node.items()}
        if isinstance(node, list):
            return [replace(value) for value in node]
        return node

    for key in ("paths", "components"):
        document[key] = replace(document[key])
    document["components"]["schemas"][name] = {
        "enum": values,
        "type": "string",
        "title": name,
        "description": description,
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
