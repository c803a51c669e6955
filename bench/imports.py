"""Cold-start import time of each handler module against a bare handler, as ratios.

Each handler is imported the way Lambda does it (`app` from its CodeUri folder, the layer on the
path) in a fresh interpreter, many times, rounds interleaved so that a busy machine slows every
module alike; the median is kept. Two measurements, each against its own yardstick:

- the cold-start import (`import app`) against a bare handler that imports Powertools'
  APIGatewayRestResolver and boto3, nothing else (the target: at most 1.2x);
- the import plus what the first request loads (`app.endpoint.load()`: the route, its validating
  resolver, the models and the DynamoDB client) against the bare handler that also builds a
  validating resolver and a DynamoDB client, so that deferring is seen to move work, not add it.

Usage: python bench/imports.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers" / "conversions_core"
HANDLERS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))

BARE = """\
import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
"""
BARE_WITH_CLIENTS = (
    BARE
    + """\
app = APIGatewayRestResolver(enable_validation=True)
client = boto3.client("dynamodb")
"""
)
IMPORT = "import app"
FIRST_REQUEST = "import app\nif hasattr(app, 'endpoint'):\n    app.endpoint.load()"


def environment(code_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "PYTHON"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(code_dir), str(LAYER)]),
        PYTHONDONTWRITEBYTECODE="",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        DATA_TABLE_NAME="DataTable",
        RATE_LIMIT_TABLE_NAME="RateLimitTable",
        IDEMPOTENCY_TABLE_NAME="IdempotencyTable",
        POWERTOOLS_SERVICE_NAME="goals-conversions",
        POWERTOOLS_METRICS_NAMESPACE="GoalConversions",
    )
    return env


def time_import(code_dir: Path, statement: str = IMPORT) -> float:
    timer = f"import time\nt = time.perf_counter()\n{statement}\nprint(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", timer], env=environment(code_dir), capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"importing {code_dir}/app.py failed:\n{out.stderr}")
    return float(out.stdout.strip().splitlines()[-1])


def imported_names(code_dir: Path, statement: str = IMPORT) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        env=environment(code_dir),
        capture_output=True,
        text=True,
    )
    return {line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines() if line.count("|") == 2}


def medians(dirs: dict[str, Path], statement: str, rounds: int) -> dict[str, float]:
    for code_dir in dirs.values():
        time_import(code_dir, statement)  # warm the file cache
    samples: dict[str, list[float]] = {name: [] for name in dirs}
    for _ in range(rounds):
        for name, code_dir in dirs.items():
            samples[name].append(time_import(code_dir, statement))
    return {name: statistics.median(values) for name, values in samples.items()}


def print_ratios(title: str, times: dict[str, float], yardstick: str) -> None:
    print(f"{title}\n")
    print(f"| module | vs {yardstick} |")
    print("|---|---:|")
    for name, median in times.items():
        print(f"| {name} | {median / times[yardstick]:.2f}x |")
    print(f"\n{yardstick}: {times[yardstick] * 1000:.0f} ms on this machine (varies with load; compare the ratios)\n")


def print_extra_modules(dirs: dict[str, Path], statement: str, yardstick: str) -> None:
    baseline = imported_names(dirs[yardstick], statement)
    print(f"Modules imported beyond {yardstick}:")
    for name in HANDLERS:
        extra = sorted(imported_names(dirs[name], statement) - baseline - {"app", "endpoint"})
        ours = [m for m in extra if m.startswith("conversions_core")]
        others = [m for m in extra if not m.startswith("conversions_core")]
        print(f"- {name}: {', '.join(ours) or 'none'} of the layer; {', '.join(others) or 'nothing else'}")
    print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        dirs = {}
        for name, source in (("bare", BARE), ("bare + clients", BARE_WITH_CLIENTS)):
            folder = Path(scratch) / name.replace(" + ", "_")
            folder.mkdir()
            (folder / "app.py").write_text(source)
            dirs[name] = folder
        handlers = {name: ROOT / "functions" / name for name in HANDLERS}
        version = f"median of {args.rounds} fresh interpreters, Python {sys.version.split()[0]}"

        cold = medians({"bare": dirs["bare"], **handlers}, IMPORT, args.rounds)
        print_ratios(f"### Cold start: `import app` ({version})", cold, "bare")
        print_extra_modules({"bare": dirs["bare"], **handlers}, IMPORT, "bare")

        first = medians({"bare + clients": dirs["bare + clients"], **handlers}, FIRST_REQUEST, args.rounds)
        print_ratios(
            f"### Cold start and first request: `import app` + `app.endpoint.load()` ({version})",
            first,
            "bare + clients",
        )
        print_extra_modules({"bare + clients": dirs["bare + clients"], **handlers}, FIRST_REQUEST, "bare + clients")


if __name__ == "__main__":
    main()
