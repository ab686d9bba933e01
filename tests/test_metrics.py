"""/metrics is rendered by prometheus_client from bounded labels: a valid exposition with
consistent histograms, every declared gauge present, and API errors counted."""

from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from gate_proxy.api.app import build_app
from gate_proxy.keys import load_or_create_signer
from gate_proxy.metrics import GateMetrics
from gate_proxy.store.sqlite import SqliteStore
from gate_proxy.usecases import UseCases


def families(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        out[family.name] = [(s.name, dict(s.labels), s.value) for s in family.samples]
    return out


def test_histogram_buckets_count_and_sum_agree_even_past_the_last_bucket() -> None:
    metrics = GateMetrics()
    for value in (0.0001, 0.3, 7.5, 120.0):  # two observations past the 5 s bucket
        metrics.decision_latency.observe(value, "proxy")
    samples = families(metrics.registry.render())["gate_decision_latency_seconds"]
    inf = next(v for n, labels, v in samples if labels.get("le") == "+Inf")
    count = next(v for n, _, v in samples if n.endswith("_count"))
    total = next(v for n, _, v in samples if n.endswith("_sum"))
    assert inf == count == 4
    assert total == 0.0001 + 0.3 + 7.5 + 120.0
    buckets = [v for n, labels, v in samples if n.endswith("_bucket")]
    assert buckets == sorted(buckets)  # cumulative


def test_every_gauge_exports_a_sample() -> None:
    text = GateMetrics().registry.render()
    assert families(text)["gate_held_requests"] == [("gate_held_requests", {}, 0.0)]


async def test_an_internal_api_error_is_counted(tmp_path: Path) -> None:
    signer = load_or_create_signer(tmp_path)
    store = SqliteStore(tmp_path, signer)
    await store.open()
    usecases = UseCases.build(store, dict, signer, "gate_sk_admin-" + "x" * 40)

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug with request data in it: secret")

    app = build_app(
        usecases,
        body_limit=1024,
        extra_routes=lambda app: app.router.add_get("/broken", broken),
    )
    try:
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/broken")
            assert response.status == 500
            body = await response.json()
            assert body == {"error": "internal_error", "message": "the gate hit an internal error"}
            text = await (await client.get("/metrics")).text()
    finally:
        await usecases.close()
        await store.close()
    counted = families(text)["gate_internal_errors"]
    assert ("gate_internal_errors_total", {"where": "api"}, 1.0) in counted
