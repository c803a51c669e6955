"""The local runtime runs invocations at once, as Lambda runs containers: two invocations of one
function on instances of their own, requests beside the stream pump's cascade, and a listen
backlog that holds a burst of connections. Order and overlap only, never seconds:
bench/local_server.py measures latencies."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from conftest import TEMPLATE, Result, api_event, services_of, serving, with_conversions
from conversions_core.http import get_services
from conversions_core.observability import logger, metrics
from conversions_core.repository.stream import GOAL
from goals_conversions_local import per_thread
from goals_conversions_local.runtime import Functions
from goals_conversions_local.server import LocalApi, make_server

WAIT = 60  # seconds: a thread that is not back by then is stuck behind another


class Held:
    """A conversions repository whose list of one website waits, inside the route, until released."""

    def __init__(self, conversions: Any, website_id: int):
        self.conversions, self.website_id = conversions, website_id
        self.entered, self.release = threading.Event(), threading.Event()

    def list(self, user: Any, request: Any) -> Any:
        if request.website_id == self.website_id:
            self.entered.set()
            assert self.release.wait(WAIT)
        return self.conversions.list(user, request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conversions, name)


def in_thread(target: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = target(*args)
        except BaseException as error:  # reported by the test that waits for it
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_two_invocations_of_one_function_run_at_once_without_mixing_their_events(tables, tenant):
    """One list is held inside its route (after Powertools took its event); another list of the
    same function, with other parameters, answers meanwhile; then the first answers with links
    built from its own event (the layer reads `app.current_event` after the database call)."""
    held: list[Held] = []

    def hold(spec: Any, module: Any) -> None:
        if spec.short_name == "list_conversions":
            repository = Held(services_of(module).repository.conversions, tenant.website_id)
            held.append(repository)
            services = with_conversions(module, repository)
            module.app.dependency_overrides[get_services] = lambda: services

    first = api_event("list_conversions", headers=tenant.auth, query={"website_id": tenant.website_id})
    first["queryStringParameters"]["results_per_page"] = "10"
    second = api_event(
        "list_conversions",
        headers=tenant.auth,
        query={"website_id": tenant.lightweight_website_id, "results_per_page": 50, "order_type": "ASC"},
    )
    with serving(tables, hold) as parts:
        spec = TEMPLATE.function("list_conversions")
        blocked, blocked_outcome = in_thread(parts.functions.invoke, spec, first)
        assert held[0].entered.wait(WAIT)
        done, done_outcome = in_thread(parts.functions.invoke, spec, second)
        done.join(WAIT)
        assert not done.is_alive(), "the second invocation waited for the first"
        assert blocked.is_alive()
        for repository in held:
            repository.release.set()
        blocked.join(WAIT)
        assert not blocked.is_alive()
        instances = parts.functions.instances(spec)
    assert "error" not in blocked_outcome and "error" not in done_outcome, (blocked_outcome, done_outcome)
    assert len(instances) == 2  # the second ran on a new instance (a cold start), as Lambda scales out
    first_links = Result(blocked_outcome["value"]).json["links"]["self"]
    second_links = Result(done_outcome["value"]).json["links"]["self"]
    assert f"website_id={tenant.website_id}" in first_links and "results_per_page=10" in first_links, first_links
    assert f"website_id={tenant.lightweight_website_id}" in second_links and "results_per_page=50" in second_links


def test_a_second_instance_of_an_api_function_has_services_of_its_own():
    """Its clients, and what they hold for the invocation under way (its deadline, its idempotent
    create), are not those the first instance is using meanwhile."""
    entered, release = threading.Event(), threading.Event()
    held: list[Any] = []

    def hold_the_first(spec: Any, module: Any) -> None:
        if spec.short_name == "get_conversion" and not held:
            handler = module.lambda_handler

            def wait_then_handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
                entered.set()
                assert release.wait(WAIT)
                return handler(event, context)

            module.lambda_handler = wait_then_handle
            held.append(module)

    functions = Functions(TEMPLATE, prepare=hold_the_first)
    spec = TEMPLATE.function("get_conversion")
    event = api_event("get_conversion", headers={}, conversion_id=1)
    first, first_outcome = in_thread(functions.invoke, spec, event)
    assert entered.wait(WAIT)
    assert Result(functions.invoke(spec, event)).status == 401  # on a second instance, meanwhile
    release.set()
    first.join(WAIT)
    assert Result(first_outcome["value"]).status == 401
    one, two = functions.instances(spec)
    assert services_of(one) is get_services()  # the layer's, as the process built them
    assert services_of(two) is not services_of(one)
    assert services_of(two).client is not services_of(one).client


class HeldCascade:
    """The counting function's cascade, held when a batch deletes a goal, until released."""

    def __init__(self, cascade: Any):
        self.cascade = cascade
        self.entered, self.release = threading.Event(), threading.Event()

    def apply(self, records: list[Any]) -> int:
        if any(record.kind == GOAL and record.new is None for record in records):
            self.entered.set()
            assert self.release.wait(WAIT)
        return self.cascade.apply(records)


def test_another_users_get_answers_while_a_goals_cascade_runs_in_the_background(tables, tenant, other_tenant):
    """A's goal is deleted (204 at once); the stream pump's invocation of the counting function
    holds inside the cascade that deletes its conversions; meanwhile B's GET, and A's own, answer.
    Released, the cascade deletes A's conversions."""
    held: list[HeldCascade] = []

    def hold(spec: Any, module: Any) -> None:
        if spec.short_name == "count_conversions":
            module.cascade = HeldCascade(module.cascade)
            held.append(module.cascade)

    day = "2026-03-01 10:00:0"
    a_ids = tenant.import_conversions([{"goal_id": tenant.goal_id, "datetime": f"{day}{n}"} for n in range(3)])
    [b_id] = other_tenant.import_conversions([{"goal_id": other_tenant.goal_id, "datetime": f"{day}9"}])
    with serving(tables, hold) as parts:
        parts.pump.start()
        try:
            assert http(f"{parts.url}/api/goals/{tenant.goal_id}", "DELETE", tenant.auth)[0] == 204
            assert held[0].entered.wait(WAIT), "the pump never ran the goal's cascade"
            status, body = http(f"{parts.url}/api/goals-conversions/{b_id}", headers=other_tenant.auth)
            assert status == 200 and json.loads(body)["data"]["id"] == b_id
            assert http(f"{parts.url}/api/goals/{tenant.second_goal_id}", headers=tenant.auth)[0] == 200
            assert not held[0].release.is_set()  # both answered while the cascade was held
        finally:
            held[0].release.set()
            parts.pump.stop()
        parts.pump.drain()
        for conversion_id in a_ids:
            assert status_of(f"{parts.url}/api/goals-conversions/{conversion_id}", tenant.auth) == 404


def http(url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None):
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
    with urllib.request.urlopen(request, timeout=WAIT) as response:  # a timeout: held behind the pump
        return response.status, response.read()


def status_of(url: str, headers: dict[str, str]) -> int:
    try:
        return http(url, headers=headers)[0]
    except urllib.error.HTTPError as error:
        return error.code


def test_64_connections_wait_in_the_backlog_while_the_server_accepts_none():
    """The kernel completes a connection's handshake and queues it while the listen backlog has
    room; past it, a client's SYN goes unanswered (and is sent again a second later) or is reset.
    With socketserver's default backlog of 5, the seventh connection timed out here."""
    server = make_server(LocalApi(TEMPLATE, Functions(TEMPLATE)), "127.0.0.1", 0, access_log=None)
    connections: list[socket.socket] = []
    try:
        for _ in range(64):  # none is accepted yet
            connections.append(socket.create_connection(server.server_address, timeout=10))
    except OSError:
        for connection in connections:
            connection.close()
        server.server_close()
        raise
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for connection in connections:
            connection.sendall(b"GET /api/nowhere HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n")
        for connection in connections:
            assert connection.makefile("rb").readline().startswith(b"HTTP/1.1 404 ")
    finally:
        for connection in connections:
            connection.close()
        server.shutdown()
        server.server_close()


# -- Powertools' per-request state, per thread (per_thread.py) ----------------------------------


def at_once(*tasks: Any) -> list[Any]:
    """Run the tasks on threads that meet at a barrier between their two steps: each task is
    (first step, second step), the second seeing what every thread's first step did."""
    barrier = threading.Barrier(len(tasks))
    results: list[Any] = [None] * len(tasks)

    def run(index: int) -> None:
        first, second = tasks[index]
        first()
        barrier.wait()
        results[index] = second()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(tasks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    return results


@pytest.fixture(autouse=True)
def installed():
    per_thread.install()  # as the local runtime does (Functions)


def test_the_router_keeps_each_threads_event():
    from aws_lambda_powertools.event_handler.api_gateway import APIGatewayHttpResolver, BaseRouter

    app = APIGatewayHttpResolver()
    results = at_once(
        (lambda: setattr(BaseRouter, "current_event", "one"), lambda: app.current_event),
        (lambda: setattr(BaseRouter, "current_event", "two"), lambda: app.current_event),
    )
    assert results == ["one", "two"]


def test_the_loggers_keys_are_each_threads_own():
    logger.append_keys(correlation_id="main")
    try:
        results = at_once(
            (lambda: logger.append_keys(correlation_id="one"), logger.get_correlation_id),
            (lambda: logger.append_keys(correlation_id="two"), lambda: logger.get_current_keys()),
        )
        assert results[0] == "one"
        assert results[1]["correlation_id"] == "two"
        assert results[1]["service"]  # a thread starts from the keys the Logger was built with
        assert logger.get_correlation_id() == "main"
    finally:
        logger.remove_keys(["correlation_id"])


def test_metrics_are_flushed_by_the_thread_that_added_them():
    def add(name: str) -> Any:
        return lambda: metrics.add_metric(name=name, unit="Count", value=1)

    def pending_then_clear() -> list[str]:
        pending = sorted(metrics.metric_set)
        metrics.clear_metrics()
        return pending

    assert at_once((add("One"), pending_then_clear), (add("Two"), pending_then_clear)) == [["One"], ["Two"]]
