"""Write units: each write on the request path, and the counting function's per conversion.

On the embedded DynamoDB (tables from template.yaml, with the data table's stream), through
the repository the functions use:
- a create, an update of its references only, an update to another goal of the website, an
  update to a goal of another website, and a delete (`Conversions.create/update/delete`): the
  items each reads and writes and their request units (bench/units.py: from the items' sizes,
  as DynamoDB bills them). Target: a create at most 6 write units (2 items in a
  TransactWriteItems at 2 units per KB each, plus 1 unit for each of the listed item's 2 index
  entries). The request's rate-limit counter (1 unit, `make cost` shows it) is not here;
- the counting function's units per conversion: the stream's records, read from the embedded
  stream as Lambda would batch them (`StreamPump`), applied by the real counting code
  (`Counter.apply`) in batches of 1, 10 and 100 creates of one website, and of one update or
  delete. Targets: at most 18 units a conversion alone in its batch, at most 4.5 in a batch of
  100 (a 110-byte marker and a changes-feed entry per record, 2 units each in a transaction, and
  the 6 buckets and the feed's head they share: the price of state that stays the same size
  whatever shares a second, bench/one_second.py, and of an exactly-once feed).

Usage: python bench/writes.py [--output bench/results]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import boto3
from loading import load_owners
from report import engine, publish
from units import Call, Recorder

from conversions_core import conversion_service
from conversions_core.auth import hash_api_key
from conversions_core.repository import Repository
from conversions_core.repository.changes import change_of
from conversions_core.repository.counting import Counter, count_change
from conversions_core.repository.dynamo import Table
from conversions_core.repository.stream import read_batch
from goals_conversions_local.embedded import dynamodb_endpoint, ensure_tables
from goals_conversions_local.streams import StreamPump
from goals_conversions_local.template import Template

TABLE = "DataTable"
KEY = "bench-writes-key"
OWNER, WEBSITE, OTHER_WEBSITE = 1, 1, 2
GOAL, SECOND_GOAL, OTHER_GOAL, VISITOR = 1, 2, 3, 1
# At 100 a batch: a marker (2 units) and a changes-feed entry (2 units) per record, transactional,
# and the 6 buckets (plus the feed's head) they share; 2.5 before the feed (#23) added its entry.
CREATE_TARGET, ALONE_TARGET, HUNDRED_TARGET = 6, 18, 4.5
BATCHES = (1, 10, 100)


def captured(pump: StreamPump) -> list[dict[str, Any]]:
    """The records the stream holds past the pump's position, as the batches Lambda would get."""
    batches: list[dict[str, Any]] = []
    pump.invoke = lambda event: batches.append(event) or {"batchItemFailures": []}
    pump.drain()
    return [record for event in batches for record in event["Records"]]


def setup() -> tuple[Recorder, Repository, Any, StreamPump, Template]:
    dynamodb_endpoint()
    template = Template()
    ensure_tables(template, boto3.client("dynamodb"))
    recorder = Recorder()
    client = recorder.attach(boto3.client("dynamodb"))
    repository = Repository.build(client, TABLE)
    load_owners(
        repository,
        users={OWNER: KEY},
        websites={WEBSITE: OWNER, OTHER_WEBSITE: OWNER},
        goals={GOAL: WEBSITE, SECOND_GOAL: WEBSITE, OTHER_GOAL: OTHER_WEBSITE},
        visitors={VISITOR: WEBSITE},
    )
    owner = repository.accounts.user_by_key_hash(hash_api_key(KEY))
    pump = StreamPump(template, table_name=TABLE, embedded=True)
    captured(pump)  # the owners' records
    recorder.take()
    return recorder, repository, owner, pump, template


def request_writes(
    recorder: Recorder, repository: Repository, owner: Any, pump: StreamPump
) -> list[tuple[str, list[Call], list[dict[str, Any]]]]:
    """(write, its calls, its stream records) for each kind of write, one after the other."""
    conversions = repository.conversions
    created = conversion_service.create(repository, owner, GOAL, {})
    steps = [("create", recorder.take(), captured(pump))]
    for name, changes in (
        ("update, references only", {"visitor_id": VISITOR}),
        ("update, to another goal of the website", {"goal_id": SECOND_GOAL}),
        ("update, to a goal of another website", {"goal_id": OTHER_GOAL, "visitor_id": None}),
    ):
        conversion_service.update(repository, owner, created.id, changes)
        steps.append((name, recorder.take(), captured(pump)))
    conversions.delete(owner, created.id)
    steps.append(("delete", recorder.take(), captured(pump)))
    return steps


def counting(recorder: Recorder, repository: Repository, records: list[dict[str, Any]]) -> list[Call]:
    """The counting function's calls for one batch, applied by the real counting code."""
    recorder.take()
    readable = read_batch(records).records
    outcome = Counter(Table(repository.conversions.table.client, TABLE)).apply(readable)
    changing = [r for r in readable if count_change(r) is not None or change_of(r, 0) is not None]
    if outcome.failed_sequence or outcome.applied != len(changing):
        raise SystemExit(f"the counting function did not apply the batch: {outcome}")
    return recorder.take()


def creates(repository: Repository, owner: Any, pump: StreamPump, count: int) -> list[dict[str, Any]]:
    """`count` creates of one website (goals 1 and 2), as one stream batch."""
    for n in range(count):
        conversion_service.create(repository, owner, (GOAL, SECOND_GOAL)[n % 2], {})
    records = captured(pump)
    assert len(records) == count, f"expected one batch of {count} records, got {len(records)}"
    return records


def units(calls: list[Call]) -> tuple[float, float]:
    return sum(c.read_units for c in calls), sum(c.write_units for c in calls)


def request_table(steps: list[tuple[str, list[Call], list[dict[str, Any]]]]) -> str:
    lines = [
        "| write | calls | items read | read units | items written | write units | the transaction's write units |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name, calls, _ in steps:
        read, written = units(calls)
        items_read = sum(len(c.items) for c in calls if c.read_units)
        items_written = sum(len(c.items) for c in calls if c.write_units)
        arithmetic = "; ".join(c.arithmetic for c in calls if c.write_units)
        lines.append(
            f"| {name} | {', '.join(c.operation for c in calls)} | {items_read} | {read:g} | {items_written} "
            f"| {written:g} | {arithmetic} |"
        )
    return "\n".join(lines)


def counting_table(rows: list[tuple[str, int, list[Call]]]) -> str:
    lines = [
        "| stream batch | conversions | transactions | items written | write units | per conversion | arithmetic |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, count, calls in rows:
        _, written = units(calls)
        transactions = [c for c in calls if c.operation == "TransactWriteItems"]
        items = sum(len(c.items) for c in transactions)
        arithmetic = "; ".join(f"{c.items_text()}: {c.arithmetic}" for c in transactions)
        lines.append(
            f"| {name} | {count} | {len(transactions)} | {items} | {written:g} | **{written / count:.2f}** "
            f"| {arithmetic} |"
        )
    return "\n".join(lines)


def verdicts(steps: list[tuple[str, list[Call], list[dict[str, Any]]]], rows: list[tuple[str, int, list[Call]]]) -> str:
    create = units(steps[0][1])[1]
    per = {count: units(calls)[1] / count for name, count, calls in rows if name.endswith("of one website")}
    checks = [
        (f"create: {create:g} write units (target at most {CREATE_TARGET})", create <= CREATE_TARGET),
        (
            f"counting, 1 create a batch: {per[1]:.2f} units a conversion (target at most {ALONE_TARGET})",
            per[1] <= ALONE_TARGET,
        ),
        (
            f"counting, 100 creates a batch: {per[100]:.2f} units a conversion (target at most {HUNDRED_TARGET})",
            per[100] <= HUNDRED_TARGET,
        ),
    ]
    return "\n".join(f"- {text}: {'met' if ok else '**missed**'}" for text, ok in checks)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    recorder, repository, owner, pump, _ = setup()
    steps = request_writes(recorder, repository, owner, pump)
    rows = [(f"1 {name}", 1, counting(recorder, repository, records)) for name, _, records in steps]
    for count in BATCHES:
        records = creates(repository, owner, pump, count)
        rows.append(
            (f"{count} create{'s' if count > 1 else ''} of one website", count, counting(recorder, repository, records))
        )
    text = "\n\n".join(
        [
            "### Writes on the request path (the repository's calls; a transactional write is 2 units per KB)",
            request_table(steps),
            "### The counting function's writes per stream batch (Counter.apply on the embedded stream's records)",
            counting_table(rows),
            "### Targets",
            verdicts(steps, rows),
        ]
    )
    publish(text, args.output, "writes.md", engine_line=engine())


if __name__ == "__main__":
    main()
