"""Swagger UI at /docs over the OpenAPI document at /openapi.json, with every asset served locally.

The assets come from the pinned `swagger-ui-bundle-v2` package (Swagger UI 5, which reads the
OpenAPI 3.1 document Powertools generates); no CDN is involved, so the page works offline.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from typing import Any

DOCS_PATH = "/docs"
DOCUMENT_PATH = "/openapi.json"
_ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "application/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Goal Conversions API</title>
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
  </script>
</body>
</html>
"""


def _response(status: int, content_type: str, body: bytes, cache: bool = False) -> dict[str, Any]:
    headers = {"Content-Type": content_type, "Cache-Control": "public, max-age=3600" if cache else "no-cache"}
    return {"statusCode": status, "headers": headers, "body": base64.b64encode(body).decode(), "isBase64Encoded": True}


class DocsPages:
    """Answers GET /docs, /docs/<asset> and /openapi.json; None for any other request."""

    def __init__(self, build_document: Callable[[], str]):
        self._build_document = build_document
        self._document: bytes | None = None
        self._lock = threading.Lock()

    def document(self) -> bytes:
        with self._lock:  # built once, from the handlers the server runs
            if self._document is None:
                self._document = self._build_document().encode()
            return self._document

    def handle(self, method: str, path: str) -> dict[str, Any] | None:
        if method not in ("GET", "HEAD"):
            return None
        if path in (DOCS_PATH, DOCS_PATH + "/"):
            return _response(200, "text/html; charset=utf-8", PAGE.encode())
        if path == DOCUMENT_PATH:
            return _response(200, "application/json", self.document())
        name = path.removeprefix(DOCS_PATH + "/")
        if path.startswith(DOCS_PATH + "/") and name in _ASSETS:
            from swagger_ui_bundle import swagger_ui_path

            return _response(200, _ASSETS[name], (swagger_ui_path / name).read_bytes(), cache=True)
        return None
