"""The gate's steps as one mitmproxy addon: one dispatch per hook, guards without wrappers.

Each step (identity, routing, vault guard, decision, egress, forwarding, credential
injection, MCP answers, record) stays a class of its own with mitmproxy hook methods, so it
can be tested alone. mitmproxy, though, pays per addon and per hook: so the engine loads one
``GatePipeline`` that, for each hook, calls the steps that implement it, in step order —
the order in which separate addons would have run, since the steps were contiguous in the
chain.

What each step's hook gets is unchanged:
- a hook guarded by ``fail_closed`` is called unwrapped (``__wrapped__``) inside the same
  guard (``guard.hook_failed``: 503, never a forward), so a sync hook stays sync and the
  guard costs a ``try`` on the happy path; under the chaos switch (``GATE_CHAOS_FAIL_HOOKS``)
  the wrapper itself is called, which raises as before;
- an unguarded hook that raises is logged as mitmproxy would (``safecall``) and the next
  step still runs, as the next addon would have; ``AddonHalt`` and ``OptionsError``
  propagate, as they do out of mitmproxy's own error scope;
- a hook is async only if one of its steps' is.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mitmproxy import exceptions, hooks

from gate_proxy.proxy.addons.guard import CHAOS_FAIL_HOOKS, guard_of, hook_failed
from gate_proxy.proxy.dispatch import log_addon_error

__all__ = ["GatePipeline"]

_PROPAGATE = (exceptions.AddonHalt, exceptions.OptionsError)


@dataclass(frozen=True, slots=True)
class _Call:
    """One step's hook, ready to call: guarded under ``where``, or not guarded (None)."""

    call: Callable[..., Any]
    step: object
    where: str | None
    is_async: bool

    @classmethod
    def of(cls, step: object, method: Any) -> _Call:
        where = guard_of(method)
        raw = getattr(getattr(method, "__func__", None), "__wrapped__", None)
        if where is None or raw is None or where in CHAOS_FAIL_HOOKS:
            # Unguarded, or the chaos drill: the method as mitmproxy would call it.
            return cls(method, step, None, inspect.iscoroutinefunction(method))
        return cls(types.MethodType(raw, step), step, where, inspect.iscoroutinefunction(raw))

    def failed(self, args: tuple[Any, ...], exc: Exception) -> None:
        if self.where is None:
            log_addon_error()
        else:
            hook_failed(self.step, args[0], self.where, exc)


def _sync(calls: tuple[_Call, ...]) -> Callable[..., None]:
    def run(*args: Any) -> None:
        for call in calls:
            try:
                call.call(*args)
            except _PROPAGATE:
                raise
            except Exception as exc:
                call.failed(args, exc)

    return run


def _async(calls: tuple[_Call, ...]) -> Callable[..., Any]:
    async def run(*args: Any) -> None:
        for call in calls:
            try:
                if call.is_async:
                    await call.call(*args)
                else:
                    call.call(*args)
            except _PROPAGATE:
                raise
            except Exception as exc:
                call.failed(args, exc)

    return run


class GatePipeline:
    """One mitmproxy addon that runs the gate's steps in order (see the module docstring)."""

    name = "gate"

    def __init__(self, steps: Sequence[object]) -> None:
        self.steps = tuple(steps)
        for hook in hooks.all_hooks:
            methods = [
                (step, method)
                for step in self.steps
                if callable(method := getattr(step, hook, None))
            ]
            if not methods:
                continue
            calls = tuple(_Call.of(step, method) for step, method in methods)
            run = _async(calls) if any(call.is_async for call in calls) else _sync(calls)
            run.__name__ = run.__qualname__ = hook
            setattr(self, hook, run)

    def __repr__(self) -> str:
        return f"GatePipeline({', '.join(type(step).__name__ for step in self.steps)})"
