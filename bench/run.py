"""Items read per list request at 1k, 10k and 100k conversions, ours against the naive way.

One run, on the embedded DynamoDB (moto's server, in-process), one table per size built from
template.yaml. Each size holds N conversions of website 1 (three goals) spread over 2025, plus a
tenth of N on a second website of the same user and a tenth of N for a second user, so the user
and goal indexes are shared. Every list request is made twice through the repository: the way
the API does it (`list_conversions`) and the naive way (`list_conversions_naive`: COUNT over the
whole range, OFFSET by reading past every earlier item); both must return the same page.

A botocore hook on the client counts calls and items read (a Query's ScannedCount, GetItem and
BatchGetItem items returned) and items written (per TransactWriteItems action, per single write).
moto's timings mean nothing (it walks the table on every Query), so nothing here is timed except
the run itself.

Usage: python bench/run.py [--sizes 1000,10000,100000] [--output bench/results]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from goals_conversions_local.embedded import start_embedded_dynamodb, use_local_credentials
from goals_conversions_local.template import Template

sys.path.insert(0, str(Path(__file__).resolve().parent))
import moto_speedup  # noqa: E402

from conversions_core.models import Conversion, ListRequest, User  # noqa: E402
from conversions_core.repository import Repository  # noqa: E402

YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_SECONDS = 365 * 86400
OWNER, OTHER_USER = User(1, "active", 0, "owner"), User(2, "active", 0, "other")
WEBSITE, SECOND_WEBSITE, OTHER_WEBSITE = 1, 2, 3
GOALS = (1, 2, 3)  # on website 1, drawn with weights 5:3:2
SECOND_GOAL, OTHER_GOAL, VISITOR = 4, 5, 1
PER_PAGE = 25
WEEK = (datetime(2025, 6, 2, 13, 37, 11, tzinfo=UTC), datetime(2025, 6, 9, 9, 15, 42, tzinfo=UTC))


class Meter:
    """Counts DynamoDB calls, items read and items written through a botocore event hook."""

    def __init__(self, client: Any):
        self.counts: Counter[str] = Counter()
        client.meta.events.register("provide-client-params.dynamodb", self._before)
        client.meta.events.register("after-call.dynamodb", self._after)

    def take(self) -> Counter[str]:
        counts, self.counts = self.counts, Counter()
        return counts

    def _before(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        name = model.name
        if name == "TransactWriteItems":
            self.counts["written"] += len(params["TransactItems"])
        elif name in ("PutItem", "UpdateItem", "DeleteItem"):
            self.counts["written"] += 1
        elif name == "BatchWriteItem":
            self.counts["written"] += sum(len(v) for v in params["RequestItems"].values())

    def _after(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        self.counts["calls"] += 1
        self.counts["queries"] += model.name == "Query"
        if model.name == "Query":
            items = parsed.get("Items")
            # Count buckets carry `n` and no `id`; a Select=COUNT query reads conversion keys.
            kind = "buckets" if items and "n" in items[0] and "id" not in items[0] else "conversions"
            self.counts[kind] += parsed.get("ScannedCount", 0)
        elif model.name == "GetItem":
            self.counts["other"] += 1 if "Item" in parsed else 0
        elif model.name == "BatchGetItem":
            self.counts["other"] += sum(len(v) for v in parsed.get("Responses", {}).values())

    @staticmethod
    def read(counts: Counter[str]) -> int:
        return counts["buckets"] + counts["conversions"] + counts["other"]


@dataclass
class Row:
    size: int
    request: str
    order: str
    page: int
    returned: int
    total: int
    ours: Counter[str]
    naive: Counter[str]

    @property
    def ratio(self) -> float:
        return Meter.read(self.naive) / max(1, Meter.read(self.ours))


def new_table(client: Any, template: Template, size: int) -> str:
    arguments = dict(template.tables()["DataTable"])
    arguments["TableName"] = f"Bench{size}"
    client.create_table(**arguments)
    return arguments["TableName"]


def conversions_for(size: int) -> list[Conversion]:
    """N on website 1 (goals 5:3:2), N/10 on website 2, N/10 for user 2; ids grow with datetime."""
    rng = random.Random(size)
    rows = [(rng.randrange(YEAR_SECONDS), rng.choices(GOALS, (5, 3, 2))[0], WEBSITE, OWNER) for _ in range(size)]
    rows += [(rng.randrange(YEAR_SECONDS), SECOND_GOAL, SECOND_WEBSITE, OWNER) for _ in range(size // 10)]
    rows += [(rng.randrange(YEAR_SECONDS), OTHER_GOAL, OTHER_WEBSITE, OTHER_USER) for _ in range(size // 10)]
    rows.sort(key=lambda row: row[0])
    return [
        Conversion(
            id=number,
            goal_id=goal,
            website_id=website,
            user_id=user.user_id,
            datetime=(YEAR_START + timedelta(seconds=second)).strftime("%Y-%m-%d %H:%M:%S"),
        )
        for number, (second, goal, website, user) in enumerate(rows, start=1)
    ]


def load(repository: Repository, table_name: str, size: int) -> int:
    """Owners, websites and goals through `import_records`; the conversions, their counts and
    the id sequence as the repository would leave them (`fresh_table_items`), written in bulk."""
    users = [({"user_id": u.user_id, "status": "active"}, f"bench-key-{u.user_id}") for u in (OWNER, OTHER_USER)]
    entities = [
        ("WEBSITE", {"website_id": WEBSITE, "user_id": OWNER.user_id, "tracking_mode": "normal"}),
        ("WEBSITE", {"website_id": SECOND_WEBSITE, "user_id": OWNER.user_id, "tracking_mode": "normal"}),
        ("WEBSITE", {"website_id": OTHER_WEBSITE, "user_id": OTHER_USER.user_id, "tracking_mode": "normal"}),
        *[("GOAL", {"goal_id": g, "website_id": WEBSITE, "user_id": OWNER.user_id}) for g in GOALS],
        ("GOAL", {"goal_id": SECOND_GOAL, "website_id": SECOND_WEBSITE, "user_id": OWNER.user_id}),
        ("GOAL", {"goal_id": OTHER_GOAL, "website_id": OTHER_WEBSITE, "user_id": OTHER_USER.user_id}),
        ("VISITOR", {"visitor_id": VISITOR, "website_id": WEBSITE}),
    ]
    repository.import_records(users, entities, [])
    items = repository.fresh_table_items(conversions_for(size))
    moto_speedup.put_items(table_name, items)
    return len(items)


# The naive COUNT of a filter and range is the same for every page and order: made once, its
# calls and items are added to each request that needs it (moto makes it slow, not dear).
_naive_counts: dict[tuple[Any, ...], tuple[int, Counter[str]]] = {}


def naive_count(repository: Repository, meter: Meter, request: ListRequest) -> tuple[int, Counter[str]]:
    key = (id(repository), request.goal_id, request.website_id, request.start, request.end)
    if key not in _naive_counts:
        meter.take()
        total = repository.list_conversions_naive(OWNER, replace(request, page=10**9)).total
        spent = meter.take()
        _naive_counts[key] = (
            total,
            Counter(calls=spent["queries"], queries=spent["queries"], conversions=spent["conversions"]),
        )
    return _naive_counts[key]


def measure(repository: Repository, meter: Meter, size: int, label: str, request: ListRequest) -> Row:
    total, count_cost = naive_count(repository, meter, request)
    meter.take()
    ours = repository.list_conversions(OWNER, request)
    ours_counts = meter.take()
    naive = repository.list_conversions_naive(OWNER, request, total=total)
    naive_counts = meter.take() + count_cost
    if ours != naive:
        raise SystemExit(f"{label} at N={size}: the two ways disagree (total {ours.total} vs {naive.total})")
    order = "ASC" if request.ascending else "DESC"
    return Row(size, label, order, request.page, len(ours.conversions), ours.total, ours_counts, naive_counts)


def list_rows(repository: Repository, meter: Meter, size: int) -> list[Row]:
    rows = []
    base = ListRequest(results_per_page=PER_PAGE)
    for ascending in (False, True):
        plain = replace(base, ascending=ascending)
        website = replace(plain, website_id=WEBSITE)
        goal = replace(plain, goal_id=GOALS[0])
        totals = {
            name: naive_count(repository, meter, request)[0]
            for name, request in (("website", website), ("goal", goal), ("user", plain))
        }

        def middle(name: str, totals: dict[str, int] = totals) -> int:
            return max(1, math.ceil(totals[name] / PER_PAGE) // 2)

        requests = [
            ("default list (user-wide), page 1", plain),
            ("website, page 1", website),
            ("website, middle page", replace(website, page=middle("website"))),
            ("website, last page", replace(website, page=math.ceil(totals["website"] / PER_PAGE))),
            ("website, one week (bounds inside minutes)", replace(website, start=WEEK[0], end=WEEK[1])),
            ("goal, middle page", replace(goal, page=middle("goal"))),
            ("user-wide, middle page", replace(plain, page=middle("user"))),
        ]
        rows += [measure(repository, meter, size, label, request) for label, request in requests]
    return rows


def page_rows(repository: Repository, meter: Meter, size: int) -> list[Row]:
    """Website list, newest first, at pages spread from the first to the last."""
    request = ListRequest(website_id=WEBSITE, results_per_page=PER_PAGE)
    last = math.ceil(naive_count(repository, meter, request)[0] / PER_PAGE)
    pages = sorted({1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, last // 2, last} & set(range(1, last + 1)))
    return [measure(repository, meter, size, "website, by page", replace(request, page=p)) for p in pages]


def write_rows(repository: Repository, meter: Meter) -> list[tuple[str, Counter[str]]]:
    """Items written (and calls made) by each kind of write, on a loaded table."""
    meter.take()
    created = repository.create_conversion(OWNER, GOALS[0], {})
    results = [("create", meter.take())]
    repository.update_conversion(OWNER, created.id, {"visitor_id": VISITOR})
    results.append(("update, references only", meter.take()))
    repository.update_conversion(OWNER, created.id, {"goal_id": GOALS[1]})
    results.append(("update, to another goal of the website", meter.take()))
    repository.update_conversion(OWNER, created.id, {"goal_id": SECOND_GOAL, "visitor_id": None})
    results.append(("update, to a goal of another website", meter.take()))
    repository.delete_conversion(OWNER, created.id)
    results.append(("delete", meter.take()))
    return results


def list_table(rows: list[Row]) -> str:
    lines = [
        "| N | request | order | page | returned | total | ours: calls | ours: buckets + keys + other = read"
        " | naive: calls | naive: read | naive / ours |",
        "|---:|---|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        o, n = r.ours, r.naive
        lines.append(
            f"| {r.size:,} | {r.request} | {r.order} | {r.page:,} | {r.returned} | {r.total:,} | {o['calls']} "
            f"| {o['buckets']} + {o['conversions']} + {o['other']} = {Meter.read(o):,} "
            f"| {n['calls']} | {Meter.read(n):,} | {r.ratio:,.1f} |"
        )
    return "\n".join(lines)


def write_table(results: list[tuple[str, Counter[str]]]) -> str:
    lines = ["| write | calls | items read | items written |", "|---|---:|---:|---:|"]
    for name, counts in results:
        lines.append(f"| {name} | {counts['calls']} | {Meter.read(counts)} | {counts['written']} |")
    return "\n".join(lines)


def plot(rows: list[Row], by_page: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = {"website, page 1": "tab:blue", "website, middle page": "tab:orange", "website, last page": "tab:red"}
    for label, color in colors.items():
        chosen = [r for r in rows if r.request == label and r.order == "DESC"]
        sizes = [r.size for r in chosen]
        left.plot(sizes, [Meter.read(r.ours) for r in chosen], "o-", color=color, label=f"{label}: ours")
        left.plot(sizes, [Meter.read(r.naive) for r in chosen], "x--", color=color, label=f"{label}: naive")
    left.set(xscale="log", yscale="log", xlabel="conversions on the website (N)", ylabel="items read per request")
    left.set_title("Items read vs N (newest first, 25 a page)")
    left.legend(fontsize=7)
    pages = [r.page for r in by_page]
    right.plot(pages, [Meter.read(r.ours) for r in by_page], "o-", label="ours")
    right.plot(pages, [Meter.read(r.naive) for r in by_page], "x--", label="naive")
    right.set(xscale="log", yscale="log", xlabel="page", ylabel="items read per request")
    right.set_title(f"Items read vs page (N = {by_page[0].size:,}, website, newest first)")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    page_size = max(sizes)  # pages are walked where the naive way's skips cost the most
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    moto_speedup.install()
    use_local_credentials()
    server, endpoint = start_embedded_dynamodb()
    client = boto3.client("dynamodb", endpoint_url=endpoint)
    meter = Meter(client)
    template = Template()
    rows: list[Row] = []
    by_page: list[Row] = []
    writes: list[tuple[str, Counter[str]]] = []
    for size in sizes:
        table_name = new_table(client, template, size)
        repository = Repository(client, table_name)
        loading = time.monotonic()
        items = load(repository, table_name, size)
        meter.take()
        print(f"N={size:,}: {items:,} items loaded in {time.monotonic() - loading:.0f} s", file=sys.stderr)
        rows += list_rows(repository, meter, size)
        if size == page_size:
            by_page = page_rows(repository, meter, size)
        if size == min(sizes):
            writes = write_rows(repository, meter)
        client.delete_table(TableName=table_name)
        print(f"N={size:,}: measured, {time.monotonic() - started:.0f} s so far", file=sys.stderr)
        report(rows, by_page, writes, page_size, output)  # after every size, so a cut run leaves figures
    server.shutdown()
    print(report(rows, by_page, writes, page_size, output))
    print(f"\nWrote {output / 'results.md'} and {output / 'items_read.png'} in {time.monotonic() - started:.0f} s")


def report(
    rows: list[Row], by_page: list[Row], writes: list[tuple[str, Counter[str]]], page_size: int, output: Path
) -> str:
    text = "\n\n".join(
        [
            "### Items read per list request (25 a page)",
            list_table(rows),
            f"### Items read by page (N = {page_size:,}, website, newest first)",
            list_table(by_page),
            "### Items written per write",
            write_table(writes),
        ]
    )
    (output / "results.md").write_text(text + "\n")
    if by_page:
        plot(rows, by_page, output / "items_read.png")
    return text


if __name__ == "__main__":
    main()
