"""Powertools' per-request state, kept per thread: the local runtime runs invocations at once.

A Lambda process runs one invocation at a time, so Powertools keeps what belongs to the request
being handled where the whole process shares it:

- the event handler: `resolve()` sets the current event and Lambda context on the `BaseRouter`
  class (`BaseRouter.current_event = ...`), shared by every resolver of the process, whichever
  handler-module instance built it; `app.current_event` reads it back (the layer's
  `list_response` does, after the route's database calls, to build a list's links);
- the Logger: the keys a request appends (`inject_lambda_context`: request id, cold start,
  correlation id) go into one dict of the formatter, and every Logger of a service shares one
  handler and formatter;
- Metrics: the metrics, dimensions and metadata not yet flushed live in dicts of the `Metrics`
  class, shared on purpose by every `Metrics()` of the process, and its provider's.

The local runtime (runtime.py) runs invocations of one function at once, each on a handler-module
instance of its own, but the layer and Powertools are imported once for all of them, so these
stay shared whatever the instances. `install()` makes each of them per thread (an invocation
runs on one thread from start to end): the router's event and context are simply per thread;
the formatter's keys and the metrics' sets are per thread, a thread that has none yet starting
from a copy of the value as it stands in the thread that built the object (at import: the keys
the Logger was built with, the default dimensions). Objects built before `install()` have no
such thread: every thread starts from a copy of their value. The rest of Powertools' state is
configuration set at init (the routes, the formatter's options, the namespace), or a flag
(`is_cold_start` of the logger module: a second instance's first request logs
`cold_start: false`).

Local only, never deployed; tied to the pinned Powertools (pyproject.toml):
tests/test_local_runtime.py checks each attribute behaves per thread.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

_installed = False
_lock = threading.Lock()
# This thread's values: id(anchor) -> (anchor, value); the anchor keeps its id from being reused.
_values = threading.local()
_router = threading.local()


def _slots() -> dict[Any, tuple[Any, Any]]:
    try:
        return _values.slots
    except AttributeError:
        _values.slots = {}
        return _values.slots


class PerThread:
    """A data descriptor: an instance attribute with a value per thread.

    The value set in the thread that first set it (the object's builder) is kept in the
    instance's own `__dict__` (which the descriptor shadows) and is that thread's value; another
    thread's first read gets a deep copy of it. A container value is keyed by its identity, so
    two attributes holding the same dict (`Metrics.metric_set` and its provider's) hold the same
    copy in a thread, as they hold the same dict in Powertools."""

    def __init__(self, name: str):
        self.name = name
        self.owner = f"_per_thread_owner_{name}"

    def _key(self, instance: Any, base: Any) -> tuple[Any, Any]:
        if isinstance(base, (dict, list)):
            return id(base), base
        return (id(instance), self.name), instance

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        state = instance.__dict__
        if self.name not in state:
            raise AttributeError(self.name)
        base = state[self.name]
        key, anchor = self._key(instance, base)
        slots = _slots()
        found = slots.get(key)
        if found is not None and found[0] is anchor:
            return found[1]
        value = base if state.get(self.owner) == threading.get_ident() else _copy(base)
        slots[key] = (anchor, value)
        return value

    def __set__(self, instance: Any, value: Any) -> None:
        state = instance.__dict__
        if state.setdefault(self.owner, threading.get_ident()) == threading.get_ident() or self.name not in state:
            state[self.name] = value  # the builder's value: what other threads start from
        key, anchor = self._key(instance, state[self.name])
        _slots()[key] = (anchor, value)


def _copy(value: Any) -> Any:
    try:
        return copy.deepcopy(value)
    except Exception:  # a value that cannot be copied deeply (an appended key holding a lock, ...)
        return copy.copy(value)


class _RouterState:
    """`BaseRouter.current_event` / `lambda_context`, per thread: set on the class by `resolve()`
    (through the metaclass), read on the class or on any resolver instance."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        try:
            return getattr(_router, self.name)
        except AttributeError:
            raise AttributeError(self.name) from None

    def __set__(self, instance: Any, value: Any) -> None:
        setattr(_router, self.name, value)


ROUTER_ATTRIBUTES = ("current_event", "lambda_context")
FORMATTER_ATTRIBUTES = ("log_format",)
METRICS_ATTRIBUTES = ("metric_set", "dimension_set", "metadata_set")
PROVIDER_ATTRIBUTES = (*METRICS_ATTRIBUTES, "dimension_sets")


def install() -> None:
    """Make Powertools' per-request state per thread in this process (once; idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
        from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
        from aws_lambda_powertools.metrics.metrics import Metrics
        from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

        # Instances read the class dict's descriptor; `BaseRouter.x = ...` goes to the metaclass's.
        # The class dict's first, while the metaclass still lets a plain assignment through.
        for name in ROUTER_ATTRIBUTES:
            setattr(BaseRouter, name, _RouterState(name))
        metaclass = type(BaseRouter)
        namespace = {name: _RouterState(name) for name in ROUTER_ATTRIBUTES}
        per_thread_metaclass = type(f"PerThread{metaclass.__name__}", (metaclass,), namespace)
        BaseRouter.__class__ = per_thread_metaclass  # type: ignore[method-assign]
        for cls, names in (
            (LambdaPowertoolsFormatter, FORMATTER_ATTRIBUTES),
            (Metrics, METRICS_ATTRIBUTES),
            (AmazonCloudWatchEMFProvider, PROVIDER_ATTRIBUTES),
        ):
            for name in names:
                setattr(cls, name, PerThread(name))
        _installed = True
