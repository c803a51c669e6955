"""Runs the template's Lambda handlers in this process, as Lambda runs them in containers.

Lambda runs one invocation at a time in a container, and as many containers of a function as
there are invocations at once. Here each function has a pool of loaded handler-module instances
(the containers): an invocation takes an idle instance, or loads a new one (a cold start: the
module's init runs again), runs alone on it, and gives it back. Invocations of different
requests, and the stream pump's, run at once on their own threads, never on a shared module
instance. The layer and Powertools are imported once for all instances: what Powertools keeps
per request on shared objects is made per thread (per_thread.py). Each DynamoDB call of the
embedded database is applied alone (embedded.REQUEST_LOCK), as DynamoDB applies each call
atomically, so a long job (a goal's cascade) and requests interleave call by call.
"""

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

from goals_conversions_local import per_thread
from goals_conversions_local.template import FunctionSpec, Template

# Called with each handler-module instance a Functions loads, before its first invocation.
Prepare = Callable[[FunctionSpec, ModuleType], None]
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
    """The template's functions, each with a pool of loaded handler-module instances.

    `invoke` runs on the first instance loaded that is idle (invocations one after the other run
    on one instance, like a warm container), or on a new one when all are busy. The layer is
    imported once for all instances, and its `get_services` builds one Services per process: an
    API function's instances after the first build Services of their own (clients, and what
    belongs to the invocation under way: its deadline, its idempotent create), as a container's
    init does. `prepare(spec, module)`, when given, is called on every instance loaded (tests
    point them at tables of their own)."""

    def __init__(self, template: Template, prepare: Prepare | None = None):
        per_thread.install()
        self.template = template
        self.prepare = prepare
        self._lock = threading.Lock()
        self._loaded: dict[str, list[ModuleType]] = {}  # per function, in the order loaded
        self._busy: set[ModuleType] = set()
        self._numbers: dict[str, int] = {}  # per function, instances loaded or being loaded

    def module(self, spec: FunctionSpec) -> ModuleType:
        """The function's first instance, loaded now if none is (as Lambda's init does): the one
        tests and benchmarks reach into, and the one sequential invocations run on."""
        self._release(self._acquire(spec))
        return self.instances(spec)[0]

    def instances(self, spec: FunctionSpec) -> list[ModuleType]:
        """Every instance of the function loaded so far, the first first."""
        with self._lock:
            return list(self._loaded.get(spec.name, []))

    def handler(self, spec: FunctionSpec) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        return getattr(self.module(spec), _handler_name(spec))

    def invoke(self, spec: FunctionSpec, event: dict[str, Any]) -> dict[str, Any]:
        """Run the function's handler on `event` on an instance no other invocation is using."""
        context = LambdaContext(spec.name, str(uuid.uuid4()))
        instance = self._acquire(spec)
        try:
            return getattr(instance, _handler_name(spec))(event, context)
        finally:
            self._release(instance)

    def _acquire(self, spec: FunctionSpec) -> ModuleType:
        with self._lock:
            loaded = self._loaded.setdefault(spec.name, [])
            idle = next((instance for instance in loaded if instance not in self._busy), None)
            if idle is not None:
                self._busy.add(idle)
                return idle
            number = self._numbers[spec.name] = self._numbers.get(spec.name, 0) + 1
        instance = self._load(spec, number)  # a cold start, outside the lock: init takes a while
        with self._lock:
            self._loaded[spec.name].append(instance)
            self._busy.add(instance)
        return instance

    def _release(self, instance: ModuleType) -> None:
        with self._lock:
            self._busy.discard(instance)

    def _load(self, spec: FunctionSpec, number: int) -> ModuleType:
        module_name = spec.handler.rsplit(".", 1)[0]
        name = f"local_{spec.short_name}_{module_name}" + (f"_{number}" if number > 1 else "")
        instance = load_module(name, spec.code_dir / f"{module_name}.py")
        if number > 1 and hasattr(instance, "app"):
            _own_services(instance)
        if self.prepare is not None:
            self.prepare(spec, instance)
        return instance


def _own_services(instance: ModuleType) -> None:
    """Give an API function's instance Services of its own, through its resolver's overrides."""
    from conversions_core.http import get_services
    from conversions_core.services import Services

    services = Services.from_env()
    instance.app.dependency_overrides[get_services] = lambda: services


def _handler_name(spec: FunctionSpec) -> str:
    return spec.handler.rsplit(".", 1)[1]


def load_module(name: str, path: Path) -> ModuleType:
    """Execute the Python file at `path` as module `name` (a fresh module each time)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
