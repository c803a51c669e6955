"""The local server's Swagger UI page renders every operation in a real (headless) browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request

import pytest

from conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.no_database]

# Every operation of the committed document, as (method, path).
OPERATIONS = {
    (method.upper(), path)
    for path, operations in json.loads((ROOT / "docs" / "openapi.json").read_text())["paths"].items()
    for method in operations
}


def chromium(tmp_path, *arguments: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "Chromium is missing: `make browser` installs Debian's package (`make test` runs it)"
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=20000",  # let Swagger UI fetch the document and render
        *arguments,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)


def fetch(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.headers["Content-Type"], response.read()


def test_docs_page_and_its_assets_are_served_locally(local_api):
    content_type, page = fetch(f"{local_api}/docs")
    assert content_type.startswith("text/html")
    assets = re.findall(rb'(?:src|href)="([^"]+)"', page)
    assert assets and all(a.startswith(b"/") for a in assets), "every asset comes from this server, none from a CDN"
    for asset in assets:
        _, body = fetch(local_api + asset.decode())
        assert body
    content_type, document = fetch(f"{local_api}/openapi.json")
    assert content_type == "application/json"
    assert json.loads(document) == json.loads((ROOT / "docs" / "openapi.json").read_text())


def test_swagger_ui_renders_every_operation_in_headless_chromium(local_api, tmp_path):
    dom = chromium(tmp_path, "--dump-dom", f"{local_api}/docs").stdout
    rendered = set(
        re.findall(r'class="opblock-summary-method">(GET|POST|DELETE)</span>.*?data-path="([^"]+)"', dom, re.DOTALL)
    )
    assert rendered == OPERATIONS, dom[-3000:]
    assert "Goal Conversions API" in dom

    screenshot = tmp_path / "docs-page.png"
    chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1280,1400", f"{local_api}/docs")
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1280, 1400)
    assert len(png) > 30_000, "a blank page compresses to a few kilobytes; the rendered one does not"
