"""Schemathesis against the local server, with the OpenAPI document generated from the handlers.

Every response must conform to the document (status, content type, headers, body schema), no
request may get a 5xx, schema-violating requests must be refused, and schema-valid ones
accepted except for the contract's cross-field rules, which a schema cannot express. The run
is bounded by a fixed number of examples per operation and phase, and prints how many cases it
ran.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.core import NOT_SET
from tables import local_server, own_tables

from conftest import FIGURES, TEMPLATE, Tenant
from conversions_core.feed import CURSOR_RULE
from conversions_core.repository import Repository
from conversions_core.statistics import MAX_INTERVALS, TIMEZONE_RULE
from goals_conversions_local.openapi import build_document

pytestmark = [pytest.mark.slow, pytest.mark.serial]
MAX_EXAMPLES = 60
SEED = 20261126

# 400s a schema-valid request may get: rules between fields, or on data, that no schema states.
CROSS_FIELD_RULES = (
    ("datetime_start", "datetime_start must not be after datetime_end"),
    ("session_id", "session_id does not belong to the given visitor_id"),
    ("event_id", "event_id does not belong to the given session_id"),
    ("visitor_id", "visitor_id is only accepted when the goal's website has tracking_mode normal"),
    ("session_id", "session_id is only accepted when the goal's website has tracking_mode normal"),
    ("event_id", "event_id is only accepted when the goal's website has tracking_mode normal"),
    # Goals: what a goal's type asks of its other fields.
    ("path", "path is only for pageview and scroll goals"),
    ("path", "path is required for pageview goals"),
    ("path", "path is required for scroll goals"),
    ("scroll_percentage", "scroll_percentage (1 to 100) is required for scroll goals"),
    ("scroll_percentage", "scroll_percentage is only for scroll goals"),
    ("key", "key is generated for pageview goals; send a key for custom goals only"),
    ("key", "key is generated for scroll goals; send a key for custom goals only"),
    # Statistics: the range against the interval, and zone names that fit the pattern but name no zone.
    ("datetime_end", "datetime_end must be at most 366 days after datetime_start for hourly intervals"),
    ("datetime_end", f"the range may hold at most {MAX_INTERVALS} days"),
    ("datetime_end", f"the range may hold at most {MAX_INTERVALS} months"),
    ("timezone", TIMEZONE_RULE),
    # Value: a value against its currency's digits, and value and currency sent together.
    ("value", "value is required with currency"),
    ("currency", "currency is required with value (there is no default currency to take)"),
    ("currency", "currency cannot be set while value is cleared: send both, or an empty value"),
    ("currency", "currency cannot be cleared alone: send an empty value to clear both"),
    # The changes feed: a cursor is the service's own, signed; no schema can generate one.
    ("cursor", CURSOR_RULE),
)
# The same, with a currency in the title.
CROSS_FIELD_PATTERNS = (
    ("value", re.compile(r"value may have at most \d digits after the point for [A-Z]{3}")),
    ("value", re.compile(r"value must be a whole amount for [A-Z]{3}, which has no minor unit")),
    ("currency", re.compile(r"the value [0-9.]+ has too many digits for [A-Z]{3}: send a value too")),
)


# Tables of its own: the run makes hundreds of conversions and goals, which no other test should see.
ENVIRONMENT = own_tables(boto3.client("dynamodb"), "Fuzz")


def _fuzz_tenant() -> Tenant:
    """A tenant with a few conversions, so that small ids are sometimes the caller's."""
    tenant = Tenant(Repository.build(boto3.client("dynamodb"), ENVIRONMENT["DATA_TABLE_NAME"]))
    tenant.import_conversions(
        [{"goal_id": tenant.goal_id, "datetime": f"2026-01-0{day} 10:00:00"} for day in range(1, 6)]
    )
    return tenant


# The key is in the configuration, not added per call, so that schemathesis knows a request it
# generates without the header (to see it refused) really goes without it.
FUZZ_TENANT = _fuzz_tenant()
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "headers": FUZZ_TENANT.auth,
        "generation": {"max-examples": MAX_EXAMPLES},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True}},
        # Replaced by `cross_field_rules_only` below, which knows the contract's cross-field rules.
        "checks": {"positive_data_acceptance": {"enabled": False}},
        "operations": [
            {
                # Another method on /statistics is the {conversion_id} route's, as API Gateway
                # routes it too: a 404 for a conversion named "statistics", not a 405.
                "include-path": "/api/goals-conversions/statistics",
                "checks": {"unsupported_method": {"enabled": False}, "allow_header_conformance": {"enabled": False}},
            },
            {
                "include-path": "/api/goals-conversions/changes",  # the same, for /changes
                "checks": {"unsupported_method": {"enabled": False}, "allow_header_conformance": {"enabled": False}},
            },
        ],
    }
)

# The paths with a trailing slash are the same operations: fuzzing them again proves nothing more.
schema = schemathesis.openapi.from_dict(build_document(TEMPLATE), config=CONFIG).exclude(path_regex=r"/$")

_cases: dict[str, int] = {}
_statuses: dict[int, int] = {}
_lock = threading.Lock()


def written_as_float(case: Any, parameter: str | None) -> bool:
    """JSON Schema counts 1.0 as an integer; the contract does not (an integer is written as one),
    which the document says in words. Such a value is refused, rightly."""
    body = case.body if isinstance(case.body, dict) else {}
    return isinstance(body.get(parameter), float)


def cross_field_rules_only(ctx: Any, response: Any, case: Any) -> bool | None:
    """A schema-valid request gets no 400 but for the rules listed in CROSS_FIELD_RULES."""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code != 400:
        return None
    errors = response.json().get("errors", [])
    allowed = set(CROSS_FIELD_RULES)
    # A body the document leaves optional for a client generator's sake (goals_conversions_local.openapi):
    # without one, each required field is missing.
    missing = {
        (e.get("source", {}).get("parameter"), e["title"]) for e in errors if e["title"].endswith(" is required")
    }
    if case.body is NOT_SET:
        allowed |= missing
    rejected = [
        e
        for e in errors
        if (e.get("source", {}).get("parameter"), e["title"]) not in allowed
        and not written_as_float(case, e.get("source", {}).get("parameter"))
        and not any(
            e.get("source", {}).get("parameter") == name and pattern.fullmatch(e["title"])
            for name, pattern in CROSS_FIELD_PATTERNS
        )
    ]
    assert errors and not rejected, f"schema-valid request rejected: {response.text}"
    return None


@pytest.fixture(scope="module", autouse=True)
def report_cases():
    yield
    per_operation = ", ".join(f"{label}: {n}" for label, n in sorted(_cases.items()))
    statuses = ", ".join(f"{status}: {n}" for status, n in sorted(_statuses.items()))
    FIGURES.append(f"schemathesis: {sum(_cases.values())} cases ({per_operation}); responses by status: {statuses}")


@pytest.fixture(scope="module")
def fuzz_api() -> Iterator[str]:
    with local_server(ENVIRONMENT) as (url, _):
        yield url


@schema.parametrize()
def test_api_conforms_to_its_openapi_document(case, fuzz_api):
    response = case.call_and_validate(
        base_url=fuzz_api,
        additional_checks=[cross_field_rules_only],
        timeout=30,
    )
    with _lock:
        _cases[case.operation.label] = _cases.get(case.operation.label, 0) + 1
        _statuses[response.status_code] = _statuses.get(response.status_code, 0) + 1
    assert response.status_code < 500
