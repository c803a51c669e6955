"""Concurrent writers: nothing lost, nothing doubled, every count equal to the items stored.

The local server runs one handler at a time per process (like one Lambda container), so real
concurrency comes from several `goals-conversions serve` processes sharing the test's DynamoDB
endpoint (like several containers), and from threads calling the repository, each with its own
client. The tables are audited afterwards (tests/tables.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from tables import audit

from conftest import FIGURES, TEMPLATE, Tenant
from conversions_core.auth import hash_api_key
from conversions_core.errors import ConflictError, InvalidRequestError, NotFoundError
from conversions_core.repository import Repository

THREADS = 16
CREATES_PER_THREAD = 13
SERVERS = 3
BIN = Path(sys.executable).parent
# Tables of this module's own (moto copies a whole table on every transaction, so a small one
# keeps the run short), shared by the server processes through their environment.
PREFIX = "Concurrency"
TABLE = f"{PREFIX}DataTable"
ENVIRONMENT = {
    "DATA_TABLE_NAME": TABLE,
    "RATE_LIMIT_TABLE_NAME": f"{PREFIX}RateLimitTable",
    "IDEMPOTENCY_TABLE_NAME": f"{PREFIX}IdempotencyTable",
}


@pytest.fixture(scope="module")
def repository(dynamodb) -> Repository:
    existing = set(dynamodb.list_tables()["TableNames"])
    for name, arguments in TEMPLATE.tables().items():
        if PREFIX + name not in existing:
            dynamodb.create_table(**{**arguments, "TableName": PREFIX + name})
    return Repository(dynamodb, TABLE)


@pytest.fixture(scope="module")
def servers(repository) -> list[str]:
    """Several local API processes over the one DynamoDB endpoint of the test session."""
    processes = [
        subprocess.Popen(
            [str(BIN / "goals-conversions"), "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **ENVIRONMENT},
        )
        for _ in range(SERVERS)
    ]
    urls = []
    try:
        for process in processes:
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert line.startswith("Listening on "), line
            urls.append(line.split()[-1])
            # Keep reading what the server logs, so that a full pipe never blocks it.
            threading.Thread(target=process.stdout.read, daemon=True).start()  # type: ignore[union-attr]
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def together(tasks: list[Callable[[], Any]]) -> list[Any]:
    """Run the tasks on as many threads, released at the same moment."""
    barrier = threading.Barrier(len(tasks))

    def run(task: Callable[[], Any]) -> Any:
        barrier.wait()
        return task()

    with ThreadPoolExecutor(len(tasks)) as pool:
        return list(pool.map(run, tasks))


def user_of(repository: Repository, tenant: Tenant):
    return repository.find_user_by_key_hash(hash_api_key(tenant.api_key))


def list_all(url: str, tenant: Tenant, **query: Any) -> dict[str, Any]:
    response = requests.get(
        f"{url}/api/goals-conversions", params={"results_per_page": 1000, **query}, headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_sixteen_threads_creating_at_once_lose_and_double_nothing(servers, repository, dynamodb):
    tenant = Tenant(repository)
    references = {"visitor_id": tenant.visitor_id, "session_id": tenant.session_id, "event_id": tenant.event_id}

    def writer(number: int) -> Callable[[], list[int]]:
        def write() -> list[int]:
            session = requests.Session()
            made = []
            for i in range(CREATES_PER_THREAD):
                url = f"{servers[(number + i) % len(servers)]}/api/goals-conversions"
                goal = tenant.goal_id if i % 2 else tenant.second_goal_id
                if i % 3 == 0:
                    response = session.post(url, json={"goal_id": goal, **references}, headers=tenant.auth)
                elif i % 3 == 1:
                    response = session.post(url, files={"goal_id": (None, str(goal))}, headers=tenant.auth)
                else:
                    response = session.post(url, data={"goal_id": goal}, headers=tenant.auth)
                assert response.status_code == 201, response.text
                made.append(response.json()["data"]["id"])
            return made

        return write

    created = [i for made in together([writer(n) for n in range(THREADS)]) for i in made]
    expected = THREADS * CREATES_PER_THREAD
    assert len(created) == expected
    assert len(set(created)) == expected, "an id was given twice"

    listed = list_all(servers[0], tenant)
    assert listed["meta"]["total"] == expected
    assert Counter(c["id"] for c in listed["data"]) == Counter(created), "a create is missing or listed twice"
    # Ids grow with datetime (the ordering invariant), whichever process allocated them.
    by_id = sorted(listed["data"], key=lambda c: c["id"])
    assert [c["datetime"] for c in by_id] == sorted(c["datetime"] for c in by_id)
    on_goal = THREADS * sum(1 for i in range(CREATES_PER_THREAD) if i % 2)
    assert list_all(servers[1], tenant, goal_id=tenant.goal_id)["meta"]["total"] == on_goal
    assert list_all(servers[2], tenant, goal_id=tenant.second_goal_id)["meta"]["total"] == expected - on_goal
    totals = audit(repository, dynamodb, TABLE, tenant)
    assert totals["user"] == expected
    FIGURES.append(f"concurrency: {THREADS} threads over {len(servers)} server processes created {expected}: {totals}")


def _conversions(repository: Repository, tenant: Tenant, count: int) -> list[int]:
    user = user_of(repository, tenant)
    return [
        repository.create_conversion(user, tenant.goal_id, {"visitor_id": tenant.visitor_id}).id for _ in range(count)
    ]


def attempt(action: Callable[[], Any]) -> Callable[[], str]:
    """The action as a task whose result names its outcome."""

    def call() -> str:
        try:
            action()
            return "done"
        except NotFoundError:
            return "not found"
        except ConflictError:
            return "conflict"
        except InvalidRequestError:
            return "refused"  # e.g. references on a goal that another update moved to lightweight

    return call


def test_the_same_conversion_updated_and_deleted_at_once_ends_consistent(repository, dynamodb):
    """Threads with a client each: per conversion, 4 updates, 2 deletes and a get at once."""
    tenant = Tenant(repository)
    user = user_of(repository, tenant)
    ids = _conversions(repository, tenant, 6)
    clients = [boto3.client("dynamodb") for _ in range(THREADS)]
    outcomes: Counter[str] = Counter()
    for round_number, conversion_id in enumerate(ids):
        repositories = [Repository(client, TABLE) for client in clients[:7]]
        moves = [
            {"goal_id": tenant.second_goal_id, "session_id": tenant.session_id},
            {"goal_id": tenant.goal_id, "session_id": None},
            {"goal_id": tenant.lightweight_goal_id, "visitor_id": None, "session_id": None, "event_id": None},
            {"event_id": tenant.event_id, "session_id": tenant.session_id},
        ]

        tasks = [attempt(partial(repositories[i].update_conversion, user, conversion_id, moves[i])) for i in range(4)]
        tasks += [attempt(partial(repositories[i].delete_conversion, user, conversion_id)) for i in (4, 5)]
        tasks.append(attempt(partial(repositories[6].get_conversion, user, conversion_id)))
        results = together(tasks)
        outcomes.update(f"{('update', 'delete', 'get')[min(i // 4 + (i == 6), 2)]}: {r}" for i, r in enumerate(results))
        deletes = results[4:6]
        assert deletes.count("done") <= 1, "deleted twice"
        if "done" not in deletes:
            assert deletes == ["conflict", "conflict"], f"round {round_number}: {results}"
            repository.delete_conversion(user, conversion_id)
        with pytest.raises(NotFoundError):
            repository.get_conversion(user, conversion_id)
        if round_number % 2:
            assert audit(repository, dynamodb, TABLE, tenant)["user"] == len(ids) - round_number - 1
    FIGURES.append(f"concurrency: update/delete races on {len(ids)} conversions: {dict(outcomes)}")


def test_concurrent_updates_of_one_conversion_leave_one_consistent_version(repository, dynamodb):
    """16 threads change the same conversion at once: the version guard lets one transaction in
    at a time; the others re-read and retry, or give up with a 409."""
    tenant = Tenant(repository)
    user = user_of(repository, tenant)
    conversion_id = _conversions(repository, tenant, 1)[0]
    changes = [
        {"goal_id": tenant.second_goal_id, "visitor_id": tenant.other_visitor_id},
        {"goal_id": tenant.goal_id, "visitor_id": tenant.visitor_id},
        {"goal_id": tenant.second_goal_id, "visitor_id": None},
        {"goal_id": tenant.goal_id, "visitor_id": tenant.other_visitor_id},
    ]
    transactions = Counter[str]()

    def count(http_response: Any, **_: Any) -> None:
        transactions["committed" if http_response.status_code == 200 else "cancelled (lost a race)"] += 1

    def update(number: int) -> Callable[[], Any]:
        client = boto3.client("dynamodb")
        client.meta.events.register("after-call.dynamodb.TransactWriteItems", count)
        return attempt(partial(Repository(client, TABLE).update_conversion, user, conversion_id, changes[number % 4]))

    results = Counter(together([update(n) for n in range(THREADS)]))
    assert set(results) <= {"done", "conflict"} and results["done"] >= 1, results
    final = repository.get_conversion(user, conversion_id)
    assert {"goal_id": final.goal_id, "visitor_id": final.visitor_id} in changes
    totals = audit(repository, dynamodb, TABLE, tenant)
    assert totals["user"] == 1 and totals[f"goal {final.goal_id}"] == 1
    FIGURES.append(
        f"concurrency: {THREADS} updates of one conversion at once: {dict(results)}; transactions {dict(transactions)}"
    )


def test_the_same_idempotency_key_sent_at_once_makes_one_conversion(servers, repository, dynamodb):
    tenant = Tenant(repository)
    body = {"goal_id": tenant.goal_id, "visitor_id": tenant.visitor_id}
    headers = {**tenant.auth, "Idempotency-Key": f"race-{tenant.user_id}"}

    def send(number: int) -> Callable[[], requests.Response]:
        return lambda: requests.post(
            f"{servers[number % len(servers)]}/api/goals-conversions", json=body, headers=headers
        )

    responses = together([send(n) for n in range(8)])
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, [r.text for r in responses]
    ids = {r.json()["data"]["id"] for r in responses if r.status_code == 201}
    assert len(ids) == 1
    for response in responses:
        if response.status_code == 409:
            assert response.headers["Retry-After"] == "1"
    retried = requests.post(f"{servers[0]}/api/goals-conversions", json=body, headers=headers)
    assert retried.status_code == 201 and retried.json()["data"]["id"] in ids
    assert list_all(servers[0], tenant)["meta"]["total"] == 1
    assert audit(repository, dynamodb, TABLE, tenant)["user"] == 1
    FIGURES.append(f"concurrency: one Idempotency-Key from 8 threads: {dict(statuses)}, one conversion")
