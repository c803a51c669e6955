"""What one request of each kind costs: measured here, priced at list prices (README, "Cost").

Runs the five handlers in this process (warm, as in a reused Lambda container) over the embedded
DynamoDB (moto) and, per request kind, measures:
- the handler thread's CPU time (moto runs in other threads, so its work is not counted);
- every DynamoDB call the handler makes, with the items it reads and writes and their sizes,
  turned into read/write request units by DynamoDB's on-demand rules (moto's own
  ConsumedCapacity is not realistic);
- the response size.
It then estimates the billed Lambda duration and prices everything; every assumption is a
constant below. Usage: `make cost` (or `.venv/bin/python bench/cost.py [--runs N] [--json]`).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# -- assumptions -----------------------------------------------------------------------------
REGION = "us-east-1"
MEMORY_MB = 256  # template.yaml Globals.Function.MemorySize
# Lambda gives a function CPU in proportion to memory: one full vCPU at 1,769 MB. CPU work
# measured here on one core therefore takes 1769/256 = 6.9 times as long at 256 MB (assuming a
# Graviton core is as fast as this machine's for this code).
CPU_SCALE = 1769 / MEMORY_MB
# DynamoDB latency seen from Lambda in the same region (AWS: "single-digit milliseconds").
DYNAMODB_MS = {"transact_write_items": 15.0}
DYNAMODB_DEFAULT_MS = 5.0
# List prices, us-east-1, on-demand (per unit, USD).
PRICE = {
    "lambda_gb_second_arm64": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "api_gateway_rest_request": 3.50 / 1e6,  # first 333 million a month
    "dynamodb_read_request_unit": 0.125 / 1e6,
    "dynamodb_write_request_unit": 0.625 / 1e6,
}
LISTED_ITEM_GSIS = 2  # ByUser and ByGoal project every listed conversion item (ALL)
COUNT_ITEM_BYTES = 300  # size assumed for items a Select=COUNT query reads (not returned)
CONVERSIONS = 200  # conversions in the measured account (one website, one goal)
PER_PAGE = 25


# -- DynamoDB sizes and request units --------------------------------------------------------


def value_size(value: dict[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        digits = len(str(data).lstrip("-").replace(".", "").lstrip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in data.items())
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in data)
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: v}) for v in data)
    raise ValueError(kind)


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def is_listed(key_or_item: dict[str, Any]) -> bool:
    """The listed conversion item is the one both GSIs project."""
    return key_or_item.get("pk", {}).get("S", "").endswith("#CONVERSIONS")


class Call:
    def __init__(self, operation: str, params: dict[str, Any]):
        self.operation = operation
        self.params = copy.deepcopy(params)
        self.started = time.perf_counter()
        self.response: dict[str, Any] = {}
        self.ms = 0.0

    def units(self) -> tuple[float, float, int, int]:
        """(read request units, write request units, items read, items written)."""
        p, r = self.params, self.response
        if self.operation == "get_item":
            factor = 1 if p.get("ConsistentRead") else 0.5
            size = item_size(r["Item"]) if "Item" in r else 0
            return factor * max(1, math.ceil(size / 4096)), 0, int("Item" in r), 0
        if self.operation == "batch_get_item":
            rru, read = 0.0, 0
            for table, request in p["RequestItems"].items():
                factor = 1 if request.get("ConsistentRead") else 0.5
                items = r.get("Responses", {}).get(table, [])
                rru += factor * (sum(max(1, math.ceil(item_size(i) / 4096)) for i in items) or 1)
                rru += factor * (len(request["Keys"]) - len(items))  # misses cost the minimum too
                read += len(items)
            return rru, 0, read, 0
        if self.operation == "query":
            factor = 0.5 if "IndexName" in p or not p.get("ConsistentRead") else 1
            if "Items" in r:
                size = sum(item_size(i) for i in r["Items"])
            else:
                size = r.get("ScannedCount", 0) * COUNT_ITEM_BYTES
            return factor * max(1, math.ceil(size / 4096)), 0, r.get("ScannedCount", 0), 0
        if self.operation in ("put_item", "update_item", "delete_item"):
            target = p.get("Item") or p.get("Key") or {}
            size = item_size(p["Item"]) if "Item" in p else item_size(r.get("Attributes", {}))
            wru = max(1, math.ceil(size / 1024)) + (LISTED_ITEM_GSIS if is_listed(target) else 0)
            return 0, wru, 0, 1
        if self.operation == "transact_write_items":
            wru, written = 0.0, 0
            for action in p["TransactItems"]:
                ((kind, body),) = action.items()
                size = item_size(body["Item"]) if kind == "Put" else 0
                wru += 2 * max(1, math.ceil(size / 1024))  # transactional: 2 units per KB, at least 1 KB
                target = body.get("Item") or body.get("Key") or {}
                if kind != "ConditionCheck":
                    written += 1
                    wru += LISTED_ITEM_GSIS if is_listed(target) else 0  # index writes are standard writes
            return 0, wru, 0, written
        raise ValueError(f"unpriced DynamoDB operation {self.operation}")


class Recorder:
    """Every DynamoDB call a client makes, with its parameters, response and duration."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._pending = threading.local()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build.dynamodb", self._before)
        client.meta.events.register("after-call.dynamodb", self._after)

    def _before(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        name = "".join("_" + c.lower() if c.isupper() else c for c in model.name).lstrip("_")
        self._pending.call = Call(name, params)

    def _after(self, parsed: dict[str, Any], **_: Any) -> None:
        call = self._pending.call
        call.response = parsed
        call.ms = (time.perf_counter() - call.started) * 1000
        self.calls.append(call)


# -- the measured service --------------------------------------------------------------------


def setup() -> tuple[Any, dict[str, Any], str]:
    import sys

    sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "conversions_core"), str(ROOT / "src")]
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    from goals_conversions_local.embedded import dynamodb_endpoint, ensure_tables
    from goals_conversions_local.runtime import Functions, apply_environment
    from goals_conversions_local.template import Template

    template = Template()
    apply_environment(template)
    dynamodb_endpoint()
    import boto3

    from conversions_core.repository import Repository
    from conversions_core.seed import load_seed

    ensure_tables(template, boto3.client("dynamodb"))
    key = "cost-bench-key"
    repository = Repository(boto3.client("dynamodb"), os.environ["DATA_TABLE_NAME"])
    load_seed(
        repository,
        {
            # A limited user, as by default: every request also counts against the rate limit.
            "users": [{"user_id": 1, "api_key": key, "status": "active", "rate_limit_per_minute": 1_000_000}],
            "websites": [{"website_id": 1, "user_id": 1, "host": "shop.example", "tracking_mode": "normal"}],
            "goals": [
                {"goal_id": 1, "website_id": 1, "type": "custom", "name": "Signup", "key": "signup"},
                {"goal_id": 2, "website_id": 1, "type": "pageview", "name": "Buy", "path": "/thanks"},
            ],
            "visitors": [{"visitor_id": 1, "website_id": 1}],
            "sessions": [{"session_id": 1, "website_id": 1, "visitor_id": 1}],
            "events": [{"event_id": 1, "website_id": 1, "session_id": 1}],
            "conversions": [
                {
                    "id": i,
                    "goal_id": 1,
                    "visitor_id": 1,
                    "session_id": 1,
                    "event_id": 1,
                    "datetime": f"2026-05-{1 + i // 24 % 28:02d} {i % 24:02d}:00:00",
                }
                for i in range(1, CONVERSIONS + 1)
            ],
        },
    )
    functions = Functions(template)
    handlers = {spec.short_name: (functions.module(spec), functions.handler(spec)) for spec in template.functions()}
    return functions, handlers, key


def event(
    name: str,
    key: str,
    conversion_id: int | None = None,
    body: dict[str, Any] | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    data = json.loads((ROOT / "events" / f"{name}.json").read_text())
    headers = {"Authorization": f"Bearer {key}", "Host": "api.example.com", "X-Forwarded-Proto": "https"}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        from urllib.parse import urlencode

        data["body"], data["isBase64Encoded"] = urlencode(body), False
    data["headers"] = headers
    data["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    if query is not None:
        data["queryStringParameters"] = query or None
        data["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
    if conversion_id is not None:
        data["pathParameters"] = {"conversion_id": str(conversion_id)}
        data["path"] = f"/api/goals-conversions/{conversion_id}"
    return data


class Context:
    function_name = "cost-bench"
    memory_limit_in_mb = MEMORY_MB
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cost-bench"
    aws_request_id = "cost-bench"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def measure(runs: int) -> dict[str, dict[str, Any]]:
    _, handlers, key = setup()
    recorder = Recorder()
    for module, _handler in handlers.values():
        recorder.attach(module.services.client)

    def run(name: str, make_event: Any, expected: int, count: int) -> tuple[list[dict[str, Any]], list[Any]]:
        module, handler = handlers[name]
        samples, responses = [], []
        for index in range(count):
            payload = make_event(index)
            recorder.calls.clear()
            wall, cpu = time.perf_counter(), time.thread_time()
            response = handler(payload, Context())
            cpu, wall = (time.thread_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000
            assert response["statusCode"] == expected, (name, response)
            samples.append(
                {
                    "wall_ms": wall,
                    "cpu_ms": cpu,
                    "calls": list(recorder.calls),
                    "bytes": len(response.get("body") or ""),
                }
            )
            responses.append(json.loads(response["body"]) if response.get("body") else None)
        return samples, responses

    warm = 5
    results: dict[str, list[dict[str, Any]]] = {}
    list_query = {"results_per_page": str(PER_PAGE)}
    results["list"], _ = run(
        "list_conversions", lambda i: event("list_conversions", key, query=list_query), 200, warm + runs
    )
    results["get"], _ = run(
        "get_conversion", lambda i: event("get_conversion", key, conversion_id=1 + i % 50), 200, warm + runs
    )
    results["create"], created = run(
        "create_conversion",
        lambda i: event("create_conversion", key, body={"goal_id": "1", "visitor_id": "1"}),
        201,
        warm + runs,
    )
    ids = [c["data"]["id"] for c in created]
    results["update"], _ = run(
        "update_conversion",
        lambda i: event("update_conversion", key, conversion_id=ids[i], body={"goal_id": "2"}),
        200,
        warm + runs,
    )
    results["delete"], _ = run(
        "delete_conversion", lambda i: event("delete_conversion", key, conversion_id=ids[i]), 204, warm + runs
    )
    return {name: summarise(samples[warm:]) for name, samples in results.items()}


def summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    calls = samples[-1]["calls"]  # same shape every time; the last warm request
    rru = wru = 0.0
    read = written = 0
    for call in calls:
        r, w, items_read, items_written = call.units()
        rru, wru, read, written = rru + r, wru + w, read + items_read, written + items_written
    cpu_ms = statistics.median(s["cpu_ms"] for s in samples)
    dynamodb_ms = sum(DYNAMODB_MS.get(c.operation, DYNAMODB_DEFAULT_MS) for c in calls)
    lambda_ms = math.ceil(cpu_ms * CPU_SCALE + dynamodb_ms)
    cost = {
        "lambda_compute": lambda_ms / 1000 * MEMORY_MB / 1024 * PRICE["lambda_gb_second_arm64"],
        "lambda_request": PRICE["lambda_request"],
        "api_gateway": PRICE["api_gateway_rest_request"],
        "dynamodb_reads": rru * PRICE["dynamodb_read_request_unit"],
        "dynamodb_writes": wru * PRICE["dynamodb_write_request_unit"],
    }
    return {
        "dynamodb_calls": [c.operation for c in calls],
        "items_read": read,
        "items_written": written,
        "read_units": rru,
        "write_units": wru,
        "response_bytes": samples[-1]["bytes"],
        "wall_ms_here_median": round(statistics.median(s["wall_ms"] for s in samples), 1),
        "cpu_ms_here_median": round(cpu_ms, 2),
        "lambda_ms_estimate": lambda_ms,
        "cost_usd": cost,
        "per_million_usd": round(sum(cost.values()) * 1e6, 2),
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| request | DynamoDB calls | items read / written | RRU / WRU | CPU here (ms) | Lambda ms (est.) "
        "| Lambda $/M | API GW $/M | DynamoDB $/M | total $/M |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        c = r["cost_usd"]
        calls: dict[str, int] = {}
        for op in r["dynamodb_calls"]:
            calls[op] = calls.get(op, 0) + 1
        described = ", ".join(f"{n}x {op}" if n > 1 else op for op, n in calls.items())
        lines.append(
            f"| {name} | {described} | {r['items_read']} / {r['items_written']} "
            f"| {r['read_units']:g} / {r['write_units']:g} | {r['cpu_ms_here_median']:.1f} | {r['lambda_ms_estimate']} "
            f"| {(c['lambda_compute'] + c['lambda_request']) * 1e6:.2f} | {c['api_gateway'] * 1e6:.2f} "
            f"| {(c['dynamodb_reads'] + c['dynamodb_writes']) * 1e6:.2f} | **{r['per_million_usd']:.2f}** |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="measured requests of each kind (after 5 warm-ups)")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    results = measure(args.runs)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"Region {REGION}, {MEMORY_MB} MB arm64, {CONVERSIONS} conversions in the account, list pages of {PER_PAGE}")
    print(table(results))
    for name, r in results.items():
        print(f"{name}: {r['response_bytes']} response bytes, {r['wall_ms_here_median']} ms wall here (moto)")


if __name__ == "__main__":
    main()
