"""Injected DynamoDB faults on every step of every request: retried, then a clean 503 or 409.

Faults are injected at the HTTP layer of the handler's own boto3 client (botocore's
`before-send` event), so botocore's standard retry mode really retries them with its backoff;
its sleeps are recorded instead of slept. Each run uses its own client (the retry quota is per
client) and tables of its own, small enough to snapshot whole before and after each fault.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections import Counter
from typing import Any

import boto3
import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError
from tables import audit, changed, snapshot

from conftest import (
    FIGURES,
    PUMPS,
    TEMPLATE,
    LambdaContext,
    Result,
    Tenant,
    api_event,
    counting_pump,
    invoke,
    services_for,
)
from conversions_core.repository import Repository
from conversions_core.repository.dynamo import RETRIES, Deadline, dynamodb_client
from conversions_core.services import Services
from conversions_core.settings import Settings
from functions.create_conversion import app as create_app
from functions.delete_conversion import app as delete_app
from functions.get_conversion import app as get_app
from functions.list_conversions import app as list_app
from functions.update_conversion import app as update_app

MAX_ATTEMPTS = RETRIES + 1  # botocore's standard mode: the first attempt and RETRIES more
ERROR_TYPE = "com.amazonaws.dynamodb.v20120810#"
FAULTS = {
    "throttled": (400, "ProvisionedThroughputExceededException", "The level of configured provisioned throughput"),
    "server error": (500, "InternalServerError", "Internal server error"),
    "unavailable": (503, "ServiceUnavailable", "Service unavailable"),
}
# The embedded database answers one request at a time: the local timeout (embedded.py), so that
# only injected faults fail.
TIMEOUT = float(os.environ["DYNAMODB_TIMEOUT_SECONDS"])
tally: Counter[str] = Counter()
runs = [0]


class _Body:
    def __init__(self, data: bytes):
        self._data = data

    def stream(self, **_: Any):
        yield self._data


def error_response(status: int, code: str, message: str, **extra: Any) -> AWSResponse:
    body = json.dumps({"__type": ERROR_TYPE + code, "message": message, **extra}).encode()
    return AWSResponse("http://injected", status, {"Content-Type": "application/x-amz-json-1.0"}, _Body(body))


def conflict(reason: str) -> AWSResponse:
    return error_response(
        400,
        "TransactionCanceledException",
        f"Transaction cancelled, please refer cancellation reasons for specific reasons [None, {reason}]",
        CancellationReasons=[{"Code": "None"}, {"Code": reason, "Message": reason}],
    )


class Injector:
    """Fails the `target`-th DynamoDB call of a request: its first `times` attempts, or all of
    them; with `persist`, every later call of the same operation too (a conflict that lasts)."""

    def __init__(self, target: int | None = None, fault: Any = None, times: int | None = None, persist: bool = False):
        self.target, self.fault, self.times, self.persist = target, fault, times, persist
        self.calls: list[tuple[str, str]] = []
        self.attempts: Counter[int] = Counter()
        self.sleeps: list[float] = []

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build.dynamodb", self._before_call)
        client.meta.events.register("before-send.dynamodb", self._before_send)

    def _before_call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        table = params.get("TableName") or next(iter(params.get("RequestItems", {})), "")
        if model.name == "TransactWriteItems":
            table = next(iter(params["TransactItems"][0].values()))["TableName"]
        self.calls.append((model.name, table))

    def _before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        current = len(self.calls) - 1
        self.attempts[current] += 1
        if self.target is None or current < self.target:
            return None
        if current > self.target and not (self.persist and self.calls[current][0] == self.calls[self.target][0]):
            return None
        if self.times is not None and self.attempts[current] > self.times:
            return None
        tally[self.calls[current][0]] += 1
        if self.fault == "connection":
            raise EndpointConnectionError(endpoint_url="http://injected")
        if isinstance(self.fault, AWSResponse):
            return self.fault
        return error_response(*FAULTS[self.fault])


class _Clock:
    """botocore.endpoint's `time`, with sleeps recorded instead of slept."""

    def __init__(self, injector: Injector):
        self._injector = injector

    def sleep(self, seconds: float) -> None:
        self._injector.sleeps.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class Sandbox:
    """Tables of the template's design for one run, so that whole-table snapshots stay small."""

    _numbers = itertools.count(1)

    def __init__(self) -> None:
        self.client = boto3.client("dynamodb")
        prefix = f"Faults{next(self._numbers)}"
        self.settings = Settings(
            data_table_name=f"{prefix}DataTable",
            rate_limit_table_name=f"{prefix}RateLimitTable",
            idempotency_table_name=f"{prefix}IdempotencyTable",
            default_rate_limit_per_minute=60,
            public_base_url=None,
            dynamodb_timeout_seconds=TIMEOUT,
        )
        for name, arguments in TEMPLATE.tables().items():
            self.client.create_table(**{**arguments, "TableName": prefix + name})
        self.repository = Repository.build(self.client, self.settings.data_table_name)
        self.pump = counting_pump(self.settings.data_table_name)
        PUMPS.append(self.pump)
        # A rate limit, so that the counter's UpdateItem is one of the steps.
        self.tenant = Tenant(self.repository, rate_limit=1000)

    def snapshot(self) -> dict[tuple[str, str], str]:
        return snapshot(self.client, self.settings.data_table_name, self.settings.idempotency_table_name)

    def audit(self) -> dict[str, int]:
        return audit(self.repository, self.client, self.settings.data_table_name, self.tenant)

    def close(self) -> None:
        PUMPS.remove(self.pump)
        for table in (self.settings.data_table_name, self.settings.rate_limit_table_name):
            self.client.delete_table(TableName=table)
        self.client.delete_table(TableName=self.settings.idempotency_table_name)


@pytest.fixture
def sandboxes():
    made: list[Sandbox] = []

    def make() -> Sandbox:
        made.append(Sandbox())
        return made[-1]

    yield make
    for sandbox in made:
        sandbox.close()


@pytest.fixture(scope="module", autouse=True)
def report_faults():
    yield
    line = ", ".join(f"{op}: {n}" for op, n in sorted(tally.items()))
    FIGURES.append(f"faults: {runs[0]} requests run with a fault injected; failed attempts by operation: {line}")


def run(monkeypatch, sandbox: Sandbox, injector: Injector, module: Any, event: dict[str, Any]):
    """Invoke `module`'s handler on the sandbox's tables with a fresh client carrying the injector."""
    client = dynamodb_client(TIMEOUT)
    injector.attach(client)
    runs[0] += injector.target is not None
    services = Services.from_env(sandbox.settings, client)
    with monkeypatch.context() as patch, services_for(module, services):
        patch.setattr(botocore.endpoint, "time", _Clock(injector))
        return invoke(module, event)


# -- scenarios: (handler, event for a tenant, status on success) ------------------------------


def _existing(tenant: Tenant) -> int:
    return tenant.import_conversions(
        [{"goal_id": tenant.goal_id, "visitor_id": tenant.visitor_id, "datetime": "2026-03-01 12:00:00"}]
    )[0]


def create_plain(tenant: Tenant):
    return create_app, api_event("create_conversion", headers=tenant.auth, form={"goal_id": tenant.goal_id}), 201


def create_with_references_and_key(tenant: Tenant):
    body = {
        "goal_id": tenant.goal_id,
        "visitor_id": tenant.visitor_id,
        "session_id": tenant.session_id,
        "event_id": tenant.event_id,
    }
    headers = {**tenant.auth, "Idempotency-Key": f"fault-{tenant.user_id}"}
    return create_app, api_event("create_conversion", headers=headers, json_body=body), 201


def update_move(tenant: Tenant):
    conversion_id = _existing(tenant)
    body = {"goal_id": tenant.second_goal_id, "session_id": tenant.session_id}
    return (
        update_app,
        api_event("update_conversion", headers=tenant.auth, conversion_id=conversion_id, json_body=body),
        200,
    )


def delete_one(tenant: Tenant):
    conversion_id = _existing(tenant)
    return delete_app, api_event("delete_conversion", headers=tenant.auth, conversion_id=conversion_id), 204


def get_one(tenant: Tenant):
    conversion_id = _existing(tenant)
    return get_app, api_event("get_conversion", headers=tenant.auth, conversion_id=conversion_id), 200


def list_by_goal(tenant: Tenant):
    _existing(tenant)
    query = {"goal_id": tenant.goal_id, "datetime_start": "2026-03-01 06:00:00"}
    return list_app, api_event("list_conversions", headers=tenant.auth, query=query), 200


SCENARIOS = [create_plain, create_with_references_and_key, update_move, delete_one, get_one, list_by_goal]
WRITES = [create_plain, create_with_references_and_key, update_move, delete_one]


def prepared(sandboxes: Any, scenario: Any) -> tuple[Sandbox, Any, dict[str, Any], int]:
    sandbox = sandboxes()
    module, event, status = scenario(sandbox.tenant)
    return sandbox, module, event, status


def steps(monkeypatch, sandboxes: Any, scenario: Any) -> list[tuple[str, str]]:
    """The DynamoDB calls (operation, table role) the scenario makes when nothing fails."""
    sandbox, module, event, status = prepared(sandboxes, scenario)
    injector = Injector()
    result = run(monkeypatch, sandbox, injector, module, event)
    assert result.status == status, result
    return [(operation, role(sandbox, table)) for operation, table in injector.calls]


def role(sandbox: Sandbox, table: str) -> str:
    return {
        sandbox.settings.data_table_name: "data",
        sandbox.settings.rate_limit_table_name: "rate limit",
        sandbox.settings.idempotency_table_name: "idempotency",
    }[table]


def assert_unavailable(result: Any) -> None:
    assert result.status == 503, result
    assert result.headers["retry-after"] == "1"
    assert result.headers["content-type"] == "application/json"
    assert [(e["title"], e["status"]) for e in result.json["errors"]] in (
        [("The database is busy; retry shortly", 503)],
        [("The service is busy; retry shortly", 503)],
    )


def faults_for(scenario: Any, step: int) -> list[str]:
    """Throttling and a 500 on every step of a write; a 503 or a lost connection on every
    third step; one fault per step of a read, in turn."""
    if scenario in WRITES:
        return ["throttled", "server error"] + ([("unavailable", "connection")[step % 2]] if step % 3 == 0 else [])
    return [list(FAULTS) + ["connection"]][0][step % 4 : step % 4 + 1]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_a_fault_that_outlasts_the_retries_is_a_503_and_leaves_nothing_partial(monkeypatch, sandboxes, scenario):
    calls = steps(monkeypatch, sandboxes, scenario)
    for target, (operation, table) in enumerate(calls):
        for fault in faults_for(scenario, target):
            sandbox, module, event, _ = prepared(sandboxes, scenario)
            before = sandbox.snapshot()
            injector = Injector(target, fault)
            result = run(monkeypatch, sandbox, injector, module, event)
            where = f"{fault} on step {target} ({operation} on the {table} table)"
            if (operation, table) == ("UpdateItem", "idempotency"):
                # Saving the idempotency record comes after the conversion is committed: the
                # client gets the conversion it made (see conversions_core.idempotency).
                assert result.status == 201, where
                assert sandbox.audit()["user"] == 1, where
                continue
            assert_unavailable(result)
            assert injector.attempts[target] == MAX_ATTEMPTS, where
            assert len(injector.sleeps) == MAX_ATTEMPTS - 1 and all(s >= 0 for s in injector.sleeps), where
            difference = changed(before, sandbox.snapshot())
            assert not difference, f"{where} left {sorted(difference)}"
            assert sandbox.audit()["user"] == (0 if scenario in (create_plain, create_with_references_and_key) else 1)


@pytest.mark.parametrize("scenario", WRITES, ids=lambda s: s.__name__)
def test_a_fault_that_clears_within_the_retries_is_invisible(monkeypatch, sandboxes, scenario):
    calls = steps(monkeypatch, sandboxes, scenario)
    for target in range(len(calls)):
        sandbox, module, event, status = prepared(sandboxes, scenario)
        injector = Injector(target, "throttled" if target % 2 else "server error", times=MAX_ATTEMPTS - 1)
        result = run(monkeypatch, sandbox, injector, module, event)
        assert result.status == status, (target, calls[target], result)
        assert injector.attempts[target] == MAX_ATTEMPTS
        assert sandbox.audit()["user"] == (0 if scenario is delete_one else 1)


def _transaction_step(calls: list[tuple[str, str]]) -> int:
    return next(i for i, (operation, _) in enumerate(calls) if operation == "TransactWriteItems")


@pytest.mark.parametrize("scenario", WRITES, ids=lambda s: s.__name__)
def test_a_transaction_conflict_is_retried(monkeypatch, sandboxes, scenario):
    target = _transaction_step(steps(monkeypatch, sandboxes, scenario))
    sandbox, module, event, status = prepared(sandboxes, scenario)
    result = run(monkeypatch, sandbox, Injector(target, conflict("TransactionConflict"), times=2), module, event)
    assert result.status == status, result
    assert sandbox.audit()["user"] == (0 if scenario is delete_one else 1)


@pytest.mark.parametrize("scenario", WRITES, ids=lambda s: s.__name__)
def test_a_conflict_that_persists_is_a_409_and_leaves_nothing_partial(monkeypatch, sandboxes, scenario):
    calls = steps(monkeypatch, sandboxes, scenario)
    faults = [
        (_transaction_step(calls), conflict("TransactionConflict")),
        (_transaction_step(calls), conflict("ConditionalCheckFailed")),
    ]
    for target, fault in faults:
        sandbox, module, event, _ = prepared(sandboxes, scenario)
        before = sandbox.snapshot()
        result = run(monkeypatch, sandbox, Injector(target, fault, persist=True), module, event)
        assert result.status == 409, result
        assert result.json["errors"][0]["status"] == 409 and "retry" in result.json["errors"][0]["title"]
        assert not changed(before, sandbox.snapshot())
        sandbox.audit()


def test_a_throttled_transaction_is_a_503_not_a_conflict(monkeypatch, sandboxes):
    target = _transaction_step(steps(monkeypatch, sandboxes, create_plain))
    sandbox, module, event, _ = prepared(sandboxes, create_plain)
    result = run(monkeypatch, sandbox, Injector(target, conflict("ThrottlingError")), module, event)
    assert_unavailable(result)
    assert sandbox.audit()["user"] == 0


# -- the time limit: every path answers before the function's timeout ---------------------------

FUNCTION_TIMEOUT = float(TEMPLATE.document["Globals"]["Function"]["Timeout"])
AWS_TIMEOUT = 2.0  # the deployed read timeout (Settings' default); the connect timeout is 1 s


class SlowClock:
    """Time as the handler sees it: every DynamoDB attempt takes as long as its timeouts allow,
    and every pause is counted, not slept."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class FunctionContext:
    """A Lambda context whose remaining time runs on the slow clock."""

    def __init__(self, clock: SlowClock):
        self._clock, self._start = clock, clock.now

    def get_remaining_time_in_millis(self) -> int:
        return int((FUNCTION_TIMEOUT - (self._clock.now - self._start)) * 1000)

    def __getattr__(self, name: str) -> Any:
        return getattr(LambdaContext(), name)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_every_path_answers_within_the_function_timeout(monkeypatch, sandboxes, scenario):
    """Each DynamoDB attempt takes its worst (both timeouts); the step under test then times out
    every time. Whichever step it is, the handler answers before the function's timeout: the
    contract's 503 with Retry-After when time ran out, never API Gateway's bare 503."""
    calls = steps(monkeypatch, sandboxes, scenario)
    for target in range(len(calls)):
        sandbox, module, event, status = prepared(sandboxes, scenario)
        clock = SlowClock()
        deadline = Deadline(clock=clock.time, sleeper=clock.sleep)
        client = dynamodb_client(AWS_TIMEOUT, deadline)
        worst = deadline.attempt_seconds
        client.meta.events.register("before-send.dynamodb", lambda clock=clock, worst=worst, **_: clock.sleep(worst))
        injector = Injector(target, "connection")
        injector.attach(client)
        services = Services.from_env(sandbox.settings, client)
        with monkeypatch.context() as patch, services_for(module, services):
            patch.setattr(botocore.endpoint, "time", clock)
            result = Result(module.lambda_handler(event, FunctionContext(clock)))
        where = f"step {target} of {[op for op, _ in calls]}"
        assert clock.now <= FUNCTION_TIMEOUT - 0.5, f"{where}: answered after {clock.now} s"
        if result.status != status:
            assert_unavailable(result)


@pytest.mark.parametrize("reason", ["ValidationError", "ItemCollectionSizeLimitExceeded"])
@pytest.mark.parametrize("scenario", WRITES, ids=lambda s: s.__name__)
def test_a_transaction_cancelled_for_another_reason_is_a_500_not_a_conflict(monkeypatch, sandboxes, scenario, reason):
    """A cancellation no request foresees (a bug, an item too large) is answered as the failure
    it is, in the contract's format, and logged; a 409 would ask the client to retry in vain."""
    target = _transaction_step(steps(monkeypatch, sandboxes, scenario))
    sandbox, module, event, _ = prepared(sandboxes, scenario)
    before = sandbox.snapshot()
    result = run(monkeypatch, sandbox, Injector(target, conflict(reason)), module, event)
    assert result.status == 500, result
    assert result.json == {"errors": [{"title": "Internal server error", "status": 500}]}
    assert not changed(before, sandbox.snapshot())
