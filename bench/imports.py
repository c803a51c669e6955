"""Cold start of each function, import plus first request, against a bare Powertools handler.

Each functions/*/app.py builds its resolver and clients at import (Lambda's INIT, billed and
run with a full vCPU), so a cold start is measured as Lambda sees it: `import app` from the
function's folder (the layer on the path) and the first `lambda_handler(event, context)` call,
in a fresh interpreter, timed together (the event file is read before the clock starts).

- Each function answers its real event from events/<function>.json (the counting function a
  stream batch of one conversion's INSERT, captured from the stream), against the embedded
  DynamoDB served from this process (moto's server; the subprocess imports no moto), seeded
  with seeds/demo.json (the demo user's rate limit raised so that the runs are never refused)
  and counted by the real counting function. Before every run the data tables are put back
  as they were, so every run does the same work (an update that changes, a delete that finds).
- The yardstick: a bare handler that imports Powertools and boto3, builds a validating
  APIGatewayHttpResolver and a DynamoDB client at import, and answers the list event with one
  GetItem. Target: at most 1.2x.
- The interpreter and libraries are Lambda's where this machine has them: Python 3.13 (the
  runtime's), the layer as its Makefile builds it for `sam build` (for this machine's
  architecture, with its bytecode), the runtime's boto3, the function's code without bytecode.
  Without Python 3.13, this interpreter and the layer's sources (the table says which).
  Building the layer needs the package index, as bench/layer.py does.
- Fresh interpreters, each function's run paired with a run of the bare handler next to it
  (which of the two goes first alternates), so that a busy moment slows both: the ratio is
  the median of the pairs' ratios, shown with the middle half of them. Powertools Tracer is
  off (as locally: it is built only in Lambda; EnableTracer costs ~0.2-0.3 s more, see
  template.yaml).

Usage: python bench/imports.py [--rounds 15] [--only list_conversions,...] [--local] [--output bench/results]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import moto_speedup
from layer import build, runtime_boto3, runtime_python
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends
from report import engine, publish

from conversions_core import conversion_service
from conversions_core.auth import hash_api_key
from conversions_core.repository import Repository
from conversions_core.seed import load_seed
from goals_conversions_local.embedded import REQUEST_LOCK, dynamodb_endpoint, ensure_event_buses, ensure_tables
from goals_conversions_local.runtime import apply_environment
from goals_conversions_local.streams import StreamPump
from goals_conversions_local.template import Template

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers" / "conversions_core"
EVENTS = ROOT / "events"
BARE = "bare handler"
TARGET = 1.2

BARE_APP = """\
import boto3
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

app = APIGatewayHttpResolver(enable_validation=True)
client = boto3.client("dynamodb")


@app.get("/api/goals-conversions")
def answer() -> dict:
    found = client.get_item(TableName="DataTable", Key={"pk": {"S": "bare"}, "sk": {"S": "bare"}})
    return {"found": "Item" in found}


def lambda_handler(event, context):
    return app.resolve(event, context)
"""

# Runs in the fresh interpreter: the event is read first, then import + first request are timed.
RUNNER = """\
import json, os, time

class Context:
    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"
    log_group_name = log_stream_name = "bench"

    def get_remaining_time_in_millis(self):
        return 10_000

with open(os.environ["BENCH_EVENT"]) as f:
    event = json.load(f)
started = time.perf_counter()
import app
imported = time.perf_counter()
cpu = time.thread_time()
response = app.lambda_handler(event, Context())
done = time.perf_counter()
cpu = time.thread_time() - cpu
status = response.get("statusCode", 200) if isinstance(response, dict) else 200
with open("/proc/self/status") as f:  # VmHWM: this process's peak RSS (ru_maxrss counts the parent's)
    rss = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
timings = {"import": imported - started, "first": done - imported, "first_cpu": cpu}
print(json.dumps({**timings, "status": status, "rss_kb": rss}))
"""


@dataclass(frozen=True)
class Runtime:
    """The interpreter and the folders a cold start imports from, and how it is described."""

    python: str
    libraries: list[Path]
    flags: list[str]
    description: str


LOCAL_RUNTIME = Runtime(sys.executable, [LAYER], [], f"Python {sys.version.split()[0]} and the layer's sources")


def lambda_runtime(scratch: Path) -> Runtime:
    """As Lambda runs a function: Python 3.13 (the runtime's, when this machine has it), the
    layer as its Makefile builds it (for this machine's architecture, with its bytecode), the
    runtime's boto3, and the function's code without bytecode (`-B`: /var/task is read-only).
    Without Python 3.13: this interpreter and the layer's sources."""
    python = runtime_python()
    if python is None:
        version = sys.version.split()[0]
        return Runtime(sys.executable, [LAYER], [], f"Python {version} and the layer's sources: no Python 3.13 here")
    layer = build(scratch / "layer", f"manylinux2014_{platform.machine()}")
    boto3_dir = runtime_boto3(python, scratch / "boto3")
    description = "Python 3.13, the layer as sam builds it, the runtime's boto3, as Lambda runs them"
    return Runtime(python, [layer, boto3_dir], ["-B"], description)


def code_for(runtime: Runtime, code_dir: Path, scratch: Path) -> Path:
    """The function's folder as the runtime imports it: a copy without bytecode under `-B`."""
    if not runtime.flags:
        return code_dir
    copied = scratch / "functions" / code_dir.name
    shutil.copytree(code_dir, copied, ignore=shutil.ignore_patterns("__pycache__"))
    return copied


def environment(runtime: Runtime, code_dir: Path, function_env: dict[str, str], event: Path) -> dict[str, str]:
    # As deployed: not the local run's settings (DYNAMODB_TIMEOUT_SECONDS is 60 s locally, which
    # the 10 s context's deadline refuses at the first call).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "PYTHON", "DYNAMODB_"))}
    env.update(function_env)
    env.update(
        PYTHONPATH=os.pathsep.join(map(str, [code_dir, *runtime.libraries])),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_ENDPOINT_URL_DYNAMODB=os.environ["AWS_ENDPOINT_URL_DYNAMODB"],
        BENCH_EVENT=str(event),
    )
    # The counting function's events and failures go to the embedded EventBridge and SQS, never
    # to AWS (unreachable here: each call would wait for its connect timeout).
    env.update({k: os.environ[k] for k in ("AWS_ENDPOINT_URL_EVENTBRIDGE", "AWS_ENDPOINT_URL_SQS") if k in os.environ})
    return env


def run_once(runtime: Runtime, code_dir: Path, function_env: dict[str, str], event: Path) -> dict[str, Any]:
    out = subprocess.run(
        [runtime.python, *runtime.flags, "-c", RUNNER],
        env=environment(runtime, code_dir, function_env, event),
        capture_output=True,
        text=True,
        cwd=code_dir,
    )
    if out.returncode:
        raise SystemExit(f"{code_dir.name}: the cold start failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def imported_modules(runtime: Runtime, code_dir: Path, function_env: dict[str, str], event: Path) -> set[str]:
    out = subprocess.run(
        [runtime.python, *runtime.flags, "-X", "importtime", "-c", "import app"],
        env=environment(runtime, code_dir, function_env, event),
        capture_output=True,
        text=True,
        cwd=code_dir,
    )
    return {line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines() if line.count("|") == 2}


class Database:
    """The embedded DynamoDB with the demo seed, counted, and put back before every run."""

    def __init__(self, template: Template):
        dynamodb_endpoint()
        moto_speedup.install()  # a Query answers in about a millisecond, as DynamoDB's would, not in ten
        apply_environment(template)
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"  # this process's own counting function
        client = boto3.client("dynamodb")
        ensure_tables(template, client)
        ensure_event_buses(template)  # the counting function publishes to moto's EventBridge
        seed = json.loads((ROOT / "seeds" / "demo.json").read_text())
        for user in seed["users"]:
            user["rate_limit_per_minute"] = 1_000_000  # never refused; the counter is still written
        repository = Repository.build(client, os.environ["DATA_TABLE_NAME"])
        load_seed(repository, seed)
        pump = StreamPump(template, embedded=True)
        pump.drain()  # the seed's conversions counted by the real counting function
        self.stream_event = self._one_insert(repository, pump)
        self.tables = list(dynamodb_backends[DEFAULT_ACCOUNT_ID][os.environ["AWS_DEFAULT_REGION"]].tables.values())
        self.saved = [copy.deepcopy(table.items) for table in self.tables]

    @staticmethod
    def _one_insert(repository: Repository, pump: StreamPump) -> dict[str, Any]:
        """A stream batch of one new conversion's INSERT, as Lambda hands it to the counting function."""
        owner = repository.accounts.user_by_key_hash(hash_api_key("demo-key"))
        conversion_service.create(repository, owner, 1, {})
        batches: list[dict[str, Any]] = []
        pump.invoke = lambda event: batches.append(event) or {"batchItemFailures": []}
        pump.drain()
        [record] = [r for event in batches for r in event["Records"]]
        return {"Records": [record]}

    def restore(self) -> None:
        with REQUEST_LOCK:
            for table, items in zip(self.tables, self.saved, strict=True):
                table.items = copy.deepcopy(items)
            moto_speedup.forget()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--only", help="these functions (comma-separated), not every one")
    parser.add_argument("--local", action="store_true", help="this interpreter and the layer's sources, no build")
    args = parser.parse_args(argv)
    template = Template()
    database = Database(template)
    specs = {spec.short_name: spec for spec in template.functions()}
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        runtime = LOCAL_RUNTIME if args.local else lambda_runtime(scratch)
        bare_dir = scratch / "bare"
        bare_dir.mkdir()
        (bare_dir / "app.py").write_text(BARE_APP)
        stream_event = scratch / "count_conversions.json"
        stream_event.write_text(json.dumps(database.stream_event))
        bare_env = specs["list_conversions"].environment
        cases: dict[str, tuple[Path, dict[str, str], Path]] = {
            BARE: (bare_dir, bare_env, EVENTS / "list_conversions.json")
        }
        skipped = []
        for code_dir in sorted((ROOT / "functions").glob("*/app.py")):
            name = code_dir.parent.name
            event = stream_event if name == "count_conversions" else EVENTS / f"{name}.json"
            if args.only and name not in args.only.split(","):
                continue
            if name not in specs or not event.exists():
                skipped.append(name)
                continue
            cases[name] = (code_for(runtime, code_dir.parent, scratch), specs[name].environment, event)

        samples: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
        pairs: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {name: [] for name in cases if name != BARE}
        for case in cases.values():  # a first, unkept run of each warms the file cache
            database.restore()
            run_once(runtime, *case)
        for round_number in range(args.rounds):
            for name in pairs:  # each function's run next to a bare handler's, which goes first in turn
                runs = {}
                for which in [BARE, name] if round_number % 2 == 0 else [name, BARE]:
                    database.restore()
                    runs[which] = run_once(runtime, *cases[which])
                samples[BARE].append(runs[BARE])
                samples[name].append(runs[name])
                pairs[name].append((runs[name], runs[BARE]))
        baseline = imported_modules(runtime, *cases[BARE])
        extra = {name: sorted(imported_modules(runtime, *case) - baseline - {"app"}) for name, case in cases.items()}

    text = report(samples, pairs, extra, skipped, args.rounds, runtime.description)
    publish(text, args.output, "cold_start.md", engine_line=engine())


def cold_start(sample: dict[str, Any]) -> float:
    return sample["import"] + sample["first"]


def report(
    samples: dict[str, list[dict[str, Any]]],
    pairs: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]],
    extra: dict[str, list[str]],
    skipped: list[str],
    rounds: int,
    setup: str,
) -> str:
    def median(name: str, part: str) -> float:
        if part == "total":
            return statistics.median(map(cold_start, samples[name]))
        return statistics.median(s[part] for s in samples[name])

    bare = median(BARE, "total")
    lines = [
        f"### Cold start: import + first request ({rounds} fresh interpreters each; ratios: median of the pairs)",
        "",
        setup + ".",
        "",
        "| function | import (ms) | first request (ms) | its CPU (ms) | total (ms) | vs bare handler "
        "| middle half of the pairs | import alone vs bare | status | peak RSS (MB) "
        "| modules beyond the bare handler's |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in samples:
        total = median(name, "total")
        statuses = sorted({s["status"] for s in samples[name]})
        rss = max(s["rss_kb"] for s in samples[name]) / 1024
        ratios = [cold_start(ours) / cold_start(bare) for ours, bare in pairs.get(name, [])] or [1.0, 1.0]
        ratio = statistics.median(ratios)
        low, _, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratio, ratio, ratio)
        imported = statistics.median([ours["import"] / bare["import"] for ours, bare in pairs.get(name, [])] or [1.0])
        flag = "" if ratio <= TARGET or name == BARE else " **over**"
        layer = [m for m in extra[name] if m.startswith("conversions_core")]
        packages: dict[str, int] = {}
        for module in extra[name]:
            if not module.startswith("conversions_core"):
                packages[module.split(".")[0]] = packages.get(module.split(".")[0], 0) + 1
        others = ", ".join(f"{package} {n}" for package, n in sorted(packages.items())) or "nothing else"
        modules = f"{len(layer)} of the layer; {others}" if name != BARE else "-"
        lines.append(
            f"| {name} | {median(name, 'import') * 1000:.0f} | {median(name, 'first') * 1000:.0f} "
            f"| {median(name, 'first_cpu') * 1000:.1f} | {total * 1000:.0f} "
            f"| {ratio:.2f}x{flag} | {low:.2f}x-{high:.2f}x | {imported:.2f}x | {'/'.join(map(str, statuses))} "
            f"| {rss:.0f} | {modules} |"
        )
    lines.append(
        f"\nTarget: at most {TARGET}x the bare handler ({bare * 1000:.0f} ms on this machine; the times vary with "
        "load, compare the ratios). The database is moto's server in the benchmark's process (with "
        'bench/moto_speedup.py: a Query reads only its partition), one to a few ms a call. "Its CPU": the first '
        "request's CPU time; Lambda runs a request at the function's share of a vCPU (a seventh at 256 MB) and init "
        "at a full one, so on AWS that is the part of a cold start that weighs several times its local figure."
    )
    if skipped:
        lines.append(f"Not measured (no event in events/ or no function in template.yaml): {', '.join(skipped)}.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
