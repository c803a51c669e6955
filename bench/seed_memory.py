"""`serve --seed` against a database of its own process: the database's memory over the seed.

Against an external endpoint, `serve` reads the table's stream through GetRecords, as Lambda
does, to count what the seed wrote. Each engine runs in its own process here, so that its memory
is its own: moto's server (`moto_server`, moto 5.2.5), and AWS's DynamoDB Local (the jar that
`make dynamodb-local` installs). The seed: the demo seed's users, websites and goals with N
conversions spread over a year. Sampled every half second: the database's resident memory, from
`serve`'s start until it listens (the seed loaded and its counts settled).

    .venv/bin/python bench/seed_memory.py [--conversions 20000] [--engines moto,dynamodb-local]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from report import publish

from goals_conversions_local.dynamodb_local import DynamoDBLocal
from goals_conversions_local.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def seed(conversions: int) -> dict[str, Any]:
    """The demo seed's accounts, with `conversions` conversions over a year, on its goals."""
    data = json.loads((ROOT / "seeds" / "demo.json").read_text())
    goals = [g["goal_id"] for g in data["goals"]]
    start = datetime(2025, 6, 1)
    step = timedelta(days=365) / conversions
    data["conversions"] = [
        {"id": n + 1, "goal_id": goals[n % len(goals)], "datetime": (start + n * step).strftime("%Y-%m-%d %H:%M:%S")}
        for n in range(conversions)
    ]
    for name in ("visitors", "sessions", "events"):
        data[name] = []
    return data


def resident_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    import urllib.request

    for _ in range(200):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    return process, endpoint


def measure(engine: str, seed_file: Path, timeout: float) -> dict[str, Any]:
    local = None
    if engine == "dynamodb-local":
        local = DynamoDBLocal(shared=True)
        endpoint = local.start()
        assert local.process is not None
        pid = local.process.pid
    else:
        moto, endpoint = start_moto()
        pid = moto.pid
    samples: list[float] = [resident_mb(pid)]
    environment = {
        **os.environ,
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    environment.pop("AWS_ENDPOINT_URL_SQS", None)
    started = time.monotonic()
    serve = subprocess.Popen(
        [str(BIN / "goals-conversions"), "serve", "--port", "0", "--seed", str(seed_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=environment,
    )
    listening = threading.Event()
    threading.Thread(target=lambda: serve.stdout and serve.stdout.readline() and listening.set(), daemon=True).start()
    while not listening.wait(0.5):
        samples.append(resident_mb(pid))
        if serve.poll() is not None or time.monotonic() - started > timeout:
            break
    seconds = time.monotonic() - started
    samples.append(resident_mb(pid))
    finished = listening.is_set()
    serve.send_signal(signal.SIGINT)
    try:
        serve.wait(30)
    except subprocess.TimeoutExpired:  # still busy with the seed's stream: it is measured already
        serve.kill()
        serve.wait(30)
    if local is not None:
        local.stop()
    else:
        moto.kill()  # a busy moto server may ignore SIGTERM for minutes
        moto.wait(30)
    row = {
        "engine": engine,
        "endpoint": endpoint,
        "finished": finished,
        "seconds": seconds,
        "start_mb": samples[0],
        "peak_mb": max(samples),
        "end_mb": samples[-1],
    }
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


ENGINE_NAMES = {
    "moto": "moto 5.2.5 server (`moto_server`, its own process)",
    "dynamodb-local": "DynamoDB Local 3.3.1 (`-inMemory -sharedDb`, -Xmx384m)",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversions", type=int, default=20_000)
    parser.add_argument("--engines", default="moto,dynamodb-local")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--timeout", type=float, default=600, help="seconds an engine is given to finish the seed")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        seed_file = Path(folder) / "seed.json"
        seed_file.write_text(json.dumps(seed(args.conversions)))
        rows = [measure(engine, seed_file, args.timeout) for engine in args.engines.split(",")]
    lines = [
        f"### `serve --seed` of {args.conversions:,} conversions against an external endpoint: the database's memory",
        "",
        "Sampled every 0.5 s from `serve`'s start until it listens (seed loaded, counts settled from the stream "
        "through GetRecords).",
        "",
        "| engine | finished | seconds | resident at start (MB) | peak (MB) | at the end (MB) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {ENGINE_NAMES.get(row['engine'], row['engine'])} | {'yes' if row['finished'] else 'NO'} | "
            f"{row['seconds']:.0f} | {row['start_mb']:.0f} | {row['peak_mb']:.0f} | {row['end_mb']:.0f} |"
        )
    publish("\n".join(lines), args.output, "seed_memory.md")


if __name__ == "__main__":
    main()
