"""Checks what `sam build` produced: the layer is complete and built for arm64, the functions are thin.

Usage: python scripts/check_build.py [BUILD_DIR]   (default .aws-sam/build; needs `packaging`)

- every compiled extension in the layer is an aarch64 ELF (pydantic_core's must be there);
- the layer's bytecode is Python 3.13's, unchecked-hash, for every module (the Makefile compiles
  it with a local Python 3.13; without one the layer has none, and this says so);
- every distribution in the layer has its requirements in the layer too, except boto3/botocore,
  which the Lambda runtime ships (the layer is installed with --no-deps from a complete pin list);
- each function holds its handler module and nothing heavy.
Prints the layer's size unpacked and zipped.
"""

from __future__ import annotations

import io
import sys
import zipfile
from importlib.metadata import PathDistribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROVIDED_BY_RUNTIME = {"boto3", "botocore"}
ENVIRONMENT = {
    "python_version": "3.13",
    "python_full_version": "3.13.0",
    "platform_machine": "aarch64",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "extra": "",
}
EM_AARCH64 = 183
PYTHON_313_MAGIC = (3571).to_bytes(2, "little") + b"\r\n"  # importlib.util.MAGIC_NUMBER of 3.13
UNCHECKED_HASH = 0b01  # PEP 552 flags: hash-based, the source not checked


def elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    if header[:4] != b"\x7fELF":
        return -1
    return int.from_bytes(header[18:20], "little")


def check_layer(python: Path) -> list[str]:
    problems = []
    extensions = sorted(python.rglob("*.so"))
    if not any(p.name.startswith("_pydantic_core.") for p in extensions):
        problems.append("no pydantic_core extension in the layer")
    for path in extensions:
        if "aarch64" not in path.name or elf_machine(path) != EM_AARCH64:
            problems.append(f"not an aarch64 extension: {path.relative_to(python)}")
    problems += bytecode_problems(python)
    distributions = [PathDistribution(d) for d in python.glob("*.dist-info")]
    present = {canonicalize_name(d.metadata["Name"]) for d in distributions}
    for dist in distributions:
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate(ENVIRONMENT):
                continue
            name = canonicalize_name(requirement.name)
            if name not in present and name not in PROVIDED_BY_RUNTIME:
                problems.append(f"{dist.metadata['Name']} needs {requirement} which is not in the layer")
    if not (python / "conversions_core" / "http.py").is_file():
        problems.append("conversions_core is not in the layer")
    return problems


def bytecode_problems(python: Path) -> list[str]:
    """Nothing when the layer has no bytecode at all, or Python 3.13's for every module."""
    compiled = sorted(python.rglob("*.pyc"))
    if not compiled:
        return []
    problems = []
    for pyc in compiled:
        header = pyc.read_bytes()[:8]
        runtime = pyc.parent.name == "__pycache__" and pyc.name.endswith(".cpython-313.pyc")
        if not runtime or header[:4] != PYTHON_313_MAGIC or int.from_bytes(header[4:8], "little") != UNCHECKED_HASH:
            problems.append(f"not Python 3.13 unchecked-hash bytecode: {pyc.relative_to(python)}")
    for source in sorted(python.rglob("*.py")):
        if not (source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc").is_file():
            problems.append(f"no bytecode for {source.relative_to(python)}")
    return problems


def zipped_size(folder: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder))
    return buffer.tell()


ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    build = Path(argv[1] if len(argv) > 1 else ".aws-sam/build")
    layer = build / "CoreLayer"
    problems = check_layer(layer / "python")
    functions = sorted(p for p in build.glob("*Function") if p.is_dir())
    sources = sorted(p.parent for p in (ROOT / "functions").glob("*/app.py"))
    if len(functions) != len(sources):
        problems.append(f"expected {len(sources)} built functions (one per functions/*/app.py), found {len(functions)}")
    built = {tuple(sorted(p.name for p in f.rglob("*") if p.is_file())) for f in functions}
    wanted = {tuple(sorted(p.name for p in s.glob("*.py"))) for s in sources}
    if built != wanted:
        problems.append(f"built functions hold {sorted(built)}, their sources {sorted(wanted)}")
    for problem in problems:
        print(f"check_build: {problem}", file=sys.stderr)
    if problems:
        return 1
    if not any(layer.rglob("*.pyc")):
        print(
            "check_build: the layer has no bytecode (no Python 3.13 at build time): on AWS every cold start compiles it"
        )
    unpacked = sum(p.stat().st_size for p in layer.rglob("*") if p.is_file())
    print(
        f"check_build: OK; layer {unpacked / 1e6:.1f} MB unpacked, {zipped_size(layer) / 1e6:.1f} MB zipped; "
        f"{len(functions)} functions"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
