"""A cold start imports only the handler module; the endpoint comes with the first request."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = sorted(p.parent for p in (ROOT / "functions").glob("*/endpoint.py"))
HEAVY = ("pydantic", "boto3", "botocore", "aws_lambda_powertools", "endpoint")


def _imported_after(code_dir: Path, statement: str) -> list[str]:
    """Which heavy packages are in sys.modules after `statement`, run as Lambda would run it."""
    code = f"import sys\n{statement}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(code_dir), str(ROOT / "layers" / "conversions_core")])
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=code_dir, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.parametrize("code_dir", FUNCTIONS, ids=lambda p: p.name)
def test_importing_a_handler_imports_none_of_the_heavy_packages(code_dir):
    assert _imported_after(code_dir, "import app") == []


@pytest.mark.parametrize("code_dir", FUNCTIONS, ids=lambda p: p.name)
def test_the_first_use_of_a_handler_imports_its_endpoint_once(code_dir):
    statement = "import app\nfirst = app.endpoint.load()\nassert app.endpoint.load() is first"
    assert _imported_after(code_dir, statement) == list(HEAVY)
