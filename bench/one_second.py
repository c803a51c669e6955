"""Counting conversions that share one second: what it writes per conversion, and that it ends exact.

A user migrating date-only data imports N conversions at `2025-01-01 00:00:00` (through the
seed import, as `goals-conversions import` does) into the embedded DynamoDB. The stream's
records then go, in the batches Lambda would make (`StreamPump`, BatchSize from template.yaml),
through the counting function's handler code on a recorded client (bench/units.py prices each
write from its items' sizes). Printed: the counting write units per conversion, transactions,
the largest item it wrote, and the list's total and the day's statistics, which must equal N.

A ledger per second of the conversions' datetimes once held every event id of that second: it
stopped at DynamoDB's 400 KB item limit (12,637 of 15,000) and cost more per conversion the more
shared the second. The markers that replaced it are one small item per record.

Usage: python bench/one_second.py [--size N] [--output bench/results]
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from loading import load_owners
from report import publish
from units import Recorder, item_size

from conversions_core.auth import hash_api_key
from conversions_core.failures import FailuresQueue
from conversions_core.models import ListRequest
from conversions_core.repository import Repository, ids
from conversions_core.repository.cascade import Cascade
from conversions_core.repository.counting import Counter
from conversions_core.repository.dynamo import Table
from conversions_core.seed import load_seed
from goals_conversions_local.embedded import dynamodb_endpoint, ensure_event_buses, ensure_tables
from goals_conversions_local.runtime import Functions, apply_environment
from goals_conversions_local.streams import StreamPump
from goals_conversions_local.template import Template

TABLE = "DataTable"
KEY = "bench-one-second-key"
OWNER, WEBSITE, GOAL = 1, 1, 1
SECOND = "2025-01-01 00:00:00"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # no EMF line per batch on stdout

    _, endpoint = dynamodb_endpoint()
    template = Template()
    apply_environment(template)
    [spec] = template.stream_functions()
    count_batch = Functions(template).module(spec).count_batch  # the counting function's handler code
    ensure_tables(template, boto3.client("dynamodb"))
    ensure_event_buses(template)  # the counting function publishes to moto's EventBridge
    repository = Repository.build(boto3.client("dynamodb"), TABLE)
    load_owners(repository, users={OWNER: KEY}, websites={WEBSITE: OWNER}, goals={GOAL: WEBSITE}, visitors={})
    pump = StreamPump(template, table_name=TABLE, embedded=True)
    pump.invoke = lambda event: {"batchItemFailures": []}
    pump.drain()  # the owners' records

    first = ids.first_id_at(datetime.fromisoformat(SECOND).replace(tzinfo=UTC))
    rows = [{"id": first + n, "goal_id": GOAL, "datetime": SECOND} for n in range(args.size)]
    started = time.perf_counter()
    load_seed(repository, {"conversions": rows})
    imported = time.perf_counter() - started

    recorder = Recorder()
    table = Table(recorder.attach(boto3.client("dynamodb")), TABLE)
    counter, cascade = Counter(table), Cascade(table)
    responses: list[dict[str, Any]] = []

    def counting_function(event: dict[str, Any]) -> dict[str, Any]:
        response = count_batch(event, counter, cascade, FailuresQueue(None))
        responses.append(response)
        return response

    pump.invoke = counting_function
    started = time.perf_counter()
    pump.drain()
    counted = time.perf_counter() - started
    calls = recorder.take()

    user = repository.accounts.user_by_key_hash(hash_api_key(KEY))
    total = repository.conversions.list(user, ListRequest()).total
    day = datetime.fromisoformat(SECOND)
    [tally] = repository.statistics.tallies(user, None, None, [day, day + timedelta(days=1)])
    statistics = tally.conversions
    transactions = [call for call in calls if call.operation == "TransactWriteItems"]
    units = sum(call.write_units for call in calls)
    failed = sum(bool(response["batchItemFailures"]) for response in responses)
    largest = largest_item(recorder, ("COUNT#", "APPLIED#"))
    largest_change = largest_item(recorder, ("CHANGES#",))
    lines = [
        f"### {args.size:,} conversions of one user at one second ({SECOND}), on the embedded DynamoDB (moto)",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| list total after counting | {total:,} |",
        f"| statistics, that day | {statistics:,} |",
        f"| stream batches (BatchSize {template.stream_functions()[0].stream.batch_size}) | {len(responses):,} |",
        f"| batches answered with a failure | {failed} |",
        f"| counting TransactWriteItems | {len(transactions):,} |",
        f"| counting write units | {units:,.0f} |",
        f"| **counting write units per conversion** | **{units / args.size:.3f}** |",
        f"| largest count bucket or exactly-once marker (bytes) | {largest:,} |",
        f"| largest changes-feed entry (bytes) | {largest_change:,} |",
        f"| import, then counting, seconds on this machine (moto) | {imported:.0f}, {counted:.0f} |",
        "",
        f"Exact: {'yes' if total == statistics == args.size and not failed else '**no**'}.",
    ]
    publish("\n".join(lines), args.output, "one_second.md", f" ({endpoint})")
    if not (total == statistics == args.size and not failed):
        raise SystemExit("the counts are not exact")


def largest_item(recorder: Recorder, prefixes: tuple[str, ...]) -> int:
    """The size of the largest item whose partition key starts with one of `prefixes`, as DynamoDB
    measures it."""
    items = (item.to_json()["Attributes"] for item in recorder.backend.get_table(TABLE).all_items())
    return max(item_size(item) for item in items if item["pk"]["S"].startswith(prefixes))


if __name__ == "__main__":
    main()
