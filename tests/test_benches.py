"""Every benchmark under bench/ runs to its end at a tiny size, so that a broken bench fails here
rather than when someone runs `make bench` or `make cost`. Figures are not checked (bench/ prints
them; tests assert no timings); each bench writes into a temporary folder, never bench/results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.no_database

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"

# Each bench script, the arguments of its tiny run, and the file it writes.
TINY = {
    "run.py": (["--sizes", "100", "--no-plot"], "results.md"),
    "writes.py": ([], "writes.md"),
    "values.py": (["--size", "50", "--goals", "2"], "values.md"),
    "imports.py": (["--rounds", "1", "--only", "get_conversion,count_conversions", "--local"], "cold_start.md"),
    "cost.py": (["--runs", "1", "--size", "100", "--no-memory"], "cost.md"),
    "one_second.py": (["--size", "50"], "one_second.md"),
    "local_server.py": (["--size", "20", "--gets", "2", "--clients", "4", "--no-wait"], "local_server.md"),
    "seed_memory.py": (["--conversions", "50", "--engines", "moto"], "seed_memory.md"),
}
# Builds the layer from the package index for Python 3.13 (minutes): only its arguments here.
NOT_RUN = {"layer.py": ["--help"]}


def scripts() -> set[str]:
    """The bench scripts: the files of bench/ that run as a program."""
    return {path.name for path in BENCH.glob("*.py") if 'if __name__ == "__main__":' in path.read_text()}


def run(script: str, arguments: list[str]) -> subprocess.CompletedProcess[str]:
    # Not the tests' embedded database: a bench starts its own, as `make bench` does.
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_ENDPOINT_URL")}
    return subprocess.run(
        [sys.executable, str(BENCH / script), *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def results_folder() -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in (BENCH / "results").iterdir()}


def test_every_bench_script_has_a_tiny_run():
    assert scripts() == set(TINY) | set(NOT_RUN)


@pytest.mark.parametrize("script", sorted(TINY))
def test_the_bench_runs_at_a_tiny_size(script, tmp_path):
    arguments, written = TINY[script]
    before = results_folder()
    finished = run(script, [*arguments, "--output", str(tmp_path)])
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert (tmp_path / written).read_text().strip()
    assert results_folder() == before


@pytest.mark.parametrize("script", sorted(NOT_RUN))
def test_the_bench_that_needs_the_package_index_parses_its_arguments(script):
    finished = run(script, NOT_RUN[script])
    assert finished.returncode == 0, finished.stderr[-3000:]
