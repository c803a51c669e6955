"""Concurrent writers, with DynamoDB's rule for transactions applied: nothing lost, nothing
doubled, no request cancelled by another's, every count equal to the items stored.

The local server runs one handler at a time per process (like one Lambda container), so real
concurrency comes from several `goals-conversions serve` processes (like several containers),
and from threads calling the repository, each with its own client. All of them reach the
embedded database through a second endpoint that applies DynamoDB's conflict rule (an item
inside a running transaction is held; another transaction touching it is cancelled), which moto
alone does not (see goals_conversions_local.conflicts). The tables are audited afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from tables import audit, audit_feed, own_tables

from conftest import ENDPOINT, EXTERNAL, FIGURES, PUMPS, Tenant, counting_pump, settle
from conversions_core import conversion_service
from conversions_core.auth import hash_api_key
from conversions_core.errors import ConflictError, InvalidInputError, NotFoundError
from conversions_core.repository import Repository
from conversions_core.repository.dynamo import dynamodb_client
from goals_conversions_local.embedded import start_embedded_dynamodb

WRITERS, OTHER_WRITERS = 16, 4
CREATES_PER_WRITER = 12
SERVERS = 3
HOLD_SECONDS = 0.02
BIN = Path(sys.executable).parent
ENVIRONMENT = own_tables(boto3.client("dynamodb"), "Concurrency")
TABLE = ENVIRONMENT["DATA_TABLE_NAME"]
CONFLICT_DOUBLE = pytest.mark.moto_only(
    reason="exercises the conflict double (conflicts.ConflictRule) in front of the embedded moto; "
    "DynamoDB Local never refuses a transaction for a conflict"
)


@pytest.fixture(scope="module")
def rule():
    """An endpoint of the embedded database that applies DynamoDB's conflict rule."""
    server, endpoint = start_embedded_dynamodb(conflict_hold_seconds=HOLD_SECONDS)
    yield SimpleNamespace(endpoint=endpoint, conflicts=server.conflict_rule)
    server.shutdown()


@pytest.fixture(scope="module")
def repository(dynamodb) -> Repository:
    pump = counting_pump(TABLE)
    PUMPS.append(pump)
    yield Repository.build(dynamodb, TABLE)
    PUMPS.remove(pump)


@pytest.fixture(scope="module")
def servers(repository, request) -> list[str]:
    """Several local API processes over the conflict-rule endpoint (on another engine than the
    embedded moto, over that engine)."""
    endpoint = ENDPOINT if EXTERNAL else request.getfixturevalue("rule").endpoint
    environment = {**os.environ, **ENVIRONMENT, "AWS_ENDPOINT_URL_DYNAMODB": endpoint}
    processes = [
        subprocess.Popen(
            [str(BIN / "goals-conversions"), "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=environment,
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
    return repository.accounts.user_by_key_hash(hash_api_key(tenant.api_key))


def repository_at(endpoint: str) -> Repository:
    """A repository with a client of its own, through the conflict-rule endpoint."""
    client = boto3.client("dynamodb", endpoint_url=endpoint, config=dynamodb_client(60).meta.config)
    return Repository.build(client, TABLE)


def list_all(url: str, tenant: Tenant, **query: Any) -> dict[str, Any]:
    response = requests.get(
        f"{url}/api/goals-conversions", params={"results_per_page": 1000, **query}, headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    return response.json()


@CONFLICT_DOUBLE
def test_the_conflict_rule_refuses_what_dynamodb_refuses(rule):
    """The double itself: a transaction on an item another transaction holds is cancelled
    (TransactionConflict), and so is a plain write of it."""
    client = boto3.client("dynamodb", endpoint_url=rule.endpoint)
    key = {"pk": {"S": "HELD#1"}, "sk": {"S": "HELD"}}
    put = {"Put": {"TableName": TABLE, "Item": {**key, "n": {"N": "1"}}}}
    outcomes: list[str] = []

    def transaction(free: str) -> None:
        other = {"Put": {"TableName": TABLE, "Item": {"pk": {"S": free}, "sk": {"S": "FREE"}}}}
        try:
            client.transact_write_items(TransactItems=[other, put])
            outcomes.append("committed")
        except ClientError as error:
            reasons = [r["Code"] for r in error.response["CancellationReasons"]]
            outcomes.append(f"cancelled {reasons}")

    def plain_write() -> None:
        try:
            client.put_item(TableName=TABLE, Item={**key, "n": {"N": "2"}})
            outcomes.append("written")
        except ClientError as error:
            outcomes.append(error.response["Error"]["Code"])

    rule.conflicts.hold_seconds = 2.0  # long enough for the two other writes on a loaded machine
    first = threading.Thread(target=transaction, args=("FREE#1",))
    try:
        first.start()
        while not any(rule.conflicts._held.values()):  # the first transaction holds its items
            pass
        transaction("FREE#2")
        plain_write()
        first.join()
    finally:
        rule.conflicts.hold_seconds = HOLD_SECONDS
    assert sorted(outcomes) == sorted(
        ["committed", "cancelled ['None', 'TransactionConflict']", "TransactionConflictException"]
    )


@CONFLICT_DOUBLE
def test_writers_of_two_tenants_at_once_are_never_cancelled_and_share_no_item(servers, repository, rule):
    """16 writers on one website and 4 on another tenant's, over three server processes: every
    create is a 201, no request was refused by the rule, and no item was written by both
    tenants' requests. Once the stream settles, every total is exact."""
    busy, other = Tenant(repository), Tenant(repository)
    logged, refused = len(rule.conflicts.log), len(rule.conflicts.refused)

    def writer(tenant: Tenant, number: int) -> Callable[[], list[int]]:
        references = {"visitor_id": tenant.visitor_id, "session_id": tenant.session_id, "event_id": tenant.event_id}

        def write() -> list[int]:
            session = requests.Session()
            made = []
            for i in range(CREATES_PER_WRITER):
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

    tasks = [writer(busy, n) for n in range(WRITERS)] + [writer(other, n) for n in range(OTHER_WRITERS)]
    results = together(tasks)
    created = {busy.user_id: [i for made in results[:WRITERS] for i in made]}
    created[other.user_id] = [i for made in results[WRITERS:] for i in made]
    for tenant, writers in ((busy, WRITERS), (other, OTHER_WRITERS)):
        ids = created[tenant.user_id]
        assert len(ids) == len(set(ids)) == writers * CREATES_PER_WRITER, "an id was given twice"
    # The server processes also count from the stream, three consumers of the same records:
    # their transactions on count buckets, markers and the feed may be refused, and are retried
    # (exactly once still); no request's write was ever refused.
    refusals = rule.conflicts.refused[refused:]
    counting = ('"COUNT#', '"APPLIED#', '"CHANGES#')
    request_refusals = [r for r in refusals if any(not any(p in k for p in counting) for _, k in r[1])]
    assert not request_refusals, request_refusals

    owner = {f"CONVERSION#{i}": user for user, ids in created.items() for i in ids}
    owner |= {f"WEBSITE#{t.website_id}#CONVERSIONS": t.user_id for t in (busy, other)}
    owner |= {hash_api_key(t.api_key): t.user_id for t in (busy, other)}
    # The counting function's items (written by the servers' stream consumers) are per user too.
    owner |= {f"COUNT#{t.user_id}": t.user_id for t in (busy, other)}
    owner |= {f"CHANGES#{t.user_id}": t.user_id for t in (busy, other)}  # the feed's entries and head
    writers_of: dict[tuple[str, str], set[int]] = {}
    for operation, keys in rule.conflicts.log[logged:]:
        for table, key in keys:
            if table != TABLE and not table.endswith("RateLimitTable"):
                continue
            partition = json.loads(key)["pk"]["S"]
            if partition.startswith("APPLIED#"):  # a counted record's marker: one record's own item
                continue
            name = partition.split("#")[0] if table.endswith("RateLimitTable") else partition
            assert name in owner, f"{operation} wrote {table} {key}, which belongs to neither tenant"
            writers_of.setdefault((table, key), set()).add(owner[name])
    assert writers_of and all(len(users) == 1 for users in writers_of.values())

    settle()
    for tenant, writers in ((busy, WRITERS), (other, OTHER_WRITERS)):
        listed = list_all(servers[0], tenant)
        assert listed["meta"]["total"] == writers * CREATES_PER_WRITER
        assert Counter(c["id"] for c in listed["data"]) == Counter(created[tenant.user_id])
        by_id = sorted(listed["data"], key=lambda c: c["id"])  # ids grow with datetime
        assert [c["datetime"] for c in by_id] == sorted(c["datetime"] for c in by_id)
        totals = audit(repository, boto3.client("dynamodb"), TABLE, tenant)
    FIGURES.append(
        f"concurrency: {WRITERS} + {OTHER_WRITERS} writers of two tenants over {SERVERS} server processes, "
        f"DynamoDB's conflict rule applied: {len(created[busy.user_id]) + len(created[other.user_id])} creates, "
        f"all 201, none refused; items written: {len(writers_of)}, each by one tenant; counting transactions "
        f"refused and retried: {len(refusals)}; last audit {totals}"
    )


def _conversions(repository: Repository, tenant: Tenant, count: int) -> list[int]:
    user = user_of(repository, tenant)
    return [
        conversion_service.create(repository, user, tenant.goal_id, {"visitor_id": tenant.visitor_id}).id
        for _ in range(count)
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
        except InvalidInputError:
            return "refused"  # e.g. references on a goal that another update moved to lightweight

    return call


@CONFLICT_DOUBLE
def test_the_same_conversion_updated_and_deleted_at_once_ends_consistent(repository, rule):
    """Threads with a client each: per conversion, 4 updates, 2 deletes and a get at once."""
    tenant = Tenant(repository)
    user = user_of(repository, tenant)
    ids = _conversions(repository, tenant, 6)
    outcomes: Counter[str] = Counter()
    for round_number, conversion_id in enumerate(ids):
        repositories = [repository_at(rule.endpoint) for _ in range(7)]
        moves = [
            {"goal_id": tenant.second_goal_id, "session_id": tenant.session_id},
            {"goal_id": tenant.goal_id, "session_id": None},
            {"goal_id": tenant.lightweight_goal_id, "visitor_id": None, "session_id": None, "event_id": None},
            {"event_id": tenant.event_id, "session_id": tenant.session_id},
        ]
        tasks = [
            attempt(partial(conversion_service.update, repositories[i], user, conversion_id, moves[i]))
            for i in range(4)
        ]
        tasks += [attempt(partial(repositories[i].conversions.delete, user, conversion_id)) for i in (4, 5)]
        tasks.append(attempt(partial(repositories[6].conversions.get, user, conversion_id)))
        results = together(tasks)
        outcomes.update(f"{('update', 'delete', 'get')[min(i // 4 + (i == 6), 2)]}: {r}" for i, r in enumerate(results))
        deletes = results[4:6]
        assert deletes.count("done") <= 1, "deleted twice"
        if "done" not in deletes:
            assert deletes == ["conflict", "conflict"], f"round {round_number}: {results}"
            repository.conversions.delete(user, conversion_id)
        with pytest.raises(NotFoundError):
            repository.conversions.get(user, conversion_id)
        if round_number % 2:
            settle()
            assert audit(repository, boto3.client("dynamodb"), TABLE, tenant)["user"] == len(ids) - round_number - 1
    FIGURES.append(f"concurrency: update/delete races on {len(ids)} conversions: {dict(outcomes)}")


@CONFLICT_DOUBLE
def test_concurrent_updates_of_one_conversion_leave_one_consistent_version(repository, rule):
    """16 threads change the same conversion at once: DynamoDB lets one transaction in at a time;
    the others are cancelled and retry from a fresh read, or give up with a 409."""
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
        transactions["committed" if http_response.status_code == 200 else "cancelled"] += 1

    def update(number: int) -> Callable[[], Any]:
        updater = repository_at(rule.endpoint)
        updater.conversions.table.client.meta.events.register("after-call.dynamodb.TransactWriteItems", count)
        return attempt(partial(conversion_service.update, updater, user, conversion_id, changes[number % 4]))

    results = Counter(together([update(n) for n in range(WRITERS)]))
    assert set(results) <= {"done", "conflict"} and results["done"] >= 1, results
    final = repository.conversions.get(user, conversion_id)
    assert {"goal_id": final.goal_id, "visitor_id": final.visitor_id} in changes
    settle()
    totals = audit(repository, boto3.client("dynamodb"), TABLE, tenant)
    assert totals["user"] == 1 and totals[f"goal {final.goal_id}"] == 1
    FIGURES.append(
        f"concurrency: {WRITERS} updates of one conversion at once: {dict(results)}; transactions {dict(transactions)}"
    )


def test_the_same_idempotency_key_sent_at_once_makes_one_conversion(servers, repository):
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
    settle()
    assert list_all(servers[0], tenant)["meta"]["total"] == 1
    assert audit(repository, boto3.client("dynamodb"), TABLE, tenant)["user"] == 1
    FIGURES.append(f"concurrency: one Idempotency-Key from 8 threads: {dict(statuses)}, one conversion")


def test_the_changes_feed_gives_every_change_of_writers_in_several_processes_once_in_order(servers, repository):
    """Writers over three server processes (each with its own counting function on the stream,
    as Lambda may run several, plus this process's) create, update and delete conversions while a
    reader walks the feed through the servers: each conversion's changes are seen once, in the
    order they were made, and the feed's numbers have no gap."""
    tenant = Tenant(repository)
    done: dict[int, list[str]] = {}
    lock = threading.Lock()

    def writer(number: int) -> Callable[[], None]:
        def write() -> None:
            session = requests.Session()
            for i in range(6):
                url = servers[(number + i) % len(servers)]
                made = session.post(
                    f"{url}/api/goals-conversions", json={"goal_id": tenant.goal_id}, headers=tenant.auth
                )
                assert made.status_code == 201, made.text
                conversion_id = made.json()["data"]["id"]
                kinds = ["created"]
                changed = session.post(
                    f"{url}/api/goals-conversions/{conversion_id}",
                    json={"visitor_id": tenant.visitor_id},
                    headers=tenant.auth,
                )
                assert changed.status_code == 200, changed.text
                kinds.append("updated")
                if i % 2:
                    gone = session.delete(f"{url}/api/goals-conversions/{conversion_id}", headers=tenant.auth)
                    assert gone.status_code == 204, gone.text
                    kinds.append("deleted")
                with lock:
                    done[conversion_id] = kinds

        return write

    seen: list[tuple[str, int]] = []
    stop = threading.Event()

    def read() -> None:
        session, cursor, number = requests.Session(), None, 0
        while True:
            finished = stop.is_set()
            params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = session.get(
                f"{servers[number % len(servers)]}/api/goals-conversions/changes", params=params, headers=tenant.auth
            )
            number += 1
            assert page.status_code == 200, page.text
            body = page.json()
            seen.extend((c["change"], c["conversion"]["id"]) for c in body["data"])
            cursor = body["meta"]["next_cursor"]
            if finished and not body["meta"]["has_more"]:
                return

    reader = threading.Thread(target=read)
    reader.start()
    together([writer(n) for n in range(6)])
    settle()
    expected = sum(len(kinds) for kinds in done.values())
    for _ in range(100):  # the servers' counting functions may still be at work
        if len(audit_feed(boto3.client("dynamodb"), TABLE, tenant)) == expected:
            break
        threading.Event().wait(0.1)
    stop.set()
    reader.join(timeout=120)
    assert not reader.is_alive()
    assert len(seen) == len(set(seen)) == expected, "a change was seen twice or missed"
    for conversion_id, kinds in done.items():
        assert [k for k, c in seen if c == conversion_id] == kinds, conversion_id
    assert [(k, c) for k, c in audit_feed(boto3.client("dynamodb"), TABLE, tenant)] == seen
