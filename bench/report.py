"""Where the benchmarks leave their figures: a Markdown file under bench/results, also printed."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def engine(endpoint: str | None = None) -> str:
    """The DynamoDB engine the figures come from, for their heading: `endpoint` (by default
    AWS_ENDPOINT_URL_DYNAMODB), moto's server in this process or another endpoint."""
    from moto import __version__ as moto_version

    from goals_conversions_local.embedded import serves_here

    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    if endpoint is None or serves_here(endpoint):
        return f"Engine: moto {moto_version} (its server embedded in the benchmark's process)."
    return f"Engine: the DynamoDB at {endpoint} (not moto's embedded server)."


def publish(text: str, directory: str | Path, name: str, note: str = "", engine_line: str | None = None) -> Path:
    """Write `text` to directory/name (after `engine_line`, the engine the figures ran on, when
    they ran on one), print it, and say on stderr where it went (and `note`)."""
    if engine_line:
        text = f"{engine_line}\n\n{text}"
    path = Path(directory) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    print(text)
    print(f"\nWrote {path}{note}", file=sys.stderr)
    return path
