"""The built layer's bytecode, as scripts/check_build.py judges it: Python 3.13's, unchecked-hash,
for every module, or none at all (a build machine without Python 3.13)."""

from __future__ import annotations

import py_compile
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from check_build import PYTHON_313_MAGIC, UNCHECKED_HASH, bytecode_problems  # noqa: E402

pytestmark = pytest.mark.no_database

PYTHON_312_MAGIC = (3531).to_bytes(2, "little") + b"\r\n"


def layer_with(tmp_path: Path, *modules: str) -> Path:
    for name in modules:
        (tmp_path / f"{name}.py").write_text("VALUE = 1\n")
    return tmp_path


def runtime_bytecode(source: Path, flags: int = UNCHECKED_HASH, magic: bytes = PYTHON_313_MAGIC) -> None:
    """A .pyc as Python 3.13's compileall --invalidation-mode unchecked-hash writes its header."""
    cache = source.parent / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / f"{source.stem}.cpython-313.pyc").write_bytes(magic + flags.to_bytes(4, "little") + bytes(8))


def test_a_layer_without_bytecode_passes(tmp_path):
    assert bytecode_problems(layer_with(tmp_path, "a", "b")) == []


def test_runtime_bytecode_for_every_module_passes(tmp_path):
    layer = layer_with(tmp_path, "a", "b")
    for source in layer.glob("*.py"):
        runtime_bytecode(source)
    assert bytecode_problems(layer) == []


def test_a_module_without_bytecode_is_named(tmp_path):
    layer = layer_with(tmp_path, "a", "b")
    runtime_bytecode(layer / "a.py")
    assert bytecode_problems(layer) == ["no bytecode for b.py"]


def test_bytecode_of_another_python_or_checked_against_the_source_is_refused(tmp_path):
    layer = layer_with(tmp_path, "a", "b", "c")
    runtime_bytecode(layer / "a.py", flags=0b11)  # checked-hash: would read the source on every import
    runtime_bytecode(layer / "b.py", magic=PYTHON_312_MAGIC)
    py_compile.compile(str(layer / "c.py"), cfile=str(layer / "__pycache__" / "c.cpython-313.pyc"))  # timestamped
    assert bytecode_problems(layer) == [
        f"not Python 3.13 unchecked-hash bytecode: __pycache__/{name}.cpython-313.pyc" for name in ("a", "b", "c")
    ]
