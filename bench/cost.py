"""What one request of each kind costs: measured here, priced at list prices.

Runs the functions' handlers in this process (warm, as in a reused Lambda container) on their
real events (events/*.json, with the ids they act on filled in) over the embedded DynamoDB
(moto): the demo seed's users, websites, goals and visitors, the demo user's rate limit raised so
that nothing is refused (the counter is still written, as for any limited user), and 10,000
conversions of website 1 over the last year with their counts (bench/loading.py). Per request:
- the handler thread's CPU time (moto answers in other threads, so its work is not counted);
- every DynamoDB call and its request units, from the items' sizes (bench/units.py);
and for the counting function, a stream batch of 1 and of 100 creates (the records read from
the embedded stream), its handler's CPU time and units (the count buckets, the markers and the
changes feed's entries and head), and its EventBridge events (PutEvents, 10 a call), shared by
the batch's conversions. The changes feed's call is measured after them, on the feed they wrote.

Assumptions, all here:
- us-east-1 list prices (PRICE); API Gateway HTTP API ($1.00 a million; a REST API was $3.50);
  Lambda arm64; DynamoDB on demand; reading the stream from Lambda is free; logs, metrics,
  traces and data transfer are not counted.
- Lambda gives CPU in proportion to memory, one vCPU at 1,769 MB: CPU time measured here (one
  core of this machine, taken as fast as a Graviton core) takes 1769/M times as long at M MB.
  The handler is taken as CPU-bound but for its DynamoDB calls, which wait the same at any
  memory: 5 ms a call, 15 ms a TransactWriteItems (DynamoDB in the same region).
- Billed duration: CPU time scaled plus DynamoDB waits, rounded up to the millisecond.
- A create with an Idempotency-Key, list pages past the first and statistics are priced too.

Usage: `make cost`, or
`.venv/bin/python bench/cost.py [--runs N] [--size N] [--no-memory] [--json] [--output bench/results]`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import math
import os
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import moto_speedup
from imports import LOCAL_RUNTIME, run_once
from loading import conversion_id, load_conversions
from report import engine, publish
from units import Call, Recorder

from conversions_core import conversion_service
from conversions_core.auth import hash_api_key
from conversions_core.repository import Repository
from conversions_core.repository.items import StoredConversion
from conversions_core.seed import load_seed
from conversions_core.values import DATETIME_FORMAT
from goals_conversions_local.embedded import dynamodb_endpoint, ensure_event_buses, ensure_tables
from goals_conversions_local.runtime import Functions, LambdaContext, apply_environment
from goals_conversions_local.streams import StreamPump
from goals_conversions_local.template import Template

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"

# -- assumptions -----------------------------------------------------------------------------
REGION = "us-east-1"
TEMPLATE_MEMORY_MB = 256  # template.yaml Globals.Function.MemorySize
MEMORIES_MB = (128, 256, 512, 1024)
FULL_VCPU_MB = 1769
DYNAMODB_MS = {"TransactWriteItems": 15.0}
DYNAMODB_DEFAULT_MS = 5.0
# List prices, us-east-1 (USD per unit).
PRICE = {
    "lambda_gb_second_arm64": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "api_gateway_http_request": 1.00 / 1e6,  # first 300 million a month; a REST API is $3.50
    "dynamodb_read_request_unit": 0.125 / 1e6,
    "dynamodb_write_request_unit": 0.625 / 1e6,
    "eventbridge_custom_event": 1.00 / 1e6,  # PutEvents, per 64 KB chunk of an entry
}
EVENTBRIDGE_MS = 20.0  # a PutEvents call, waited like a DynamoDB call
TARGETS = {"list": 2.50, "get": 2.30, "create": 8.00}  # USD per million (the issue)
TARGET_BATCH = 100  # the create's target includes the counting function's share at this batch size
KEY = "demo-key"
CONVERSIONS = 10_000  # of website 1 over the last year, goals 1 and 2 (--size)
PER_PAGE = 25
COUNTING_BATCHES = (1, 100)


# -- the measured service --------------------------------------------------------------------


@dataclass
class Measured:
    """One kind of request: its calls (the last run's), CPU times, response size."""

    name: str
    calls: list[Call]
    cpu_ms: list[float]
    response_bytes: int = 0
    batch: int = 1  # conversions sharing it (the counting function)
    events: int = 0  # EventBridge events it published
    event_calls: int = 0  # its PutEvents calls
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def read_units(self) -> float:
        return sum(c.read_units for c in self.calls)

    @property
    def write_units(self) -> float:
        return sum(c.write_units for c in self.calls)

    def lambda_ms(self, memory_mb: int) -> int:
        cpu = statistics.median(self.cpu_ms) * max(1.0, FULL_VCPU_MB / memory_mb)
        waits = sum(DYNAMODB_MS.get(c.operation, DYNAMODB_DEFAULT_MS) for c in self.calls)
        return math.ceil(cpu + waits + self.event_calls * EVENTBRIDGE_MS)

    def dollars(self, memory_mb: int, front_door: bool = True) -> dict[str, float]:
        """USD per request (shared by `batch` conversions for the counting function)."""
        compute = self.lambda_ms(memory_mb) / 1000 * memory_mb / 1024 * PRICE["lambda_gb_second_arm64"]
        return {
            "lambda": (compute + PRICE["lambda_request"]) / self.batch,
            "api_gateway": PRICE["api_gateway_http_request"] if front_door else 0.0,
            "dynamodb": (
                self.read_units * PRICE["dynamodb_read_request_unit"]
                + self.write_units * PRICE["dynamodb_write_request_unit"]
            )
            / self.batch,
            "eventbridge": self.events * PRICE["eventbridge_custom_event"] / self.batch,
        }


def setup(size: int) -> tuple[Functions, Template, Repository, Recorder, list[int]]:
    dynamodb_endpoint()
    template = Template()
    apply_environment(template)
    moto_speedup.install()
    client = boto3.client("dynamodb")
    ensure_tables(template, client)
    ensure_event_buses(template)  # the counting function publishes to moto's EventBridge
    seed = json.loads((ROOT / "seeds" / "demo.json").read_text())
    seed["conversions"] = []  # replaced by a year of conversions with their counts
    for user in seed["users"]:
        user["rate_limit_per_minute"] = 1_000_000
    recorder = Recorder(REGION)
    repository = Repository.build(recorder.attach(client), os.environ["DATA_TABLE_NAME"])
    load_seed(repository, seed)
    conversions = year_of_conversions(size)
    load_conversions(os.environ["DATA_TABLE_NAME"], conversions)
    return Functions(template), template, repository, recorder, [c.id for c in conversions]


def year_of_conversions(size: int) -> list[StoredConversion]:
    rng = random.Random(size)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    moments = sorted(now - timedelta(seconds=rng.randrange(365 * 86400)) for _ in range(size))
    taken: set[int] = set()
    return [
        StoredConversion(
            id=conversion_id(moment, taken),
            goal_id=1 + n % 2,
            website_id=1,
            user_id=1,
            visitor_id=None,
            session_id=None,
            event_id=None,
            datetime=moment.strftime(DATETIME_FORMAT),
        )
        for n, moment in enumerate(moments)
    ]


def event(name: str, conversion_id: int | None = None, query: dict[str, str] | None = None, **headers: str) -> dict:
    """The function's real event, acting on `conversion_id`, with `query` and extra headers."""
    data = json.loads((EVENTS / f"{name}.json").read_text())
    data["headers"] = {**data["headers"], "authorization": f"Bearer {KEY}", **headers}
    if conversion_id is not None:
        data["pathParameters"] = {"conversion_id": str(conversion_id)}
        data["rawPath"] = data["requestContext"]["http"]["path"] = f"/api/goals-conversions/{conversion_id}"
    if query is not None:
        data["queryStringParameters"], data["rawQueryString"] = query, urlencode(query)
    return data


def json_body(data: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The event with a JSON body instead of its own."""
    headers = {name: value for name, value in data["headers"].items() if name != "content-type"}
    return {
        **data,
        "headers": {**headers, "content-type": "application/json"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


class Runner:
    """Invokes handlers warm, timing the handler thread's CPU and recording its DynamoDB calls."""

    def __init__(self, functions: Functions, template: Template, recorder: Recorder):
        self.functions, self.template, self.recorder = functions, template, recorder
        self.attached: set[int] = set()

    def handler(self, name: str) -> Any:
        module = self.functions.module(self.template.function(name))
        # Imported once the functions' environment is set (it names the metrics' namespace).
        from conversions_core.http import get_services

        # The HTTP functions' services (one per container, here shared), or the counting function's table.
        client = module.table.client if hasattr(module, "table") else get_services().client
        if id(client) not in self.attached:
            self.recorder.attach(client)
            self.attached.add(id(client))
        return module.lambda_handler

    def run(self, label: str, name: str, events: list[dict[str, Any]], expected: int, warm: int = 5) -> Measured:
        handler = self.handler(name)
        measured = Measured(label, [], [])
        bodies = []
        for number, payload in enumerate(events):
            self.recorder.take()
            payload = copy.deepcopy(payload)
            with contextlib.redirect_stdout(io.StringIO()):  # the metrics' EMF lines
                hooks, started = self.recorder.overhead, time.thread_time()
                response = handler(payload, LambdaContext(name, f"cost-{number}"))
                cpu_ms = (time.thread_time() - started - (self.recorder.overhead - hooks)) * 1000
            calls = self.recorder.take()
            status = response.get("statusCode", 200)
            if status != expected:
                raise SystemExit(f"{label}: {status} {response.get('body')}")
            bodies.append(response.get("body") or "")
            if number >= warm:
                measured.cpu_ms.append(cpu_ms)
                measured.calls = calls
        measured.response_bytes = len(bodies[-1])
        measured.extra["bodies"] = bodies
        return measured


def measure(runs: int, size: int, memory: bool = True) -> tuple[list[Measured], dict[str, Measured], dict[str, int]]:
    functions, template, repository, recorder, stored = setup(size)
    runner = Runner(functions, template, recorder)
    count = 5 + runs
    middle = max(1, size // PER_PAGE // 2)
    list_query = {"website_id": "1", "order_type": "DESC", "results_per_page": str(PER_PAGE)}
    results = [
        runner.run("list (page 1)", "list_conversions", [event("list_conversions", query=list_query)] * count, 200),
        runner.run(
            f"list (page {middle}, the middle)",
            "list_conversions",
            [event("list_conversions", query={**list_query, "page": str(middle)})] * count,
            200,
        ),
        runner.run(
            "get", "get_conversion", [event("get_conversion", random.choice(stored)) for _ in range(count)], 200
        ),
    ]
    create = runner.run("create", "create_conversion", [event("create_conversion")] * count, 201)
    made = [json.loads(body)["data"]["id"] for body in create.extra["bodies"]]
    keyed = [event("create_conversion", **{"idempotency-key": f"cost-{n}"}) for n in range(count)]
    valued = json_body(event("create_conversion"), {"goal_id": 1, "value": "19.90", "currency": "EUR"})
    results += [
        create,
        runner.run("create (JSON, with a value)", "create_conversion", [valued] * count, 201),
        runner.run("create (Idempotency-Key)", "create_conversion", keyed, 201),
        runner.run("update", "update_conversion", [event("update_conversion", i) for i in made], 200),
        runner.run("delete", "delete_conversion", [event("delete_conversion", i) for i in made], 204),
    ]
    if (EVENTS / "conversion_statistics.json").exists():
        statistics_event = event("conversion_statistics")
        grouped = event("conversion_statistics")
        grouped["queryStringParameters"] = {**grouped["queryStringParameters"], "group_by": "goal"}
        grouped["rawQueryString"] = urlencode(grouped["queryStringParameters"])
        results += [
            runner.run("statistics (30 days, Europe/Paris)", "conversion_statistics", [statistics_event] * count, 200),
            runner.run("statistics (30 days, group_by=goal)", "conversion_statistics", [grouped] * count, 200),
        ]
    counting = counting_shares(runner, repository, template)
    # The feed now holds the counting runs' 406 changes: a call from the start reads `limit` + 1
    # entries; filtered on a website none is of, FILTER_READS x limit + 1 (passed over).
    for label, query in (
        ("changes (limit 100)", {"limit": "100"}),
        ("changes (limit 100, website_id matching none)", {"limit": "100", "website_id": "2"}),
    ):
        results.append(runner.run(label, "list_changes", [event("list_changes", query=query)] * count, 200))
    return results, counting, peak_memory(template, stored[0]) if memory else {}


def counting_shares(runner: Runner, repository: Repository, template: Template) -> dict[str, Measured]:
    """The counting function's handler on stream batches of 1 and of 100 creates of one website."""
    pump = StreamPump(template, embedded=True)
    batches: list[dict[str, Any]] = []
    pump.invoke = lambda event: batches.append(event) or {"batchItemFailures": []}
    pump.drain()  # what the measured requests left on the stream
    owner = repository.accounts.user_by_key_hash(hash_api_key(KEY))
    shares = {}
    for size in COUNTING_BATCHES:
        events = []
        for _ in range(6 if size == 1 else 4):  # the first is a warm-up
            batches.clear()
            for n in range(size):
                conversion_service.create(repository, owner, 1 + n % 2, {})
            pump.drain()
            events.append({"Records": [r for b in batches for r in b["Records"]]})
            assert len(events[-1]["Records"]) == size
        measured = runner.run(f"counting, {size} a batch", "count_conversions", events, 200, warm=1)
        measured.batch = size
        measured.events, measured.event_calls = size, math.ceil(size / 10)  # one event per change
        shares[f"counting, {size} a batch"] = measured
    return shares


def peak_memory(template: Template, conversion: int) -> dict[str, int]:
    """Peak RSS (MB) of a fresh interpreter importing each HTTP function and answering its event (this
    interpreter and the layer's sources: imports.py measures the layer as built, which needs the index)."""
    peaks = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, payload in (
            ("list_conversions", event("list_conversions")),
            ("get_conversion", event("get_conversion", conversion)),
            ("create_conversion", event("create_conversion")),
        ):
            path = Path(scratch) / f"{name}.json"
            path.write_text(json.dumps(payload))
            spec = template.function(name)
            peaks[name] = round(run_once(LOCAL_RUNTIME, spec.code_dir, spec.environment, path)["rss_kb"] / 1024)
    return peaks


# -- report ----------------------------------------------------------------------------------


def per_million(value: float) -> str:
    return f"{value * 1e6:.2f}"


def with_counting(request: Measured, share: Measured, memory: int) -> float:
    return sum(request.dollars(memory).values()) + sum(share.dollars(memory, front_door=False).values())


def cost_table(results: list[Measured], counting: dict[str, Measured]) -> str:
    memories = " | ".join(f"{m} MB: ms / $ per M" for m in MEMORIES_MB)
    lines = [
        f"| request | CPU here (ms) | RRU | WRU | {memories} | of which API GW + DynamoDB + EventBridge ($/M) "
        "| cheapest | fastest |",
        "|---|---:|---:|---:|" + "---:|" * len(MEMORIES_MB) + "---:|---|---|",
    ]
    rows: list[tuple[str, Measured, Measured | None]] = []
    for r in results:
        rows.append((r.name, r, None))
        if r.name == "create":
            rows += [(f"create + {name}", r, share) for name, share in counting.items()]
    for label, request, share in rows:
        totals = {
            m: with_counting(request, share, m) if share else sum(request.dollars(m).values()) for m in MEMORIES_MB
        }
        ms = {m: request.lambda_ms(m) + (share.lambda_ms(m) / share.batch if share else 0) for m in MEMORIES_MB}
        cells = " | ".join(f"{ms[m]:.0f} / {per_million(totals[m])}" for m in MEMORIES_MB)
        fixed = request.dollars(MEMORIES_MB[0])
        shared = share.dollars(128) if share else {"dynamodb": 0.0, "eventbridge": 0.0}
        fixed_total = fixed["api_gateway"] + fixed["dynamodb"] + shared["dynamodb"] + shared["eventbridge"]
        cheapest = min(MEMORIES_MB, key=lambda m: totals[m])
        fastest = min(MEMORIES_MB, key=lambda m: request.lambda_ms(m))
        lines.append(
            f"| {label} | {statistics.median(request.cpu_ms):.1f} | {request.read_units:g} | {request.write_units:g} "
            f"| {cells} | {per_million(fixed_total)} | {cheapest} MB | {fastest} MB |"
        )
    for name, share in counting.items():
        lines.append(
            f"| ({name}: the whole batch) | {statistics.median(share.cpu_ms):.1f} | {share.read_units:g} "
            f"| {share.write_units:g} | "
            + " | ".join(f"{share.lambda_ms(m)} / -" for m in MEMORIES_MB)
            + " | - | - | - |"
        )
    return "\n".join(lines)


def calls_table(results: list[Measured], counting: dict[str, Measured]) -> str:
    lines = [
        "| request | call | consistency | items | units | how |",
        "|---|---|---|---|---:|---|",
    ]
    for measured in [*results, *counting.values()]:
        for call in measured.calls:
            units = f"{call.read_units:g} RRU" if call.read_units else f"{call.write_units:g} WRU"
            lines.append(
                f"| {measured.name} | {call.operation} | {call.consistency} | {call.items_text()} | {units} "
                f"| {call.arithmetic} |"
            )
    return "\n".join(lines)


def verdicts(results: list[Measured], counting: dict[str, Measured]) -> str:
    memory = TEMPLATE_MEMORY_MB
    by_name = {r.name: r for r in results}
    # The three figures: a list's page 1 (its $5.20 before), a get, a create. A deeper page
    # costs more (it reads count buckets to find its place); the table above gives it, unjudged.
    figures = [
        ("list", "page 1", sum(by_name["list (page 1)"].dollars(memory).values())),
        ("get", "", sum(by_name["get"].dollars(memory).values())),
    ]
    figures += [
        (
            "create",
            f"with the counting function's share at {share.batch} a batch",
            with_counting(by_name["create"], share, memory),
        )
        for share in counting.values()
        if share.batch == TARGET_BATCH
    ]
    lines = [f"Targets at {memory} MB (the template's), USD per million requests:"]
    for name, how, got in figures:
        verdict = "met" if got * 1e6 <= TARGETS[name] else "**missed**"
        lines.append(
            f"- {name}{f' ({how})' if how else ''}: {got * 1e6:.2f}, target at most {TARGETS[name]:.2f}: {verdict}"
        )
    return "\n".join(lines)


def memory_notes(results: list[Measured], peaks: dict[str, int]) -> str:
    cheapest = {min(MEMORIES_MB, key=lambda m: sum(r.dollars(m).values())) for r in results}
    peak = "- Peak RSS: not measured (--no-memory)."
    if peaks:
        peak = (
            "- Peak RSS (VmHWM) of a fresh interpreter that imported the function and answered its event, on this "
            f"machine: {', '.join(f'{name} {mb} MB' for name, mb in peaks.items())}, "
            f"{'under' if max(peaks.values()) < min(MEMORIES_MB) else '**over**'} {min(MEMORIES_MB)} MB. Lambda's "
            "'Max Memory Used' (the REPORT line) is the figure to check before choosing the least memory."
        )
    return "\n".join(
        [
            f"- Cheapest per request: {', '.join(f'{m} MB' for m in sorted(cheapest))} for every request kind. Below "
            f"{FULL_VCPU_MB} MB the CPU part costs the same at any memory (less CPU, longer, billed in proportion), "
            "so only the DynamoDB waits grow with memory: the least memory is the cheapest.",
            f"- Fastest: {max(MEMORIES_MB)} MB for every request kind (the CPU part shrinks with memory up to "
            f"{FULL_VCPU_MB} MB; the DynamoDB waits do not).",
            peak,
        ]
    )


def report(results: list[Measured], counting: dict[str, Measured], peaks: dict[str, int], size: int) -> str:
    assumptions = (
        f"Region {REGION}; HTTP API ${PRICE['api_gateway_http_request'] * 1e6:.2f}/M requests; Lambda arm64 "
        f"${PRICE['lambda_gb_second_arm64']}/GB-s and ${PRICE['lambda_request'] * 1e6:.2f}/M requests; DynamoDB on "
        f"demand ${PRICE['dynamodb_write_request_unit'] * 1e6:.3f}/M write units and "
        f"${PRICE['dynamodb_read_request_unit'] * 1e6:.3f}/M read units (a transactional write 2 units per KB, a "
        "strongly consistent read 1 unit per 4 KB, eventually consistent half); EventBridge "
        f"${PRICE['eventbridge_custom_event'] * 1e6:.2f}/M events. Lambda time: CPU measured here x "
        f"{FULL_VCPU_MB}/memory (1 vCPU at {FULL_VCPU_MB} MB) + {DYNAMODB_DEFAULT_MS:g} ms a DynamoDB call "
        f"({DYNAMODB_MS['TransactWriteItems']:g} ms a TransactWriteItems, {EVENTBRIDGE_MS:g} ms a PutEvents). "
        f"The account: {size:,} conversions "
        f"of website 1 over a year; pages of {PER_PAGE}. The counting function's share of a create: its invocation, "
        "duration and write units divided by the conversions in its batch (an update or delete adds the same share: "
        "one stream record each)."
    )
    return "\n\n".join(
        [
            "### Cost per million requests",
            assumptions,
            cost_table(results, counting),
            verdicts(results, counting),
            memory_notes(results, peaks),
            "### Every request's DynamoDB work (the last measured request of each kind)",
            calls_table(results, counting),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="measured requests of each kind (after 5 warm-ups)")
    parser.add_argument("--size", type=int, default=CONVERSIONS, help="conversions of website 1")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="no peak RSS (fresh interpreters)")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    started = time.monotonic()
    results, counting, peaks = measure(args.runs, args.size, args.memory)
    if args.json:
        raw = {
            m.name: {
                "cpu_ms_median": statistics.median(m.cpu_ms),
                "read_units": m.read_units,
                "write_units": m.write_units,
                "batch": m.batch,
                "response_bytes": m.response_bytes,
                "lambda_ms": {mb: m.lambda_ms(mb) for mb in MEMORIES_MB},
                "usd_per_million": {mb: sum(m.dollars(mb, m.batch == 1).values()) * 1e6 for mb in MEMORIES_MB},
                "calls": [c.__dict__ for c in m.calls],
            }
            for m in [*results, *counting.values()]
        }
        print(json.dumps(raw, indent=2))
        return
    text = report(results, counting, peaks, args.size)
    publish(text, args.output, "cost.md", f" in {time.monotonic() - started:.0f} s", engine_line=engine())


if __name__ == "__main__":
    main()
