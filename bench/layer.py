"""Size of the built layer for arm64 (Lambda python3.13): unpacked and zipped.

Builds the layer with its own `sam build` target (layers/conversions_core/Makefile:
manylinux2014_aarch64 wheels for CPython 3.13, pinned, --no-deps, no .pyc, plus the
conversions_core package) into a scratch folder, and zips it as Lambda receives it (everything
under python/). boto3 is not in the layer: the Lambda runtime has it. Needs the package index.

Usage: python bench/layer.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers" / "conversions_core"


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "python"
        subprocess.run(
            ["make", "--no-print-directory", "-C", str(LAYER), "build-CoreLayer", f"ARTIFACTS_DIR={scratch}",
             f"PYTHON={sys.executable}"],
            check=True,
        )  # fmt: skip
        archive = Path(scratch) / "layer.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for path in sorted(target.rglob("*")):
                zipped.write(path, path.relative_to(scratch))
        packages = sorted(
            ((size_of(p), p.name) for p in target.iterdir() if p.is_dir() and not p.name.endswith(".dist-info")),
            reverse=True,
        )
        print("### Built layer (arm64, Python 3.13, without boto3)\n")
        print(f"unpacked {size_of(target) / 1e6:.1f} MB, zipped {archive.stat().st_size / 1e6:.1f} MB")
        print("largest: " + ", ".join(f"{name} {size / 1e6:.1f} MB" for size, name in packages[:4]))


if __name__ == "__main__":
    main()
