"""Cached hook dispatch for mitmproxy's ``AddonManager``: the same calls, in the same order.

mitmproxy 12 dispatches every hook to every addon: for each event it walks the whole chain,
enters a ``safecall`` context manager per addon, walks each addon's sub-addons with a
generator and looks the hook up with ``getattr`` — and after every flow hook it does it all
again for the ``update`` hook, which none of the engine's addons implement. Measured on
these machines, that dispatch is 15-23% of a bare mitmproxy process's CPU per request.

``install(manager)`` replaces three methods on one ``AddonManager`` instance (not the
class): ``trigger_event``, ``handle_lifecycle`` and ``trigger``. They call exactly the
callables mitmproxy would call, in the same order, with the same error handling:

- per top-level addon (with its sub-addons) one error scope, as ``safecall``: an exception
  is logged and the next addon still runs; ``AddonHalt`` stops the dispatch;
  ``OptionsError`` propagates;
- async results are awaited; ``trigger`` refuses coroutine functions, as mitmproxy does;
- an ``update`` hook after a flow hook is skipped only when no addon implements it.

What changes is when the lookup happens: once per hook name, cached until the chain
changes (``add``, ``register``, ``remove`` and ``clear`` drop the cache; so does a chain
of another length or another list object). Hooks are found on the addon objects as
mitmproxy finds them, so an addon must not grow or drop hook methods after it was added
(none of the engine's do).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from collections.abc import Callable
from typing import Any

from mitmproxy import addonmanager, exceptions, flow, hooks

__all__ = ["install", "installed", "log_addon_error"]

# per top-level addon in chain order: its (addon or sub-addon, hook callable) pairs
Plan = tuple[tuple[tuple[object, Callable[..., Any]], ...], ...]

_ARG_NAMES: dict[type, tuple[str, ...]] = {}


def _args(event: hooks.Hook) -> list[Any]:
    """``event.args()`` without ``dataclasses.fields`` on every call."""
    names = _ARG_NAMES.get(type(event))
    if names is None:
        names = _ARG_NAMES[type(event)] = tuple(f.name for f in dataclasses.fields(event))  # type: ignore[arg-type]
    return [getattr(event, name) for name in names]


def _not_callable(name: str, addon: object) -> Callable[..., Any]:
    def fail(*_: Any) -> None:
        raise exceptions.AddonManagerError(f"Addon handler {name} ({addon}) not callable")

    return fail


def _callables(addon: object, name: str) -> tuple[tuple[object, Callable[..., Any]], ...]:
    """What ``AddonManager._iter_hooks`` yields for one top-level addon, as a tuple."""
    found: list[tuple[object, Callable[..., Any]]] = []
    for a in addonmanager.traverse([addon]):
        func = getattr(a, name, None)
        if not func:
            continue
        if callable(func):
            found.append((a, func))
        elif not isinstance(func, types.ModuleType):  # modules named like hooks are skipped
            found.append((a, _not_callable(name, a)))
    return tuple(found)


class _Dispatch:
    def __init__(self, manager: addonmanager.AddonManager) -> None:
        self.manager = manager
        self._plans: dict[str, Plan] = {}
        self._chain: list[Any] | None = None
        self._length = -1

    def forget(self) -> None:
        self._plans.clear()
        self._chain = None

    def plan(self, name: str) -> Plan:
        chain = self.manager.chain
        if chain is not self._chain or len(chain) != self._length:
            self._plans.clear()
            self._chain, self._length = chain, len(chain)
        plan = self._plans.get(name)
        if plan is None:
            groups = ((addon, _callables(addon, name)) for addon in chain)
            plan = self._plans[name] = tuple(funcs for _, funcs in groups if funcs)
        return plan

    async def trigger_event(self, event: hooks.Hook) -> None:
        plan = self.plan(event.name)
        if not plan:
            return
        args = _args(event)
        for funcs in plan:
            try:
                for _, func in funcs:
                    result = func(*args)
                    if result is not None and inspect.isawaitable(result):
                        await result
            except exceptions.AddonHalt:
                return
            except exceptions.OptionsError:
                raise
            except Exception:
                log_addon_error()

    async def handle_lifecycle(self, event: hooks.Hook) -> None:
        # trigger_event's loop, inlined: a request held for minutes (X-Gate-Wait) keeps
        # this frame alive, and one coroutine frame less is ~300 bytes a hold.
        args = _args(event)
        for funcs in self.plan(event.name):
            try:
                for _, func in funcs:
                    result = func(*args)
                    if result is not None and inspect.isawaitable(result):
                        await result
            except exceptions.AddonHalt:
                break
            except exceptions.OptionsError:
                raise
            except Exception:
                log_addon_error()
        message = args[0] if args else None
        if isinstance(message, flow.Flow) and self.plan(hooks.UpdateHook.name):
            await self.trigger_event(hooks.UpdateHook([message]))

    def trigger(self, event: hooks.Hook) -> None:
        plan = self.plan(event.name)
        if not plan:
            return
        args = _args(event)
        for funcs in plan:
            try:
                for addon, func in funcs:
                    if inspect.iscoroutinefunction(func):
                        raise exceptions.AddonManagerError(
                            f"Async handler {event.name} ({addon}) cannot be called from sync "
                            "context"
                        )
                    func(*args)
            except exceptions.AddonHalt:
                return
            except exceptions.OptionsError:
                raise
            except Exception:
                log_addon_error()


def log_addon_error() -> None:
    """Log the exception being handled exactly as mitmproxy's ``safecall`` does."""
    try:
        with addonmanager.safecall():
            raise
    except exceptions.AddonHalt:  # pragma: no cover - re-raised before reaching here
        pass


def _invalidating(method: Callable[..., Any], dispatch: _Dispatch) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        dispatch.forget()
        try:
            return method(*args, **kwargs)
        finally:
            dispatch.forget()

    return call


def install(manager: addonmanager.AddonManager) -> None:
    """Replace ``manager``'s dispatch methods with the cached ones (idempotent)."""
    if installed(manager):
        return
    dispatch = _Dispatch(manager)
    for name in ("add", "register", "remove", "clear"):
        setattr(manager, name, _invalidating(getattr(manager, name), dispatch))
    manager.trigger_event = dispatch.trigger_event  # type: ignore[method-assign]
    manager.handle_lifecycle = dispatch.handle_lifecycle  # type: ignore[method-assign]
    manager.trigger = dispatch.trigger  # type: ignore[method-assign]
    manager._gate_dispatch = dispatch  # type: ignore[attr-defined]


def installed(manager: addonmanager.AddonManager) -> bool:
    return getattr(manager, "_gate_dispatch", None) is not None
