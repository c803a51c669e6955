"""Items read per list request at 1k, 10k and 100k conversions, ours against the naive way.

One run, on the embedded DynamoDB (moto's server, in-process), one table per size built from
template.yaml (without its stream: the counts are loaded, not counted). Each size holds N
conversions of website 1 (three goals, 5:3:2) spread over 2025, plus a tenth of N on a second
website of the same user and a tenth of N for a second user, so the user and goal indexes and
the count partitions are shared. The table is loaded as the service would leave it
(bench/loading.py). Every list request is made twice: the way the API does it
(`Conversions.list`) and the naive way (bench/naive.py: COUNT over the whole range, OFFSET by
reading past every earlier item); both must return the same page and total.

A botocore hook on the client counts calls and items read: a Query's ScannedCount (count
buckets, or listed conversions), and the keys a GetItem or BatchGetItem asks for (a count
bucket, or another item: API key, website, goal; a missing item costs a read too). The goal: at most
`results_per_page` + 150 items read by a list, for any range and page. moto's timings mean
nothing (it walks the table on every Query), so nothing here is timed except the run itself.

Usage: python bench/run.py [--sizes 1000,10000,100000] [--no-plot] [--output bench/results]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import moto_speedup
from loading import conversion_id, load_conversions, load_owners
from naive import naive_page
from report import engine

from conversions_core.auth import hash_api_key
from conversions_core.models import ListRequest, User
from conversions_core.repository import Repository
from conversions_core.repository.items import StoredConversion
from conversions_core.repository.keys import count_partition
from conversions_core.values import DATETIME_FORMAT
from goals_conversions_local.embedded import start_embedded_dynamodb, use_local_credentials
from goals_conversions_local.template import Template

ROOT = Path(__file__).resolve().parents[1]
YEAR_START = datetime(2025, 1, 1)
YEAR_SECONDS = 365 * 86400
OWNER, OTHER_USER = 1, 2
KEYS = {OWNER: "bench-key-1", OTHER_USER: "bench-key-2"}
WEBSITE, SECOND_WEBSITE, OTHER_WEBSITE = 1, 2, 3
GOALS = (1, 2, 3)  # on website 1, drawn with weights 5:3:2
SECOND_GOAL, OTHER_GOAL, VISITOR = 4, 5, 1
PER_PAGE = 25
ALLOWANCE = 150  # the goal: at most results_per_page + 150 items read by any list request
WEEK = (datetime(2025, 6, 2, 13, 37, 11, tzinfo=UTC), datetime(2025, 6, 9, 9, 15, 42, tzinfo=UTC))
# Bounds in the middle of a month, a day, an hour, a quarter-hour and a minute at both ends.
AWKWARD = (datetime(2025, 2, 14, 13, 22, 31, tzinfo=UTC), datetime(2025, 11, 17, 10, 37, 29, tzinfo=UTC))


class Meter:
    """Counts DynamoDB calls, items read and items written through botocore event hooks."""

    def __init__(self, client: Any, count_partitions: set[str]):
        self.counts: Counter[str] = Counter()
        self.count_partitions = count_partitions
        client.meta.events.register("provide-client-params.dynamodb", self._before)
        client.meta.events.register("after-call.dynamodb", self._after)

    def take(self) -> Counter[str]:
        counts, self.counts = self.counts, Counter()
        return counts

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        name = model.name
        if name == "TransactWriteItems":
            self.counts["written"] += len(params["TransactItems"])
        elif name in ("PutItem", "UpdateItem", "DeleteItem"):
            self.counts["written"] += 1
        elif name == "BatchWriteItem":
            self.counts["written"] += sum(len(v) for v in params["RequestItems"].values())
        elif name == "Query":
            values = {v.get("S") for v in params.get("ExpressionAttributeValues", {}).values()}
            context["bench_query"] = "buckets" if values & self.count_partitions else "conversions"
        elif name in ("GetItem", "BatchGetItem"):
            keys = (
                [params["Key"]]
                if name == "GetItem"
                else [k for r in params["RequestItems"].values() for k in r["Keys"]]
            )
            context["bench_keys"] = Counter(self._kind(key) for key in keys)

    def _kind(self, key: dict[str, Any]) -> str:
        return "buckets" if key["pk"].get("S") in self.count_partitions else "other"

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        self.counts["calls"] += 1
        self.counts["queries"] += model.name == "Query"
        if model.name == "Query":
            self.counts[context["bench_query"]] += parsed.get("ScannedCount", 0)
        elif model.name in ("GetItem", "BatchGetItem"):
            self.counts.update(context["bench_keys"])  # keys asked: a missing item costs a read too

    @staticmethod
    def read(counts: Counter[str]) -> int:
        return counts["buckets"] + counts["conversions"] + counts["other"]


@dataclass
class Row:
    size: int
    request: str
    order: str
    page: int
    per_page: int
    returned: int
    total: int
    ours: Counter[str]
    naive: Counter[str]

    @property
    def ratio(self) -> float:
        return Meter.read(self.naive) / max(1, Meter.read(self.ours))

    @property
    def within_goal(self) -> bool:
        return Meter.read(self.ours) <= self.per_page + ALLOWANCE


@dataclass
class Bench:
    """One size's table, its repository and the owner as the API sees them."""

    size: int
    repository: Repository
    meter: Meter
    owner: User
    naive_counts: dict[tuple[Any, ...], tuple[int, Counter[str]]]


def new_table(client: Any, template: Template, size: int) -> str:
    arguments = dict(template.tables()["DataTable"])
    arguments["TableName"] = f"Bench{size}"
    arguments.pop("StreamSpecification", None)  # loaded with its counts: nothing to count, no stream to keep
    client.create_table(**arguments)
    return arguments["TableName"]


def conversions_for(size: int) -> list[StoredConversion]:
    """N on website 1 (goals 5:3:2), N/10 on website 2, N/10 for user 2; ids as the service gives them."""
    rng = random.Random(size)
    rows = [(rng.randrange(YEAR_SECONDS), rng.choices(GOALS, (5, 3, 2))[0], WEBSITE, OWNER) for _ in range(size)]
    rows += [(rng.randrange(YEAR_SECONDS), SECOND_GOAL, SECOND_WEBSITE, OWNER) for _ in range(size // 10)]
    rows += [(rng.randrange(YEAR_SECONDS), OTHER_GOAL, OTHER_WEBSITE, OTHER_USER) for _ in range(size // 10)]
    rows.sort(key=lambda row: row[0])
    taken: set[int] = set()
    conversions = []
    for second, goal, website, user in rows:
        moment = YEAR_START + timedelta(seconds=second)
        conversions.append(
            StoredConversion(
                id=conversion_id(moment, taken),
                goal_id=goal,
                website_id=website,
                user_id=user,
                visitor_id=None,
                session_id=None,
                event_id=None,
                datetime=moment.strftime(DATETIME_FORMAT),
            )
        )
    return conversions


def load(repository: Repository, table_name: str, size: int) -> int:
    load_owners(
        repository,
        users=KEYS,
        websites={WEBSITE: OWNER, SECOND_WEBSITE: OWNER, OTHER_WEBSITE: OTHER_USER},
        goals={**{g: WEBSITE for g in GOALS}, SECOND_GOAL: SECOND_WEBSITE, OTHER_GOAL: OTHER_WEBSITE},
        visitors={VISITOR: WEBSITE},
    )
    return load_conversions(table_name, conversions_for(size))


def naive_count(bench: Bench, request: ListRequest) -> tuple[int, Counter[str]]:
    """The naive COUNT of a filter and range is the same for every page and order: made once,
    its calls and items are added to each request that needs it (moto makes it slow, not dear)."""
    key = (request.goal_id, request.website_id, request.start, request.end)
    if key not in bench.naive_counts:
        bench.meter.take()
        total = naive_page(bench.repository, bench.owner, replace(request, page=10**9)).total
        spent = bench.meter.take()
        bench.naive_counts[key] = (
            total,
            Counter(calls=spent["queries"], queries=spent["queries"], conversions=spent["conversions"]),
        )
    return bench.naive_counts[key]


def measure(bench: Bench, label: str, request: ListRequest) -> Row:
    total, count_cost = naive_count(bench, request)
    bench.meter.take()
    ours = bench.repository.conversions.list(bench.owner, request)
    ours_counts = bench.meter.take()
    naive = naive_page(bench.repository, bench.owner, request, total=total)
    naive_counts = bench.meter.take() + count_cost
    if ours != naive:
        raise SystemExit(f"{label} at N={bench.size}: the two ways disagree (total {ours.total} vs {naive.total})")
    order = "ASC" if request.ascending else "DESC"
    return Row(
        bench.size,
        label,
        order,
        request.page,
        request.results_per_page,
        len(ours.conversions),
        ours.total,
        ours_counts,
        naive_counts,
    )


def list_rows(bench: Bench) -> list[Row]:
    rows = []
    base = ListRequest(results_per_page=PER_PAGE)
    for ascending in (False, True):
        plain = replace(base, ascending=ascending)
        website = replace(plain, website_id=WEBSITE)
        goal = replace(plain, goal_id=GOALS[0])
        awkward = replace(website, start=AWKWARD[0], end=AWKWARD[1])
        totals = {
            name: naive_count(bench, request)[0]
            for name, request in (("website", website), ("goal", goal), ("user", plain), ("awkward", awkward))
        }

        def middle(name: str, per_page: int = PER_PAGE, totals: dict[str, int] = totals) -> int:
            return max(1, math.ceil(totals[name] / per_page) // 2)

        requests = [
            ("default list (user-wide), page 1", plain),
            ("website, page 1", website),
            ("website, middle page", replace(website, page=middle("website"))),
            ("website, last page", replace(website, page=math.ceil(totals["website"] / PER_PAGE))),
            ("website, one week (bounds inside minutes)", replace(website, start=WEEK[0], end=WEEK[1])),
            ("website, Feb 14 to Nov 17 (bounds mid-unit), middle page", replace(awkward, page=middle("awkward"))),
            (
                "website, middle page, 1000 a page",
                replace(website, results_per_page=1000, page=middle("website", 1000)),
            ),
            ("goal, middle page", replace(goal, page=middle("goal"))),
            ("user-wide, middle page", replace(plain, page=middle("user"))),
        ]
        rows += [measure(bench, label, request) for label, request in requests]
    return rows


def page_rows(bench: Bench) -> list[Row]:
    """Website list, newest first, at pages spread from the first to the last."""
    request = ListRequest(website_id=WEBSITE, results_per_page=PER_PAGE)
    last = math.ceil(naive_count(bench, request)[0] / PER_PAGE)
    pages = sorted({1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, last // 2, last} & set(range(1, last + 1)))
    return [measure(bench, "website, by page", replace(request, page=p)) for p in pages]


# -- statistics ---------------------------------------------------------------------------------
# GET /api/goals-conversions/statistics, measured through the function's own handler and event.
STATISTICS_FUNCTION = ROOT / "functions" / "conversion_statistics" / "app.py"
STATISTICS_EVENT = ROOT / "events" / "conversion_statistics.json"
STATISTICS_RANGES = {
    "30 days": ("2025-06-01 00:00:00", "2025-06-30 23:59:59"),
    "a year": ("2025-01-01 00:00:00", "2025-12-31 23:59:59"),
}
STATISTICS_TIMEZONES = ("UTC", "Europe/Paris", "Asia/Kolkata")


def statistics_rows(bench: Bench, table_name: str, endpoint: str) -> list[tuple[int, str, str, int, Counter[str]]]:
    """Items read by a statistics request (website 1, day intervals) over 30 days and over a year,
    in UTC, Europe/Paris and Asia/Kolkata, through the function's handler on this table (its key
    has no rate limit here, so no counter is written). Returns (N, range, timezone, status, counts)."""
    from conversions_core.http import get_services
    from conversions_core.services import Services
    from goals_conversions_local.runtime import LambdaContext, apply_environment, load_module

    apply_environment(Template())
    os.environ.update(
        DATA_TABLE_NAME=table_name,
        DEFAULT_RATE_LIMIT_PER_MINUTE="0",
        POWERTOOLS_METRICS_DISABLED="true",
        AWS_ENDPOINT_URL_DYNAMODB=endpoint,
    )
    module = load_module(f"bench_statistics_{table_name}", STATISTICS_FUNCTION)
    services = Services.from_env()  # this size's table, not the process's first
    module.app.dependency_overrides[get_services] = lambda: services
    meter = Meter(services.client, bench.meter.count_partitions)
    event = json.loads(STATISTICS_EVENT.read_text())
    event["headers"]["authorization"] = f"Bearer {KEYS[OWNER]}"
    rows = []
    for name, (start, end) in STATISTICS_RANGES.items():
        for zone in STATISTICS_TIMEZONES:
            query = {"website_id": str(WEBSITE), "datetime_start": start, "datetime_end": end}
            query |= {"interval": "day", "timezone": zone}
            request = {**event, "queryStringParameters": query, "rawQueryString": urlencode(query)}
            meter.take()
            response = module.lambda_handler(request, LambdaContext("bench-statistics", "bench"))
            counts = meter.take()
            if response["statusCode"] != 200:
                raise SystemExit(f"statistics {name} {zone}: {response['statusCode']} {response.get('body')}")
            counts["total"] = json.loads(response["body"])["meta"]["total"]
            rows.append((bench.size, name, zone, response["statusCode"], counts))
    return rows


def statistics_table(rows: list[tuple[int, str, str, int, Counter[str]]]) -> str:
    lines = [
        "| N | range (day intervals) | timezone | total | calls | buckets + keys + other = read |",
        "|---:|---|---|---:|---:|---|",
    ]
    for size, name, zone, _, c in rows:
        read = f"{c['buckets']} + {c['conversions']} + {c['other']} = {Meter.read(c):,}"
        lines.append(f"| {size:,} | {name} | {zone} | {c['total']:,} | {c['calls']} | {read} |")
    return "\n".join(lines)


# -- report -------------------------------------------------------------------------------------


def list_table(rows: list[Row]) -> str:
    lines = [
        "| N | request | order | page | returned | total | ours: calls | ours: buckets + keys + other = read"
        " | naive: calls | naive: read | naive / ours |",
        "|---:|---|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        o, n = r.ours, r.naive
        flag = "" if r.within_goal else " **over goal**"
        lines.append(
            f"| {r.size:,} | {r.request} | {r.order} | {r.page:,} | {r.returned} | {r.total:,} | {o['calls']} "
            f"| {o['buckets']} + {o['conversions']} + {o['other']} = {Meter.read(o):,}{flag} "
            f"| {n['calls']} | {Meter.read(n):,} | {r.ratio:,.1f} |"
        )
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    """Per size, the most items any list request read (its page and per-page), ours and naive."""
    lines = [
        f"| N | ours: most read (request) | goal (per page + {ALLOWANCE}) | naive: most read | all within goal |",
        "|---:|---|---|---:|---|",
    ]
    for size in sorted({r.size for r in rows}):
        chosen = [r for r in rows if r.size == size]
        worst = max(chosen, key=lambda r: Meter.read(r.ours) - r.per_page)
        most_naive = max(Meter.read(r.naive) for r in chosen)
        ok = "yes" if all(r.within_goal for r in chosen) else "**no**"
        lines.append(
            f"| {size:,} | {Meter.read(worst.ours):,} ({worst.request}, {worst.order}, page {worst.page:,}) "
            f"| {worst.per_page + ALLOWANCE:,} | {most_naive:,} | {ok} |"
        )
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
    left.axhline(PER_PAGE + ALLOWANCE, color="grey", linestyle=":", label=f"goal: {PER_PAGE} + {ALLOWANCE}")
    left.set(xscale="log", yscale="log", xlabel="conversions on the website (N)", ylabel="items read per request")
    left.set_title(f"Items read vs N (newest first, {PER_PAGE} a page)")
    left.legend(fontsize=7)
    pages = [r.page for r in by_page]
    right.plot(pages, [Meter.read(r.ours) for r in by_page], "o-", label="ours")
    right.plot(pages, [Meter.read(r.naive) for r in by_page], "x--", label="naive")
    right.axhline(PER_PAGE + ALLOWANCE, color="grey", linestyle=":", label="goal")
    right.set(xscale="log", yscale="log", xlabel="page", ylabel="items read per request")
    right.set_title(f"Items read vs page (N = {by_page[0].size:,}, website, newest first)")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def report(
    rows: list[Row],
    by_page: list[Row],
    statistics: list[Any],
    page_size: int,
    output: Path,
    engine_line: str,
    drawn: bool = True,
) -> str:
    text = "\n\n".join(
        [
            engine_line,
            f"### Most items read by a list request (any request and page below; goal: per page + {ALLOWANCE})",
            summary(rows + by_page),
            f"### Items read per list request ({PER_PAGE} a page unless said)",
            list_table(rows),
            f"### Items read by page (N = {page_size:,}, website, newest first)",
            list_table(by_page),
            "### Items read per statistics request (website 1, day intervals)",
            statistics_table(statistics),
        ]
    )
    (output / "results.md").write_text(text + "\n")
    if by_page and drawn:
        plot(rows, by_page, output / "items_read.png")
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--no-plot", dest="plot", action="store_false", help="no items_read.png (no matplotlib)")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    page_size = max(sizes)  # pages are walked where the naive way's skips cost the most
    statistics_sizes = {min(sizes), max(sizes)}
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    use_local_credentials()
    server, endpoint = start_embedded_dynamodb()
    moto_speedup.install()
    client = boto3.client("dynamodb", endpoint_url=endpoint)
    meter = Meter(client, {count_partition(user) for user in KEYS})
    template = Template()
    rows: list[Row] = []
    by_page: list[Row] = []
    statistics: list[Any] = []
    for size in sizes:
        table_name = new_table(client, template, size)
        repository = Repository.build(client, table_name)
        loading = time.monotonic()
        items = load(repository, table_name, size)
        owner = repository.accounts.user_by_key_hash(hash_api_key(KEYS[OWNER]))
        assert owner is not None
        bench = Bench(size, repository, meter, owner, {})
        meter.take()
        print(f"N={size:,}: {items:,} items loaded in {time.monotonic() - loading:.0f} s", file=sys.stderr)
        rows += list_rows(bench)
        if size == page_size:
            by_page = page_rows(bench)
        if size in statistics_sizes:
            statistics += statistics_rows(bench, table_name, endpoint)
        client.delete_table(TableName=table_name)
        print(f"N={size:,}: measured, {time.monotonic() - started:.0f} s so far", file=sys.stderr)
        # after every size, so that a cut run leaves figures
        report(rows, by_page, statistics, page_size, output, engine(endpoint), args.plot)
    server.shutdown()
    print(report(rows, by_page, statistics, page_size, output, engine(endpoint), args.plot))
    print(f"\nWrote {output / 'results.md'} and {output / 'items_read.png'} in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
