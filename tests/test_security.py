"""Security: no key or hash in the logs, tenant isolation on every endpoint, least-privilege IAM
that matches the calls each handler makes (cfn-lint runs in `make check`, part of `make test`)."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from conftest import (
    TEMPLATE,
    Tenant,
    api_event,
    goal_event,
    invoke,
    new_id,
    services_for,
    services_of,
    with_conversions,
)
from conversions_core import conversion_service, goal_service
from conversions_core.auth import hash_api_key
from conversions_core.errors import DatabaseBusyError
from conversions_core.repository import Repository, cascade
from conversions_core.repository.cascade import Cascade
from conversions_core.repository.counting import Counter
from conversions_core.repository.dynamo import Table
from functions.conversion_statistics import app as statistics_app
from functions.count_conversions.app import count_batch, failures
from functions.create_conversion import app as create_app
from functions.create_goal import app as create_goal_app
from functions.delete_conversion import app as delete_app
from functions.delete_goal import app as delete_goal_app
from functions.get_conversion import app as get_app
from functions.get_goal import app as get_goal_app
from functions.list_changes import app as changes_app
from functions.list_conversions import app as list_app
from functions.list_goals import app as list_goals_app
from functions.update_conversion import app as update_app
from functions.update_goal import app as update_goal_app
from goals_conversions_local.embedded import expire_items
from goals_conversions_local.streams import StreamPump

MODULES = {
    "ListConversionsFunction": list_app,
    "GetConversionFunction": get_app,
    "CreateConversionFunction": create_app,
    "UpdateConversionFunction": update_app,
    "DeleteConversionFunction": delete_app,
    "ConversionStatisticsFunction": statistics_app,
    "ListChangesFunction": changes_app,
    "ListGoalsFunction": list_goals_app,
    "GetGoalFunction": get_goal_app,
    "CreateGoalFunction": create_goal_app,
    "UpdateGoalFunction": update_goal_app,
    "DeleteGoalFunction": delete_goal_app,
}


# -- logs ---------------------------------------------------------------------------------------


@pytest.fixture
def captured_logs():
    """Everything the service's Powertools Logger and Powertools itself log, at DEBUG."""
    from conversions_core.http import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    targets = [logging.getLogger(logger.service), logging.getLogger("aws_lambda_powertools")]
    levels = [target.level for target in targets]
    for target in targets:
        target.addHandler(handler)
        target.setLevel(logging.DEBUG)
    yield stream
    for target, level in zip(targets, levels, strict=True):
        target.removeHandler(handler)
        target.setLevel(level)


def test_no_api_key_or_key_hash_is_ever_logged(captured_logs, make_tenant, monkeypatch):
    tenant = make_tenant()
    limited = make_tenant(rate_limit=1)
    disabled = make_tenant(status="disabled")
    auth = tenant.auth
    statuses = []

    def call(module: Any, event: dict[str, Any]) -> None:
        statuses.append(invoke(module, event).status)

    created = invoke(create_app, api_event("create_conversion", headers=auth, form={"goal_id": tenant.goal_id}))
    conversion_id = created.json["data"]["id"]
    call(get_app, api_event("get_conversion", headers=auth, conversion_id=conversion_id))
    call(list_app, api_event("list_conversions", headers=auth, query={"goal_id": tenant.goal_id}))
    call(list_app, api_event("list_conversions", headers=auth, query={"page": 0}))
    call(update_app, api_event("update_conversion", headers=auth, conversion_id=conversion_id, form={"name": "x"}))
    key = {**auth, "Idempotency-Key": "log-test"}
    call(create_app, api_event("create_conversion", headers=key, json_body={"goal_id": tenant.goal_id}))
    call(create_app, api_event("create_conversion", headers=key, json_body={"goal_id": tenant.second_goal_id}))
    call(create_app, api_event("create_conversion", headers=auth, raw_body="[1]", content_type="application/json"))
    call(get_app, api_event("get_conversion", headers=disabled.auth, conversion_id=conversion_id))
    call(get_app, api_event("get_conversion", headers={"Authorization": "Bearer not-a-key"}, conversion_id=1))
    for _ in range(2):
        call(get_app, api_event("get_conversion", headers=limited.auth, conversion_id=conversion_id))
    # A failure nobody foresaw (500) and a database that stays busy (503).
    with services_for(get_app, with_conversions(get_app, SimpleNamespace(get=_explode))):
        call(get_app, api_event("get_conversion", headers=auth, conversion_id=conversion_id))
    with services_for(delete_app, with_conversions(delete_app, SimpleNamespace(delete=_busy))):
        call(delete_app, api_event("delete_conversion", headers=auth, conversion_id=conversion_id))
    call(delete_app, api_event("delete_conversion", headers=auth, conversion_id=conversion_id))
    assert {200, 204, 400, 401, 404, 409, 429, 500, 503} <= set(statuses), statuses

    logs = captured_logs.getvalue()
    assert "Unhandled error" in logs and logs.count("\n") > 5, "the capture saw nothing"
    for who in (tenant, limited, disabled):
        assert who.api_key not in logs
        assert hash_api_key(who.api_key) not in logs
    assert hash_api_key("not-a-key") not in logs and "not-a-key" not in logs


def _explode(*_: Any) -> None:
    raise RuntimeError("unexpected")


def _busy(*_: Any) -> None:
    raise DatabaseBusyError()


# -- tenant isolation ---------------------------------------------------------------------------


def _missing() -> int:
    return 10**12 + new_id()


def _same(mine: Any, missing: Any, theirs_id: int, missing_id: int) -> None:
    """B's answer about A's id is exactly its answer about an id that does not exist."""
    assert mine.status == missing.status
    assert mine.text.replace(str(theirs_id), "<id>") == missing.text.replace(str(missing_id), "<id>")


def test_another_users_data_is_exactly_as_if_it_did_not_exist(make_tenant):
    a, b = make_tenant(), make_tenant()
    refs = {"visitor_id": a.visitor_id, "session_id": a.session_id, "event_id": a.event_id}
    theirs = invoke(
        create_app, api_event("create_conversion", headers=a.auth, json_body={"goal_id": a.goal_id, **refs})
    )
    assert theirs.status == 201
    a_conversion = theirs.json["data"]
    mine = invoke(create_app, api_event("create_conversion", headers=b.auth, form={"goal_id": b.goal_id}))
    b_conversion_id = mine.json["data"]["id"]
    checked = 0

    def compare(module: Any, build: Any, theirs_id: int) -> None:
        nonlocal checked
        missing_id = _missing()
        _same(invoke(module, build(theirs_id)), invoke(module, build(missing_id)), theirs_id, missing_id)
        checked += 1

    # Read, update, delete A's conversion.
    compare(get_app, lambda i: api_event("get_conversion", headers=b.auth, conversion_id=i), a_conversion["id"])
    for body in ({"goal_id": b.goal_id}, {}, {"visitor_id": ""}):
        compare(
            update_app,
            lambda i, body=body: api_event("update_conversion", headers=b.auth, conversion_id=i, json_body=body),
            a_conversion["id"],
        )
    compare(delete_app, lambda i: api_event("delete_conversion", headers=b.auth, conversion_id=i), a_conversion["id"])
    # List and count by A's goal or website.
    for name, theirs_id in (("goal_id", a.goal_id), ("website_id", a.website_id)):
        compare(
            list_app, lambda i, name=name: api_event("list_conversions", headers=b.auth, query={name: i}), theirs_id
        )
    compare(
        list_app,
        lambda i: api_event("list_conversions", headers=b.auth, query={"goal_id": i, "website_id": b.website_id}),
        a.goal_id,
    )
    # Reference A's goal, visitor, session or event in a create or an update of B's own.
    compare(create_app, lambda i: api_event("create_conversion", headers=b.auth, form={"goal_id": i}), a.goal_id)
    compare(update_app, lambda i: _update(b, b_conversion_id, {"goal_id": i}), a.goal_id)
    for name, theirs_id in refs.items():
        compare(
            create_app,
            lambda i, name=name: api_event("create_conversion", headers=b.auth, form={"goal_id": b.goal_id, name: i}),
            theirs_id,
        )
        compare(update_app, lambda i, name=name: _update(b, b_conversion_id, {name: i}), theirs_id)
    # B's own list and counts hold only B's conversions.
    listed = invoke(list_app, api_event("list_conversions", headers=b.auth, query={"results_per_page": 1000}))
    assert [c["id"] for c in listed.json["data"]] == [b_conversion_id] and listed.json["meta"]["total"] == 1
    # A's conversion is untouched, as A sees it.
    again = invoke(get_app, api_event("get_conversion", headers=a.auth, conversion_id=a_conversion["id"]))
    assert again.json["data"] == a_conversion
    assert checked == 16


def test_idempotency_keys_are_scoped_to_the_user(make_tenant):
    a, b = make_tenant(), make_tenant()
    key = f"shared-{new_id()}"
    first = invoke(
        create_app,
        api_event("create_conversion", headers={**a.auth, "Idempotency-Key": key}, form={"goal_id": a.goal_id}),
    )
    second = invoke(
        create_app,
        api_event("create_conversion", headers={**b.auth, "Idempotency-Key": key}, form={"goal_id": b.goal_id}),
    )
    assert first.status == second.status == 201
    assert second.json["data"]["user_id"] == b.user_id != first.json["data"]["user_id"]


def _update(tenant: Tenant, conversion_id: int, body: dict[str, Any]) -> dict[str, Any]:
    return api_event("update_conversion", headers=tenant.auth, conversion_id=conversion_id, json_body=body)


# -- IAM ----------------------------------------------------------------------------------------

TRANSACTION_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
# Granted but not necessarily called: Powertools reads the idempotency record with GetItem only
# when a refused put did not return the existing record (ReturnValuesOnConditionCheckFailure).
MAY_BE_UNUSED = {("CreateConversionFunction", "IdempotencyTable", "dynamodb:GetItem")}
TABLE_NAMES = {name: name for name in TEMPLATE.tables()}
# The counting function may also send a batch that keeps failing to its on-failure queue (Lambda
# does, with the function's role): not a DynamoDB call, so not recorded.
QUEUES = {"CountingFailuresQueue"}
# Granted and not DynamoDB: the feed's cursor key (read at init), the events' bus.
OTHER_RESOURCES = {"CursorKeySecret", "ConversionEventsBus"}


def granted(function: str) -> set[tuple[str, str]]:
    """(resource, action) pairs of a function's policy; resources as Table or Table/index/Name."""
    policies = TEMPLATE.resources[function]["Properties"]["Policies"]
    pairs = set()
    for policy in policies:
        assert set(policy) == {"Statement"}, f"{function}: use explicit statements, not {set(policy)}"
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow" and "Condition" not in statement
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for action in actions:
                assert "*" not in action, f"{function}: wildcard action {action}"
                for resource in resources:
                    pairs.add((_resource_name(function, resource), action))
    return pairs


def _resource_name(function: str, resource: Any) -> str:
    assert resource != "*" and isinstance(resource, dict), f"{function}: resource {resource!r}"
    if "Ref" in resource:
        assert resource["Ref"] in OTHER_RESOURCES, f"{function}: {resource}"
        return resource["Ref"]
    if "Fn::If" in resource:  # the stack's bus, or the existing one a parameter names: the same grant
        condition, created, existing = resource["Fn::If"]
        assert condition == "CreateEventBus" and created == {"Fn::GetAtt": ["ConversionEventsBus", "Arn"]}
        assert existing["Fn::Sub"].endswith(":event-bus/${EventBusName}"), f"{function}: {resource}"
        return "ConversionEventsBus"
    if "Fn::GetAtt" in resource:
        name, attribute = resource["Fn::GetAtt"]
        assert attribute == "Arn" and name in TABLE_NAMES.keys() | QUEUES | OTHER_RESOURCES, f"{function}: {resource}"
        return name
    text = resource["Fn::Sub"]
    assert text.startswith("${") and "*" not in text, f"{function}: {resource}"
    name, rest = text[2:].split(".Arn}", 1)
    assert name in TABLE_NAMES and rest.startswith("/index/"), f"{function}: {resource}"
    return name + rest


class CallRecorder:
    """The (resource, IAM action) pairs a client's calls need, the tables named as in the
    template (the test module's tables carry a prefix)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.used: set[tuple[str, str]] = set()

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name == "TransactWriteItems":
            for item in params["TransactItems"]:
                ((kind, body),) = item.items()
                self._add(body["TableName"], TRANSACTION_ACTIONS[kind])
        elif model.name in ("BatchGetItem", "BatchWriteItem"):
            for table in params["RequestItems"]:
                self._add(table, model.name)
        else:
            table = params["TableName"] + (f"/index/{params['IndexName']}" if params.get("IndexName") else "")
            self._add(table, model.name)

    def _add(self, table: str, action: str) -> None:
        self.used.add((table.removeprefix(self.prefix), f"dynamodb:{action}"))


@pytest.fixture
def recorders(tables):
    prefix = tables["DATA_TABLE_NAME"].removesuffix("DataTable")
    recorders = {}
    for function, module in MODULES.items():
        recorder = CallRecorder(prefix)
        services_of(module).client.meta.events.register("before-parameter-build.dynamodb", recorder)
        recorders[function] = recorder
    yield recorders
    for function, module in MODULES.items():
        events = services_of(module).client.meta.events
        events.unregister("before-parameter-build.dynamodb", recorders[function])


def test_each_function_is_granted_exactly_the_calls_it_makes(recorders, make_tenant):
    tenant = make_tenant(rate_limit=100)
    auth = tenant.auth
    refs = {"visitor_id": tenant.visitor_id, "session_id": tenant.session_id, "event_id": tenant.event_id}
    # Every path of every handler: with and without references, Idempotency-Key (kept, reused,
    # and released after a failed create), a move that changes the listed key, every list scope.
    created = invoke(
        create_app, api_event("create_conversion", headers=auth, json_body={"goal_id": tenant.goal_id, **refs})
    )
    conversion_id = created.json["data"]["id"]
    keyed = {**auth, "Idempotency-Key": f"iam-{tenant.user_id}"}
    for _ in range(2):  # recorded, then replayed from the record
        invoke(create_app, api_event("create_conversion", headers=keyed, json_body={"goal_id": tenant.goal_id}))
    failed = {**auth, "Idempotency-Key": f"iam-failed-{tenant.user_id}"}
    assert (
        invoke(create_app, api_event("create_conversion", headers=failed, json_body={"goal_id": _missing()})).status
        == 404
    )
    moved = invoke(update_app, _update(tenant, conversion_id, {"goal_id": tenant.second_goal_id, **refs}))
    assert moved.status == 200
    cleared = {name: None for name in refs}
    moved = invoke(update_app, _update(tenant, conversion_id, {"goal_id": tenant.lightweight_goal_id, **cleared}))
    assert moved.status == 200  # to another website: the listed item's key changes
    for query in (
        {},
        {"website_id": tenant.website_id},
        {"goal_id": tenant.goal_id},
        {"datetime_start": "2026-01-01T10:30"},
    ):
        assert invoke(list_app, api_event("list_conversions", headers=auth, query=query)).status == 200
    assert invoke(get_app, api_event("get_conversion", headers=auth, conversion_id=conversion_id)).status == 200
    assert invoke(delete_app, api_event("delete_conversion", headers=auth, conversion_id=conversion_id)).status == 204
    # Statistics with a filter: the key and the website (GetItem), a run of days (Query), the hours
    # and quarter-hours around Kolkata's midnights (BatchGetItem).
    statistics = {
        "website_id": tenant.website_id,
        "datetime_start": "2026-06-01 00:00:00",
        "datetime_end": "2026-06-30 23:59:59",
        "timezone": "Asia/Kolkata",
    }
    assert invoke(statistics_app, api_event("conversion_statistics", headers=auth, query=statistics)).status == 200
    # Months of Kolkata: each boundary's hours and quarter-hours a month apart (BatchGetItem).
    months = {"datetime_start": "2025-01-01 00:00:00", "datetime_end": "2026-12-31 23:59:59", "interval": "month"}
    query = {**months, "timezone": "Asia/Kolkata"}
    assert invoke(statistics_app, api_event("conversion_statistics", headers=auth, query=query)).status == 200
    # Goals: created (website and key checked), listed, read, moved to another website with a
    # new key (the key item moves), deleted.
    body = {"website_id": tenant.website_id, "type": "custom", "name": "IAM", "key": "iam"}
    goal = invoke(create_goal_app, api_event("create_goal", headers=auth, json_body=body)).json["data"]
    assert invoke(list_goals_app, api_event("list_goals", headers=auth, query={})).status == 200
    assert invoke(get_goal_app, goal_event("get_goal", tenant, goal["id"])).status == 200
    change = {"website_id": tenant.lightweight_website_id, "key": "iam-2"}
    assert invoke(update_goal_app, goal_event("update_goal", tenant, goal["id"], json_body=change)).status == 200
    assert invoke(delete_goal_app, goal_event("delete_goal", tenant, goal["id"])).status == 204
    # The changes feed: the key, then the caller's feed partition (the cursor key is read at init).
    assert invoke(changes_app, api_event("list_changes", headers=auth, query={"limit": 5})).status == 200

    for function, recorder in recorders.items():
        allowed = {(r, a) for r, a in granted(function) if r not in OTHER_RESOURCES}
        assert recorder.used <= allowed, f"{function} calls what it may not: {sorted(recorder.used - allowed)}"
        unused = {(r, a) for r, a in allowed - recorder.used if (function, r, a) not in MAY_BE_UNUSED}
        assert not unused, f"{function} is granted what it never calls: {sorted(unused)}"


def test_read_functions_hold_no_write_on_conversion_data():
    writes = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
    for function in ("ListConversionsFunction", "GetConversionFunction"):
        for resource, action in granted(function):
            assert action not in writes or resource == "RateLimitTable", (function, resource, action)


def test_tables_holding_data_are_retained_and_recoverable():
    data = TEMPLATE.resources["DataTable"]
    assert data["DeletionPolicy"] == data["UpdateReplacePolicy"] == "Retain"
    assert data["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    for disposable in ("RateLimitTable", "IdempotencyTable"):
        assert "TimeToLiveSpecification" in TEMPLATE.resources[disposable]["Properties"]


def test_the_counting_function_is_granted_exactly_the_calls_it_makes(tables, make_tenant, monkeypatch):
    """The stream's consumer, through its handler code on a recorded client: counts (a retried
    batch reads the markers), a TTL deletion, a goal moved over two invocations (a JOB# item), a
    goal deleted, and a conversion created as its goal went away."""
    name = tables["DATA_TABLE_NAME"]
    client = boto3.client("dynamodb")
    recorder = CallRecorder(name.removesuffix("DataTable"))
    client.meta.events.register("before-parameter-build.dynamodb", recorder)
    table = Table(client, name)
    monkeypatch.setattr(cascade, "PAGE", 2)
    monkeypatch.setattr(cascade, "PAGES_PER_INVOCATION", 1)
    batches: list[dict[str, Any]] = []
    pump = StreamPump(TEMPLATE, table_name=name, embedded=True)  # in-process on the embedded moto only
    pump.invoke = lambda event: batches.append(event) or count_batch(event, Counter(table), Cascade(table), failures)

    tenant = make_tenant()
    repository = Repository.build(boto3.client("dynamodb"), name)
    user = repository.accounts.user_by_key_hash(hash_api_key(tenant.api_key))
    for _ in range(3):
        conversion_service.create(repository, user, tenant.goal_id, {})
    old = Repository.build(
        boto3.client("dynamodb"), name, clock=lambda: datetime.now(UTC) - timedelta(days=2), retention_days=1
    )
    conversion_service.create(old, user, tenant.second_goal_id, {})
    pump.drain()
    count_batch(batches[-1], Counter(table), Cascade(table), failures)  # delivered again
    assert expire_items(name) >= 1
    goal_service.update(repository, user, tenant.goal_id, {"website_id": tenant.lightweight_website_id})
    pump.drain()
    repository.goals.delete(user, tenant.goal_id)
    pump.drain()

    others = QUEUES | OTHER_RESOURCES
    allowed = {(resource, action) for resource, action in granted("CountConversionsFunction") if resource not in others}
    assert granted("CountConversionsFunction") - allowed == {
        ("CountingFailuresQueue", "sqs:SendMessage"),
        ("ConversionEventsBus", "events:PutEvents"),
    }
    assert recorder.used <= allowed, f"calls what it may not: {sorted(recorder.used - allowed)}"
    assert recorder.used == allowed, f"is granted what it never calls: {sorted(allowed - recorder.used)}"
