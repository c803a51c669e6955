"""Runs the template's Lambda handlers in this process, as SAM would in a container."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from goals_conversions_local.template import FunctionSpec, Template

# Powertools keeps the current event on the resolver class, so handlers must not overlap in
# one process; one lock stands in for Lambda's one-request-per-container.
_invoke_lock = threading.Lock()
# Locally no timeout is enforced (the embedded database is far slower than DynamoDB, and its
# client waits up to DYNAMODB_TIMEOUT_SECONDS): a context says Lambda's longest, 15 minutes.
LOCAL_REMAINING_MILLIS = 900_000


@dataclass
class LambdaContext:
    function_name: str
    aws_request_id: str
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return LOCAL_REMAINING_MILLIS


def apply_environment(template: Template) -> None:
    """Export every function's environment (they agree on shared names) unless already set."""
    for spec in template.functions():
        for name, value in spec.environment.items():
            os.environ.setdefault(name, value)


class Functions:
    """Loads handler modules from their CodeUri once, like warm containers."""

    def __init__(self, template: Template):
        self.template = template
        self._modules: dict[str, ModuleType] = {}

    def module(self, spec: FunctionSpec) -> ModuleType:
        """The function's handler module, loaded once from its CodeUri (as Lambda's init does),
        with the environment as it is now."""
        if spec.name not in self._modules:
            module_name = spec.handler.rsplit(".", 1)[0]
            path = spec.code_dir / f"{module_name}.py"
            self._modules[spec.name] = load_module(f"local_{spec.short_name}_{module_name}", path)
        return self._modules[spec.name]

    def handler(self, spec: FunctionSpec) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        return getattr(self.module(spec), spec.handler.rsplit(".", 1)[1])

    def invoke(self, spec: FunctionSpec, event: dict[str, Any]) -> dict[str, Any]:
        context = LambdaContext(spec.name, str(uuid.uuid4()))
        handler = self.handler(spec)
        with _invoke_lock:
            return handler(event, context)


def load_module(name: str, path: Path) -> ModuleType:
    """Execute the Python file at `path` as module `name` (a fresh module each time)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
