"""The HTTP API in-process (httpx ASGI transport) over a real sidecar fed records directly."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from monitor.api.app import create_app
from monitor.config import Settings, parse_config
from monitor.core.records import Record
from monitor.embedded.simulator import TrafficSimulator
from monitor.sidecar.service import Sidecar, Sink, Source

TOKEN = "s3cret-token"


def _unused_source() -> Source:
    raise AssertionError("these tests feed records directly")


def _unused_sink() -> Sink:
    raise AssertionError("these tests feed records directly")


def settings(token: str | None = None) -> Settings:
    return parse_config(
        {
            "api": {"token": token},
            "deployments": [
                {"name": "good-one", "classes": ["invoice", "contract", "other"],
                 "topics": {"live": "g.live", "canary": "g.canary", "feedback": "g.feedback"}},
                {"name": "collapsed", "classes": ["invoice", "contract", "other"],
                 "topics": {"live": "c.live", "canary": "c.canary", "feedback": "c.feedback"}},
                {"name": "starved", "topics": {"live": "s.live", "canary": "s.canary", "feedback": "s.feedback"}},
            ],
        },
        {},
    )


def feed(sidecar: Sidecar, prefix: str, scenario: str, n_requests: int) -> None:
    records = []
    offsets = {"live": 0, "canary": 0, "feedback": 0}
    simulator = TrafficSimulator(scenario, deployment={"g": "good-one", "c": "collapsed", "s": "starved"}[prefix])
    for event in simulator.stream(n_requests, start_ts=1_800_000_000.0, rate_per_s=50):
        topic = f"{prefix}.{event.role}"
        records.append(Record(topic, 0, offsets[event.role], event.key.encode(), orjson.dumps(event.payload)))
        offsets[event.role] += 1
    sidecar.ingest.process(records, now=1_800_000_000.0)


@pytest.fixture
def sidecar() -> Sidecar:
    sidecar = Sidecar(settings(), _unused_source, _unused_sink)
    feed(sidecar, "g", "good", 3000)
    feed(sidecar, "c", "collapse", 3000)
    feed(sidecar, "s", "good", 20)
    sidecar.evaluate_verdicts()
    return sidecar


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://driftgate") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


@pytest.fixture
def app(sidecar: Sidecar) -> Iterator[Any]:
    yield create_app(sidecar, [d.name for d in sidecar.settings.deployments])


def test_verdicts_of_three_deployments(app: Any) -> None:
    listing = call(app, "GET", "/v1/deployments").json()["deployments"]
    assert {d["name"]: d["verdict"] for d in listing} == {
        "good-one": "go", "collapsed": "no_go", "starved": "pending",
    }
    body = call(app, "GET", "/v1/deployments/collapsed/verdict").json()
    assert body["verdict"] == "no_go"
    assert any("class distribution" in reason or "collapsed" in reason for reason in body["reasons"])
    assert set(body) >= {"deployment", "verdict", "reasons", "checks", "samples", "live_version",
                         "canary_version", "evaluated_at"}
    assert body["canary_version"] == "v42" and body["live_version"] == "v41"
    assert body["samples"]["canary"] == 3000
    assert {c["status"] for c in body["checks"]} <= {"pass", "fail", "warn", "insufficient_data"}


def test_unknown_deployment_is_404(app: Any) -> None:
    for path in ("/v1/deployments/nope/verdict", "/v1/deployments/nope/gate", "/v1/deployments/nope/metrics"):
        response = call(app, "GET", path)
        assert response.status_code == 404
        assert "nope" in response.json()["detail"]


def test_argo_gate_is_always_200_with_the_verdict(app: Any) -> None:
    for name, verdict in (("good-one", "go"), ("collapsed", "no_go"), ("starved", "pending")):
        response = call(app, "GET", f"/v1/deployments/{name}/gate")
        assert response.status_code == 200
        assert response.json()["verdict"] == verdict


FLAGGER_BODY = {"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "85d557f47b",
                "metadata": {"deployment": "good-one"}}


@pytest.mark.parametrize(
    ("hook", "deployment", "status"),
    [
        ("confirm-promotion", "good-one", 200), ("confirm-promotion", "collapsed", 403),
        ("confirm-promotion", "starved", 403), ("pre-rollout", "starved", 403),
        ("rollout", "starved", 200), ("rollout", "collapsed", 403), ("rollout", "good-one", 200),
        ("rollback", "collapsed", 200), ("rollback", "good-one", 403),
    ],
)
def test_flagger_hooks(app: Any, hook: str, deployment: str, status: int) -> None:
    body = {**FLAGGER_BODY, "metadata": {"deployment": deployment}}
    assert call(app, "POST", f"/v1/gates/flagger/{hook}", json=body).status_code == status


def test_flagger_default_is_confirm_promotion_and_falls_back_to_name(app: Any) -> None:
    assert call(app, "POST", "/v1/gates/flagger", json=FLAGGER_BODY).status_code == 200
    no_go = call(app, "POST", "/v1/gates/flagger", json={**FLAGGER_BODY, "metadata": {}, "name": "collapsed"})
    assert no_go.status_code == 403
    assert no_go.json()["reasons"]


def test_bad_requests_get_4xx_with_a_message(app: Any) -> None:
    assert call(app, "POST", "/v1/gates/flagger", content=b"{not json").status_code == 422
    assert call(app, "POST", "/v1/gates/flagger", json={"namespace": "x"}).status_code == 422
    unknown_hook = call(app, "POST", "/v1/gates/flagger/explode", json=FLAGGER_BODY)
    assert unknown_hook.status_code == 404 and "explode" in unknown_hook.json()["detail"]
    huge = call(app, "POST", "/v1/gates/flagger", content=b"x" * 100_000,
                headers={"content-type": "application/json"})
    assert huge.status_code == 413


def test_metrics_snapshot_and_prometheus(app: Any, sidecar: Sidecar) -> None:
    snapshot = call(app, "GET", "/v1/deployments/collapsed/metrics").json()
    assert snapshot["events"]["canary"] == 3000
    assert snapshot["comparison"]["divergence"]["live"]["js"] > 0.2
    text = call(app, "GET", "/metrics").text
    assert 'driftgate_verdict{deployment="collapsed",verdict="no_go"} 1.0' in text
    assert 'driftgate_verdict{deployment="good-one",verdict="go"} 1.0' in text
    assert 'driftgate_events_total{deployment="collapsed",role="canary"} 3000.0' in text
    assert 'driftgate_class_divergence{baseline="live",deployment="collapsed",metric="js"}' in text
    assert "driftgate_disagreement_rate{" in text
    assert 'driftgate_predictions_total{class="invoice",deployment="collapsed",role="canary"}' in text


def test_health_and_readiness(app: Any) -> None:
    assert call(app, "GET", "/healthz").status_code == 200
    ready = call(app, "GET", "/readyz")
    assert ready.status_code == 503  # no Kafka consumer was started
    assert ready.json()["reason"]


def test_token_guards_every_route_but_health_and_metrics(sidecar: Sidecar) -> None:
    app = create_app(sidecar, [d.name for d in sidecar.settings.deployments], token=TOKEN)
    assert call(app, "GET", "/v1/deployments").status_code == 401
    wrong = call(app, "GET", "/v1/deployments", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and TOKEN not in wrong.text
    right = call(app, "GET", "/v1/deployments", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200
    assert call(app, "POST", "/v1/gates/flagger", json=FLAGGER_BODY).status_code == 401
    for open_path in ("/healthz", "/metrics"):
        assert call(app, "GET", open_path).status_code == 200
    assert call(app, "GET", "/readyz").status_code == 503
