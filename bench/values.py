"""What values and breakdowns add: to a create, to counting, and to a statistics request.

On the embedded DynamoDB, through the repository and the counting code the functions use, each
call priced from its items' sizes as DynamoDB bills them (bench/units.py):
- a create with no value and one with a value (the same two items, a little larger);
- the counting function's write units per conversion for a batch of 100 creates without values,
  and with values in two currencies (the same transactions; bucket items gain a sum and a count
  per currency and scope);
- statistics of 30 days by day in UTC, then grouped by goal and by website, over N conversions
  spread over the range on G goals: calls, items read and read units. The figures must not
  grow with N (twice the conversions: the same reads); a breakdown adds the Query of the user's
  goals (group_by=goal) or one BatchGetItem of the websites (group_by=website).

Usage: python bench/values.py [--size N] [--goals G] [--output bench/results]
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from report import publish
from writes import GOAL, SECOND_GOAL, captured, counting, setup, units

from conversions_core import conversion_service
from conversions_core.auth import hash_api_key
from conversions_core.repository import ids
from conversions_core.seed import load_seed
from conversions_core.statistics import breakdown_body, statistics_request

START = datetime(2026, 5, 1)
DAYS = 30


def creates(repository: Any, owner: Any, pump: Any, recorder: Any, valued: bool) -> tuple[list[Any], list[Any]]:
    """The request's calls of one create, and the counting calls of a batch of 100 creates."""
    worth = {"value": "19.90", "currency": "EUR"} if valued else {}
    recorder.take()
    conversion_service.create(repository, owner, GOAL, {}, worth)
    one = recorder.take()
    for n in range(99):
        worth = ({"value": "19.90", "currency": "EUR"}, {"value": "1200", "currency": "JPY"})[n % 2] if valued else {}
        conversion_service.create(repository, owner, (GOAL, SECOND_GOAL)[n % 2], {}, worth)
    records = captured(pump)
    return one, counting(recorder, repository, records)


def load(repository: Any, pump: Any, recorder: Any, user_id: int, size: int, goals: int, skip: int) -> Any:
    """A user of its own (website `user_id`, goals from `user_id` * 1000) with `size` valued
    conversions over the 30 days, counted; returns the user."""
    key = f"bench-values-{user_id}"
    rows = []
    first = ids.first_id_at(START.replace(tzinfo=UTC)) + skip  # ids are unique across users
    for n in range(size):
        currency = ("EUR", "JPY")[n % 2]
        moment = START + timedelta(seconds=n * DAYS * 86400 // size)
        rows.append(
            {
                "id": first + n,
                "goal_id": user_id * 1000 + n % goals,
                "datetime": moment.strftime("%Y-%m-%d %H:%M:%S"),
                "value": "1.10" if currency == "EUR" else "300",
                "currency": currency,
            }
        )
    seed = {
        "users": [{"user_id": user_id, "api_key": key, "status": "active"}],
        "websites": [{"website_id": user_id, "user_id": user_id}],
        "goals": [{"goal_id": user_id * 1000 + g, "website_id": user_id, "name": f"Goal {g}"} for g in range(goals)],
        "conversions": rows,
    }
    load_seed(repository, seed)
    while records := captured(pump):
        counting(recorder, repository, records)
    return repository.accounts.user_by_key_hash(hash_api_key(key))


def statistics_calls(repository: Any, owner: Any, recorder: Any) -> list[tuple[str, list[Any]]]:
    boundaries = [START + timedelta(days=d) for d in range(DAYS + 1)]
    rows = []
    recorder.take()
    tallies = repository.statistics.tallies(owner, None, None, boundaries)
    rows.append((f"30 days by day: {sum(t.conversions for t in tallies)} conversions", recorder.take()))
    end = START + timedelta(days=DAYS) - timedelta(seconds=1)
    for by in ("goal", "website"):
        request = statistics_request(START, end, "day", "UTC", by)
        body = breakdown_body(repository, owner, request, None, None, boundaries[0], boundaries[-1])
        rows.append((f"group_by={by}: {len(body.data)} rows", recorder.take()))
    return rows


def table(title: str, rows: list[tuple[str, list[Any]]]) -> str:
    lines = [
        f"### {title}",
        "",
        "| request | calls | items read | read units | write units |",
        "|---|---|---:|---:|---:|",
    ]
    for name, calls in rows:
        read, written = units(calls)
        items = sum(len(c.items) for c in calls if c.read_units)
        lines.append(f"| {name} | {', '.join(c.operation for c in calls)} | {items} | {read:g} | {written:g} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000, help="conversions over the 30 days (then twice as many)")
    parser.add_argument("--goals", type=int, default=20)
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    recorder, repository, owner, pump, _ = setup()

    plain_one, plain_batch = creates(repository, owner, pump, recorder, valued=False)
    valued_one, valued_batch = creates(repository, owner, pump, recorder, valued=True)
    writes = [
        ("create, no value", plain_one),
        ("create, with a value", valued_one),
        ("counting, 100 creates without values (per conversion: /100)", plain_batch),
        ("counting, 100 creates with values in 2 currencies (per conversion: /100)", valued_batch),
    ]

    reads = []
    for user_id, size in ((10, args.size), (11, 2 * args.size)):  # N, then 2N: the same reads
        user = load(repository, pump, recorder, user_id, size, args.goals, skip=(user_id - 10) * args.size)
        reads += [(f"{name} (of {size})", calls) for name, calls in statistics_calls(repository, user, recorder)]

    text = "\n\n".join(
        [
            "## Values and breakdowns",
            f"Embedded DynamoDB (moto); {args.goals} goals on one website; values in EUR and JPY.",
            table("Writes", writes),
            table("Statistics reads", reads),
        ]
    )
    publish(text, args.output, "values.md")


if __name__ == "__main__":
    main()
