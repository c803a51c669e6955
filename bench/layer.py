"""The built layer for arm64 (Lambda python3.13): its size, and what its bytecode saves a cold start.

Builds the layer with its own `sam build` target (layers/conversions_core/Makefile:
manylinux2014_aarch64 wheels for CPython 3.13, pinned, --no-deps, the conversions_core package,
and Python 3.13's unchecked-hash bytecode) into a scratch folder, and zips it as Lambda receives
it (everything under python/). boto3 is not in the layer: the Lambda runtime has it.

Then, with a local Python 3.13 (the runtime's version), the same layer built for this machine's
architecture, and the runtime's boto3 beside it: `import app` of list_conversions in fresh
interpreters, with the layer's bytecode and without it (as on AWS, where /opt is read-only and
Python compiles every module of a layer without bytecode at every cold start). Needs the
package index.

Usage: python bench/layer.py [--rounds 9] [--output bench/results]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from report import publish

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers" / "conversions_core"
FUNCTION = ROOT / "functions" / "list_conversions"
IMPORT = "import time; started = time.perf_counter(); import app; print(time.perf_counter() - started)"


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def build(artifacts: Path, platform_tag: str = "manylinux2014_aarch64") -> Path:
    subprocess.run(
        ["make", "--no-print-directory", "-C", str(LAYER), "build-CoreLayer", f"ARTIFACTS_DIR={artifacts}",
         f"PYTHON={sys.executable}", f"PLATFORM={platform_tag}"],
        check=True,
    )  # fmt: skip
    return artifacts / "python"


def report_size(scratch: Path) -> list[str]:
    target = build(scratch)
    archive = scratch / "layer.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(target.rglob("*")):
            zipped.write(path, path.relative_to(scratch))
    packages = sorted(
        ((size_of(p), p.name) for p in target.iterdir() if p.is_dir() and not p.name.endswith(".dist-info")),
        reverse=True,
    )
    compiled = sum(1 for _ in target.rglob("*.pyc"))
    zipped_mb = archive.stat().st_size / 1e6
    return [
        "### Built layer (arm64, Python 3.13, without boto3)\n",
        f"unpacked {size_of(target) / 1e6:.1f} MB, zipped {zipped_mb:.1f} MB, {compiled} .pyc files; "
        "largest: " + ", ".join(f"{name} {size / 1e6:.1f} MB" for size, name in packages[:4]),
    ]


def runtime_python() -> str | None:
    out = subprocess.run(
        ["make", "--no-print-directory", "-C", str(LAYER), "-s", "--eval=print-python: ; @echo $(RUNTIME_PYTHON)",
         "print-python"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    return out.stdout.strip() or None


def runtime_boto3(python: str, target: Path) -> Path:
    """The runtime's boto3 (not in the layer: Lambda's Python runtime has it), with its bytecode."""
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--root-user-action=ignore",
         "--target", str(target), "boto3==1.44.8"],
        check=True,
    )  # fmt: skip
    return target


def import_seconds(python: str, path: list[Path]) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "PYTHON"))}
    env.update(PYTHONPATH=os.pathsep.join(map(str, path)), AWS_DEFAULT_REGION="us-east-1")
    out = subprocess.run([python, "-B", "-c", IMPORT], env=env, cwd=FUNCTION, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"import app failed:\n{out.stderr}")
    return float(out.stdout.strip().splitlines()[-1])


def report_bytecode(scratch: Path, rounds: int) -> list[str]:
    python = runtime_python()
    lines = ["\n### What the layer's bytecode saves a cold start (Python 3.13, list_conversions)\n"]
    if not python:
        return [*lines, "Not measured: no Python 3.13 on this machine."]
    local = f"manylinux2014_{platform.machine()}"
    compiled = build(scratch / "local", local)
    bare = scratch / "without-bytecode"
    shutil.copytree(compiled, bare, ignore=shutil.ignore_patterns("__pycache__"))
    runtime = runtime_boto3(python, scratch / "runtime")
    timings: dict[str, list[float]] = {"with the layer's bytecode": [], "without it": []}
    for _ in range(rounds):  # interleaved, so that a busy moment slows both alike
        timings["with the layer's bytecode"].append(import_seconds(python, [FUNCTION, compiled, runtime]))
        timings["without it"].append(import_seconds(python, [FUNCTION, bare, runtime]))
    lines.append(f"`import app` in {rounds} fresh interpreters each ({local} wheels, Python 3.13):")
    lines += [f"- {name}: median {statistics.median(seconds) * 1000:.0f} ms" for name, seconds in timings.items()]
    with_it, without = (statistics.median(s) for s in timings.values())
    return [*lines, f"- without the bytecode an import takes {without / with_it:.2f}x as long"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        lines = report_size(Path(scratch) / "arm64") + report_bytecode(Path(scratch), args.rounds)
    publish("\n".join(lines), args.output, "layer.md")


if __name__ == "__main__":
    main()
