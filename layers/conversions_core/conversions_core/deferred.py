"""Keeps a handler module's import down to the standard library.

A function's `app.py` is what Lambda imports at a cold start; its endpoint (the resolver with
validation, the pydantic models, the DynamoDB client) lives beside it in `endpoint.py` and is
imported on the first request, once per container. This module must import nothing heavy.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ENTRY_MODULE = "app"
ENDPOINT_MODULE = "endpoint"


class DeferredEndpoint:
    """The endpoint module beside a handler module, imported on first use and then kept."""

    def __init__(self, handler_module_name: str, handler_file: str):
        self._handler_module_name = handler_module_name
        self._path = Path(handler_file).with_name(f"{ENDPOINT_MODULE}.py")
        self._module: ModuleType | None = None

    def load(self) -> ModuleType:
        if self._module is None:
            self._module = self._import()
        return self._module

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        return self.load().lambda_handler(event, context)

    def _import(self) -> ModuleType:
        package, _, _ = self._handler_module_name.rpartition(".")
        if package:  # imported by package path (the tests): share the module tests patch
            return importlib.import_module(f"{package}.{ENDPOINT_MODULE}")
        # Lambda imports `app` from the code folder (giving `endpoint`); the local runtime loads
        # each function's `app` under its own name (giving e.g. `local_list_endpoint`).
        return load_module(self._handler_module_name.removesuffix(ENTRY_MODULE) + ENDPOINT_MODULE, self._path)


def load_module(name: str, path: Path) -> ModuleType:
    """Execute the Python file at `path` as module `name` (a fresh module each time)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
