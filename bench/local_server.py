"""Whether the local server keeps answering: one user's GETs while another's goal is deleted.

Starts `goals-conversions serve` (a subprocess, as a developer runs it) on a seed of two users:
user A with one goal of N conversions (`--size`, 5,000 by default), user B with a goal of ten
conversions on a website of their own. Then:

1. a burst: C clients (`--clients`, 64 by default) connect at the same moment, each sends one
   GET of B's conversion and reads the answer: how many connections were reset (or refused, or
   timed out), how many answers were not 200;
2. user A deletes the goal (a 204 at once); the counting function, on the table's stream in
   the background (serve's stream pump), deletes its N conversions a page at a time (the
   cascade) and counts each deletion's stream records;
3. meanwhile user B GETs one of their conversions G times (`--gets`, 50 by default), one after
   the other: the latency of each (median, 95th percentile, max), and whether A's conversions
   were still being deleted when the last GET answered; then a second burst of C clients;
4. how long the cascade took (until A's list is empty), unless `--no-wait`.

Targets: a GET under 1 s while the cascade runs (median and max); no connection reset.
The figures are printed and written to local_server.md under `--output` (bench/results).
Usage: python bench/local_server.py [--size 5000] [--gets 50] [--clients 64] [--no-wait] [--output DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from report import publish

A_KEY, B_KEY = "bench-user-a", "bench-user-b"
A_GOAL, B_GOAL = 1, 2
A_WEBSITE, B_WEBSITE = 1, 2
B_CONVERSIONS = 10
TARGET_SECONDS = 1.0
SYN_RETRY_SECONDS = 0.9  # Linux sends a SYN again after 1 s without an answer


def seed(size: int) -> dict[str, Any]:
    """User A: a goal of `size` conversions over the last days; user B: a goal of ten."""
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    total = size + B_CONVERSIONS
    conversions = [  # ids grow with datetime, as the service gives them
        {
            "id": n,
            "goal_id": A_GOAL if n <= size else B_GOAL,
            "datetime": (now - timedelta(seconds=17 * (total - n + 1))).strftime("%Y-%m-%d %H:%M:%S"),
        }
        for n in range(1, total + 1)
    ]
    unlimited = 1_000_000  # the bench's requests are never refused (429)
    return {
        "users": [
            {"user_id": 1, "api_key": A_KEY, "status": "active", "rate_limit_per_minute": unlimited},
            {"user_id": 2, "api_key": B_KEY, "status": "active", "rate_limit_per_minute": unlimited},
        ],
        "websites": [
            {"website_id": A_WEBSITE, "user_id": 1, "host": "a.example", "tracking_mode": "normal"},
            {"website_id": B_WEBSITE, "user_id": 2, "host": "b.example", "tracking_mode": "normal"},
        ],
        "goals": [
            {"goal_id": A_GOAL, "website_id": A_WEBSITE, "type": "custom", "name": "A", "key": "a", "path": None},
            {"goal_id": B_GOAL, "website_id": B_WEBSITE, "type": "custom", "name": "B", "key": "b", "path": None},
        ],
        "visitors": [],
        "sessions": [],
        "events": [],
        "conversions": conversions,
    }


class Server:
    """`goals-conversions serve --port 0 --seed FILE`, until stopped."""

    def __init__(self, seed_file: Path, log: Path):
        serve = str(Path(sys.executable).parent / "goals-conversions")
        command = [serve, "serve", "--port", "0", "--seed", str(seed_file)]
        environment = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL_DYNAMODB"}
        self._log = log.open("w")
        started = time.monotonic()
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._log, text=True, env=environment)
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("Listening on "):
            self.stop()
            raise SystemExit(f"serve did not start: {line!r}\n{log.read_text()[-3000:]}")
        self.ready_seconds = time.monotonic() - started
        host_port = line.split()[-1].removeprefix("http://")
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def request(server: Server, method: str, path: str, key: str, timeout: float = 120) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        connection.request(method, path, headers={"Authorization": f"Bearer {key}", "Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def burst(server: Server, clients: int, path: str) -> dict[str, int]:
    """`clients` connections opened at the same moment, one GET each: what became of them. A
    connection the listen backlog had no room for waits for its SYN to be sent again (1 s, then
    3 s, ...), or is reset, depending on the kernel's settings."""
    barrier = threading.Barrier(clients)
    outcomes: list[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=120)
        try:
            barrier.wait()
            started = time.monotonic()
            connection.connect()
            if time.monotonic() - started >= SYN_RETRY_SECONDS:
                outcomes.append("connected after a SYN was sent again")
            connection.request("GET", path, headers={"Authorization": f"Bearer {B_KEY}", "Connection": "close"})
            response = connection.getresponse()
            response.read()
            outcomes.append("answered 200" if response.status == 200 else f"answered {response.status}")
        except ConnectionResetError:  # http.client's RemoteDisconnected included
            outcomes.append("reset")
        except ConnectionRefusedError:
            outcomes.append("refused")
        except TimeoutError:
            outcomes.append("timed out")
        except OSError as error:
            outcomes.append(type(error).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {outcome: outcomes.count(outcome) for outcome in sorted(set(outcomes))}


def a_conversions_left(server: Server) -> int:
    """A's conversions still listed (the page reads the table), or still counted (its total reads
    the counts the counting function keeps): 0 once the cascade and its counting are done."""
    status, body = request(server, "GET", f"/api/goals-conversions?website_id={A_WEBSITE}&results_per_page=10", A_KEY)
    assert status == 200, (status, body)
    page = json.loads(body)
    return max(len(page["data"]), page["meta"]["total"])


def measure(size: int, gets: int, clients: int, wait: bool, scratch: Path) -> dict[str, Any]:
    seed_file = scratch / "seed.json"
    seed_file.write_text(json.dumps(seed(size)))
    server = Server(seed_file, scratch / "serve.log")
    b_path = f"/api/goals-conversions/{size + 1}"
    try:
        figures: dict[str, Any] = {"size": size, "ready_seconds": server.ready_seconds}
        figures["burst_idle"] = burst(server, clients, b_path)
        status, _ = request(server, "DELETE", f"/api/goals/{A_GOAL}", A_KEY)
        assert status == 204, status
        deleted_at = time.monotonic()
        latencies = []
        for _ in range(gets):
            started = time.monotonic()
            status, body = request(server, "GET", b_path, B_KEY)
            latencies.append(time.monotonic() - started)
            assert status == 200 and json.loads(body)["data"]["id"] == size + 1, (status, body)
        figures["latencies"] = latencies
        figures["left_after_gets"] = a_conversions_left(server)
        figures["burst_cascade"] = burst(server, clients, b_path)
        figures["left_after_burst"] = a_conversions_left(server)
        figures["cascade_seconds"] = None
        if wait:
            while a_conversions_left(server):
                if time.monotonic() - deleted_at > 1800:
                    raise SystemExit("the cascade did not finish in 30 minutes")
                time.sleep(0.5)
            figures["cascade_seconds"] = time.monotonic() - deleted_at
        return figures
    finally:
        server.stop()


def report(figures: dict[str, Any], clients: int) -> str:
    latencies = sorted(figures["latencies"])
    median, worst = statistics.median(latencies), latencies[-1]
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    met = "met" if worst < TARGET_SECONDS else "**missed**"

    def outcome(counts: dict[str, int]) -> str:
        reset = counts.get("reset", 0)
        return ", ".join(f"{n} {what}" for what, n in counts.items()) + f"; {reset} reset"

    still = "yes" if figures["left_after_gets"] else "no (the GETs outlasted it: raise --size)"
    waited = figures["cascade_seconds"]
    cascade = "not waited for" if waited is None else f"{waited:.1f} s after the DELETE"
    return "\n".join(
        [
            f"### The local server under a goal deletion of {figures['size']:,} conversions",
            "",
            f"- serve ready (seeded, counted) in {figures['ready_seconds']:.1f} s",
            f"- {clients} clients connecting at once, idle server: {outcome(figures['burst_idle'])}",
            f"- user B's GET of one conversion while user A's goal is deleted in the background, {len(latencies)} GETs "
            f"one after the other: median {median * 1000:.0f} ms, 95th percentile {p95 * 1000:.0f} ms, "
            f"max {worst * 1000:.0f} ms (target under {TARGET_SECONDS:g} s: {met})",
            f"- A's conversions still being deleted when the last GET answered: {still}",
            f"- {clients} clients connecting at once during the cascade: {outcome(figures['burst_cascade'])}"
            + ("" if figures["left_after_burst"] else " (the cascade had ended)"),
            f"- the cascade and its counting: {cascade}",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5000, help="conversions of user A's goal")
    parser.add_argument("--gets", type=int, default=50, help="user B's GETs during the cascade")
    parser.add_argument("--clients", type=int, default=64, help="clients connecting at once")
    parser.add_argument("--no-wait", dest="wait", action="store_false", help="do not wait for the cascade's end")
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        figures = measure(args.size, args.gets, args.clients, args.wait, Path(scratch))
    publish(report(figures, args.clients), args.output, "local_server.md")


if __name__ == "__main__":
    main()
