"""The gate's steps as one mitmproxy addon (gate_proxy/proxy/addons/pipeline.py): the same
calls in the same order as separate addons, the same fail-closed guard, sync hooks sync."""

import inspect
import json
import logging
from typing import Any

import pytest
from mitmproxy import exceptions, http
from mitmproxy.test import taddons, tflow

from gate_proxy.proxy.addons import guard, pipeline
from gate_proxy.proxy.addons.guard import fail_closed
from gate_proxy.proxy.addons.pipeline import GatePipeline
from gate_proxy.settings import Settings


class Step:
    def __init__(self, name: str, calls: list[str], *, fail: tuple[str, ...] = ()) -> None:
        self.name = name
        self.calls = calls
        self.fail = fail
        self.runtime = None

    def _hit(self, hook: str, flow: http.HTTPFlow | None = None) -> None:
        answered = " (answered)" if flow is not None and flow.response is not None else ""
        self.calls.append(f"{self.name}.{hook}{answered}")
        if hook in self.fail:
            raise RuntimeError(f"{self.name} fails in {hook}")


class Guarded(Step):
    @fail_closed("test_requestheaders")
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._hit("requestheaders", flow)

    @fail_closed("test_request")
    async def request(self, flow: http.HTTPFlow) -> None:
        self._hit("request", flow)

    @fail_closed("test_response")
    def response(self, flow: http.HTTPFlow) -> None:
        self._hit("response", flow)


class Unguarded(Step):
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._hit("requestheaders", flow)

    def response(self, flow: http.HTTPFlow) -> None:
        self._hit("response", flow)

    def configure(self, updated: set[str]) -> None:
        if "bad" in updated:
            raise exceptions.OptionsError("bad option")


def answered_by_gate(flow: http.HTTPFlow) -> dict[str, Any]:
    assert flow.response is not None
    assert flow.response.status_code == 503
    body: dict[str, Any] = json.loads(flow.response.content or b"{}")
    return body


async def test_steps_run_in_order_and_sync_hooks_stay_sync() -> None:
    calls: list[str] = []
    gate = GatePipeline([Guarded("a", calls), Unguarded("b", calls), Guarded("c", calls)])
    assert not inspect.iscoroutinefunction(gate.requestheaders)
    assert not inspect.iscoroutinefunction(gate.response)
    assert inspect.iscoroutinefunction(gate.request)
    assert not hasattr(gate, "responseheaders")  # no step implements it: not dispatched
    flow = tflow.tflow(resp=True)
    with taddons.context():
        gate.requestheaders(flow)
        await gate.request(flow)
        gate.response(flow)
    assert calls == [
        "a.requestheaders (answered)",
        "b.requestheaders (answered)",
        "c.requestheaders (answered)",
        "a.request (answered)",
        "c.request (answered)",
        "a.response (answered)",
        "b.response (answered)",
        "c.response (answered)",
    ]


async def test_a_guarded_step_that_fails_refuses_with_503_and_the_next_step_still_runs() -> None:
    calls: list[str] = []
    gate = GatePipeline([Guarded("a", calls, fail=("request",)), Guarded("b", calls)])
    flow = tflow.tflow()
    with taddons.context():
        await gate.request(flow)
    body = answered_by_gate(flow)
    assert body["reason_code"] == "gate_internal_error" and "test_request" in body["message"]
    assert flow.request.stream is False
    # As the next addon would have: it runs, and sees the gate's answer.
    assert calls == ["a.request", "b.request (answered)"]


async def test_a_failing_sync_guarded_step_fails_closed_too() -> None:
    calls: list[str] = []
    gate = GatePipeline([Guarded("a", calls, fail=("requestheaders",))])
    flow = tflow.tflow()
    with taddons.context():
        gate.requestheaders(flow)
    assert answered_by_gate(flow)["reason_code"] == "gate_internal_error"


async def test_an_unguarded_step_that_fails_is_logged_as_mitmproxy_would_and_the_next_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    gate = GatePipeline([Unguarded("a", calls, fail=("response",)), Guarded("b", calls)])
    flow = tflow.tflow(resp=True)
    with taddons.context(), caplog.at_level(logging.ERROR):
        gate.response(flow)
    assert calls == ["a.response (answered)", "b.response (answered)"]
    assert any("Addon error: a fails in response" in r.getMessage() for r in caplog.records)
    assert flow.response is not None and flow.response.status_code == 200  # untouched


async def test_options_errors_propagate_so_mitmproxy_can_refuse_the_option() -> None:
    gate = GatePipeline([Unguarded("a", [])])
    with pytest.raises(exceptions.OptionsError):
        gate.configure({"bad"})


async def test_the_chaos_switch_still_fails_the_named_hook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(guard, "CHAOS_FAIL_HOOKS", frozenset({"test_request"}))
    monkeypatch.setattr(pipeline, "CHAOS_FAIL_HOOKS", frozenset({"test_request"}))
    calls: list[str] = []
    gate = GatePipeline([Guarded("a", calls)])
    flow = tflow.tflow()
    with taddons.context():
        await gate.request(flow)
    assert "chaos" not in json.dumps(answered_by_gate(flow))  # the reason, not the detail
    assert calls == []  # the hook never ran


def test_the_gate_loads_as_one_addon_with_sync_response_hooks() -> None:
    from gate_proxy.proxy.addons import gate_addons, gate_steps
    from gate_proxy.proxy.runtime import ProxyRuntime

    runtime = ProxyRuntime(None, lambda: None, Settings())  # type: ignore[arg-type]
    (gate,) = gate_addons(runtime)
    assert isinstance(gate, GatePipeline)
    assert [type(step).__name__ for step in gate.steps] == [
        type(step).__name__ for step in gate_steps(runtime)
    ]
    for hook in ("responseheaders", "response", "error", "client_disconnected"):
        assert not inspect.iscoroutinefunction(getattr(gate, hook)), hook


def test_every_hook_that_can_let_a_request_through_is_guarded() -> None:
    # mitmproxy forwards a flow whose hook raised. In the pipeline an unguarded hook that
    # raises is only logged, so every step's hook on the way to the upstream must be
    # under fail_closed; only the header timeout and the record line (which decide
    # nothing) may go without.
    from gate_proxy.proxy.addons import gate_steps
    from gate_proxy.proxy.runtime import ProxyRuntime

    on_the_way = ("http_connect", "requestheaders", "request", "responseheaders", "response")
    deciding_nothing = {"RequestHeaderTimeout", "GateRecord"}
    runtime = ProxyRuntime(None, lambda: None, Settings())  # type: ignore[arg-type]
    checked = []
    for step in gate_steps(runtime):
        name = type(step).__name__
        for hook in on_the_way:
            method = getattr(step, hook, None)
            if method is None or name in deciding_nothing:
                continue
            checked.append(f"{name}.{hook}")
            assert guard.guard_of(method) is not None, f"{name}.{hook} is not fail_closed"
    assert "GateDecision.request" in checked and "GateIdentity.requestheaders" in checked
