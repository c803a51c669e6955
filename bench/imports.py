"""Cold-start import time of each handler module against a bare handler, as ratios.

Each handler is imported the way Lambda does it (`app` from its CodeUri folder, the layer on the
path) in a fresh interpreter, many times, rounds interleaved so that a busy machine slows every
module alike; the median is kept. Two bare handlers are the yardsticks:

- bare: imports Powertools' APIGatewayRestResolver and boto3, nothing else;
- bare + clients: also builds what any handler of this API builds at start: the resolver (with
  validation) and a DynamoDB client.

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
TIMER = "import time; t = time.perf_counter(); import app; print(time.perf_counter() - t)"


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


def time_import(code_dir: Path) -> float:
    out = subprocess.run([sys.executable, "-c", TIMER], env=environment(code_dir), capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"importing {code_dir}/app.py failed:\n{out.stderr}")
    return float(out.stdout.strip().splitlines()[-1])


def imported_names(code_dir: Path) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import app"],
        env=environment(code_dir),
        capture_output=True,
        text=True,
    )
    return {line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines() if line.count("|") == 2}


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
        dirs.update({name: ROOT / "functions" / name for name in HANDLERS})
        for code_dir in dirs.values():
            time_import(code_dir)  # warm the file cache
        samples: dict[str, list[float]] = {name: [] for name in dirs}
        for _ in range(args.rounds):
            for name, code_dir in dirs.items():
                samples[name].append(time_import(code_dir))
        medians = {name: statistics.median(values) for name, values in samples.items()}
        bare, bare_clients = medians["bare"], medians["bare + clients"]
        print(
            f"### Handler import time (median of {args.rounds} fresh interpreters, Python {sys.version.split()[0]})\n"
        )
        print("| module | vs bare | vs bare + clients |")
        print("|---|---:|---:|")
        for name, median in medians.items():
            print(f"| {name} | {median / bare:.2f}x | {median / bare_clients:.2f}x |")
        baseline = imported_names(dirs["bare + clients"])
        print(f"\nbare handler: {bare * 1000:.0f} ms on this machine (varies with load; compare the ratios)")
        print("\nModules a handler imports beyond the bare handler with clients:")
        for name in HANDLERS:
            extra = sorted(imported_names(dirs[name]) - baseline - {"app"})
            ours = [m for m in extra if m.startswith("conversions_core")]
            others = [m for m in extra if not m.startswith("conversions_core")]
            print(f"- {name}: {len(ours)} of conversions_core, and {', '.join(others) or 'nothing else'}")


if __name__ == "__main__":
    main()
