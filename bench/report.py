"""Where the benchmarks leave their figures: a Markdown file under bench/results, also printed."""

from __future__ import annotations

import sys
from pathlib import Path


def publish(text: str, directory: str | Path, name: str, note: str = "") -> Path:
    """Write `text` to directory/name, print it, and say on stderr where it went (and `note`)."""
    path = Path(directory) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    print(text)
    print(f"\nWrote {path}{note}", file=sys.stderr)
    return path
