"""The cached hook dispatch (gate_proxy/proxy/dispatch.py) calls exactly what mitmproxy's own
dispatch calls, in the same order, with the same error handling: every scenario runs through
a stock AddonManager and a cached one, and the two records must be equal."""

import logging
import re
import types
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from mitmproxy import exceptions, hooks, http
from mitmproxy.test import taddons, tflow

from gate_proxy.proxy import dispatch, speedups

Calls = list[str]


class Recorder:
    """Records every hook call; ``fail`` names hooks that raise, ``halt`` hooks that halt."""

    def __init__(
        self, name: str, calls: Calls, *, fail: tuple[str, ...] = (), halt: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self.calls = calls
        self.fail = fail
        self.halt = halt

    def _hit(self, hook: str) -> None:
        self.calls.append(f"{self.name}.{hook}")
        if hook in self.fail:
            raise RuntimeError(f"{self.name} fails in {hook}")
        if hook in self.halt:
            raise exceptions.AddonHalt()

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._hit("requestheaders")

    async def request(self, flow: http.HTTPFlow) -> None:
        self._hit("request")

    def response(self, flow: http.HTTPFlow) -> None:
        self._hit("response")

    def configure(self, updated: set[str]) -> None:
        self._hit("configure")


class Parent(Recorder):
    """An addon with sub-addons (mitmproxy walks ``addons``)."""

    def __init__(self, name: str, calls: Calls, children: list[object]) -> None:
        super().__init__(name, calls)
        self.addons = children


class Updates:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def update(self, flows: list[Any]) -> None:
        self.calls.append(f"update:{len(flows)}")


class Odd:
    """A module named like a hook is skipped; a non-callable hook attribute is an error."""

    request = types.ModuleType("request")
    response = 42


class AsyncConfigure:
    name = "asyncconfigure"

    async def configure(self, updated: set[str]) -> None:  # not allowed in sync dispatch
        pass


Scenario = Callable[[Calls], list[object]]

SCENARIOS: dict[str, Scenario] = {
    "order": lambda c: [Recorder("a", c), Recorder("b", c), Recorder("c", c)],
    "sub-addons": lambda c: [
        Recorder("a", c),
        Parent("p", c, [Recorder("p1", c), Parent("p2", c, [Recorder("p21", c)])]),
        Recorder("z", c),
    ],
    "an error is logged and the next addon runs": lambda c: [
        Recorder("a", c, fail=("request", "requestheaders")),
        Recorder("b", c),
    ],
    "an error ends its own sub-addons only": lambda c: [
        Parent("p", c, [Recorder("p1", c, fail=("request",)), Recorder("p2", c)]),
        Recorder("z", c),
    ],
    "halt stops the dispatch": lambda c: [
        Recorder("a", c),
        Recorder("b", c, halt=("request", "response")),
        Recorder("c", c),
    ],
    "odd attributes": lambda c: [Recorder("a", c), Odd(), Recorder("b", c)],
    "update only when implemented": lambda c: [Recorder("a", c), Updates(c)],
}


@pytest.fixture
async def managers() -> AsyncIterator[Callable[[bool, list[object]], Any]]:
    contexts: list[taddons.context] = []

    def make(cached: bool, addons: list[object]) -> Any:
        context = taddons.context(loadcore=False)
        context.master._legacy_log_events.uninstall()
        contexts.append(context)
        manager = context.master.addons
        if cached:
            dispatch.install(manager)
        for addon in addons:
            manager.add(addon)
        return manager

    yield make


async def run_events(manager: Any) -> None:
    flow = tflow.tflow(resp=True)
    for hook in (
        hooks.all_hooks["requestheaders"](flow),
        hooks.all_hooks["request"](flow),
        hooks.all_hooks["response"](flow),
    ):
        await manager.handle_lifecycle(hook)
    manager.trigger(hooks.ConfigureHook({"x"}))


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The errors logged, without object addresses (each run has its own objects)."""
    return [
        re.sub(r" at 0x[0-9a-f]+", "", r.getMessage())
        for r in caplog.records
        if r.levelno >= logging.ERROR
    ]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_cached_dispatch_calls_what_mitmproxy_calls(
    scenario: str, managers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    records = []
    for cached in (False, True):
        calls: Calls = []
        caplog.clear()
        await run_events(managers(cached, SCENARIOS[scenario](calls)))
        records.append((calls, errors(caplog)))
    assert records[0] == records[1]
    assert records[1][0]  # something was called


async def test_sync_dispatch_refuses_an_async_hook_like_mitmproxy(
    managers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    records = []
    for cached in (False, True):
        calls: Calls = []
        caplog.clear()
        manager = managers(cached, [AsyncConfigure(), Recorder("b", calls)])
        manager.trigger(hooks.ConfigureHook({"x"}))
        records.append((calls, errors(caplog)))
    assert records[0] == records[1] == (["b.configure"], records[0][1])
    assert any("cannot be called from sync context" in e for e in records[1][1])


async def test_options_error_propagates_like_mitmproxy(managers: Any) -> None:
    class Strict:
        def configure(self, updated: set[str]) -> None:
            raise exceptions.OptionsError("no")

    for cached in (False, True):
        manager = managers(cached, [Strict()])
        with pytest.raises(exceptions.OptionsError):
            manager.trigger(hooks.ConfigureHook({"x"}))


async def test_adding_and_removing_addons_refreshes_the_cache(managers: Any) -> None:
    calls: Calls = []
    first = Recorder("a", calls)
    manager = managers(True, [first])
    flow = tflow.tflow()
    await manager.trigger_event(hooks.all_hooks["request"](flow))
    late = Recorder("late", calls)
    manager.add(late)
    await manager.trigger_event(hooks.all_hooks["request"](flow))
    manager.remove(first)
    await manager.trigger_event(hooks.all_hooks["request"](flow))
    assert calls == ["a.request", "a.request", "late.request", "late.request"]


async def test_install_is_idempotent_and_per_manager(managers: Any) -> None:
    cached = managers(True, [])
    stock = managers(False, [])
    trigger = cached.trigger_event
    dispatch.install(cached)
    assert cached.trigger_event == trigger
    assert dispatch.installed(cached) and not dispatch.installed(stock)


def test_speedups_skip_only_the_debug_type_check() -> None:
    from mitmproxy.test import tutils

    speedups.install(taddons.context(loadcore=False).master.addons)
    # Messages are built as before; only the debug-time check of field types is gone.
    request = tutils.treq()
    assert request.method == "GET" and request.headers["header"] == "qvalue"
    response = http.Response.make(201, b"x", {"A": "b"})
    assert (response.status_code, response.content, response.headers["A"]) == (201, b"x", "b")


async def test_speedups_name_mitmproxys_tasks_without_the_test_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mitmproxy.utils import asyncio_utils

    speedups.install(taddons.context(loadcore=False).master.addons)
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "some test")  # stock would add it to the name

    async def work() -> None:
        pass

    task = asyncio_utils.create_task(work(), name="hook", keep_ref=True, client=("1.2.3.4", 5))
    await task
    assert task.get_name() == "hook"
    assert task.client == ("1.2.3.4", 5) and task.created > 0  # type: ignore[attr-defined]
