"""The deploy gates against the real sidecar: `driftgate gate` exit codes, Flagger hooks, the Argo template.

One `driftgate run` process on the embedded broker watches three deployments: an equal
retrain (`good`, ends go), a collapsed canary (`collapse`, ends no_go) and one with too
little traffic (`starved`, stays pending). The CI gate, the Flagger hooks and the Argo
Rollouts AnalysisTemplate shipped in `examples/` are each checked against it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from confluent_kafka import Producer

from integration.sidecar_process import fresh_topics, run_config, sidecar_process
from monitor.embedded.loopback import free_port
from monitor.embedded.simulator import TrafficSimulator

pytestmark = pytest.mark.integration

TOKEN = "gate-e2e-token"
SCENARIOS = {"good": 10000, "collapse": 2500, "starved": 60}
CLASSES = ["invoice", "contract", "other"]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TEMPLATE = EXAMPLES / "argo-analysistemplate.yaml"
FLAGGER_BODY = {"name": "doc-classifier", "namespace": "models", "phase": "Progressing", "checksum": "85d557f47b"}


@dataclass
class RunningSidecar:
    url: str
    process: subprocess.Popen[bytes]


def _produce(bootstrap: str, topics: dict[str, dict[str, str]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for name, n_requests in SCENARIOS.items():
        scenario = "good" if name == "starved" else name
        simulator = TrafficSimulator(scenario, deployment=name, seed=5)
        for event in simulator.stream(n_requests, start_ts=1_800_000_000.0, rate_per_s=100):
            producer.produce(topics[name][event.role], orjson.dumps(event.payload), event.key.encode())
    assert producer.flush(30) == 0


@pytest.fixture(scope="module")
def sidecar(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSidecar]:
    run = fresh_topics(broker.bootstrap, "gate", SCENARIOS)
    topics = run.inputs
    config = run_config(
        broker.bootstrap, run, [{"name": name, "topics": topics[name], "classes": CLASSES} for name in SCENARIOS],
        state={"enabled": False},
    )
    with sidecar_process(config, tmp_path_factory.mktemp("gate-e2e"), TOKEN) as process:
        _produce(broker.bootstrap, topics)
        yield RunningSidecar(process.url, process.process)


def gate(url: str, deployment: str, wait: str) -> subprocess.CompletedProcess[str]:
    """`driftgate gate` as CI runs it, the token from the environment."""
    return subprocess.run(
        [sys.executable, "-m", "monitor", "gate", "--url", url, "--deployment", deployment,
         "--wait", wait, "--poll", "0.5"],
        capture_output=True, text=True, timeout=90, env={**os.environ, "DRIFTGATE_API_TOKEN": TOKEN},
    )


# -- driftgate gate -----------------------------------------------------------------------------


def test_gate_exits_0_on_go(sidecar: RunningSidecar) -> None:
    result = gate(sidecar.url, "good", "60s")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("go: good canary v42")


def test_gate_exits_1_on_no_go_and_prints_the_reasons(sidecar: RunningSidecar) -> None:
    result = gate(sidecar.url, "collapse", "60s")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "no_go: collapse canary v42"
    assert any(line.startswith("  - canary collapsed onto 'invoice'") for line in lines[1:]), lines


def test_gate_exits_2_while_still_pending(sidecar: RunningSidecar) -> None:
    result = gate(sidecar.url, "starved", "2s")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.startswith("pending: starved")
    assert "starved: pending" in result.stderr  # the progress line while waiting


def test_gate_exits_3_when_nothing_listens() -> None:
    result = gate(f"http://127.0.0.1:{free_port()}", "good", "1s")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "cannot read the verdict" in result.stderr


# -- Flagger ------------------------------------------------------------------------------------


def _verdict_of(sidecar: RunningSidecar, name: str, wanted: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    headers = {"Authorization": f"Bearer {TOKEN}"}
    while httpx.get(f"{sidecar.url}/v1/deployments/{name}/verdict", headers=headers).json()["verdict"] != wanted:
        assert time.monotonic() < deadline, f"{name} never reached {wanted}"
        time.sleep(0.3)


@pytest.mark.parametrize(
    ("hook", "deployment", "status"),
    [
        ("confirm-promotion", "good", 200),
        ("confirm-promotion", "collapse", 403),
        ("confirm-promotion", "starved", 403),
        ("pre-rollout", "starved", 403),
        ("rollout", "good", 200),
        ("rollout", "starved", 200),  # pending is not a failed check
        ("rollout", "collapse", 403),
        ("rollback", "collapse", 200),  # Flagger rolls back on 200
        ("rollback", "good", 403),
    ],
)
def test_flagger_hooks_on_the_real_sidecar(sidecar: RunningSidecar, hook: str, deployment: str, status: int) -> None:
    _verdict_of(sidecar, "good", "go")
    _verdict_of(sidecar, "collapse", "no_go")
    body = {**FLAGGER_BODY, "metadata": {"deployment": deployment}}
    response = httpx.post(f"{sidecar.url}/v1/gates/flagger/{hook}", json=body,
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert response.status_code == status, response.text
    assert response.json()["deployment"] == deployment


def test_flagger_default_gate_is_confirm_promotion(sidecar: RunningSidecar) -> None:
    _verdict_of(sidecar, "good", "go")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    go = httpx.post(f"{sidecar.url}/v1/gates/flagger", json={**FLAGGER_BODY, "name": "good"}, headers=headers)
    no_go = httpx.post(f"{sidecar.url}/v1/gates/flagger", json={**FLAGGER_BODY, "name": "collapse"}, headers=headers)
    assert (go.status_code, no_go.status_code) == (200, 403)
    assert no_go.json()["reasons"]


def test_the_flagger_example_hooks_mean_what_its_comments_say(sidecar: RunningSidecar) -> None:
    canary = yaml.safe_load((EXAMPLES / "flagger-canary.yaml").read_text())
    assert canary["kind"] == "Canary"
    _verdict_of(sidecar, "good", "go")
    _verdict_of(sidecar, "collapse", "no_go")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answers: dict[str, dict[str, int]] = {}
    for webhook in canary["spec"]["analysis"]["webhooks"]:
        path = "/" + webhook["url"].split("/", 3)[3]  # the example's route on this sidecar
        answers[webhook["type"]] = {
            name: httpx.post(f"{sidecar.url}{path}", headers=headers,
                             json={**FLAGGER_BODY, "metadata": {**webhook["metadata"], "deployment": name}}).status_code
            for name in SCENARIOS
        }
    assert answers == {
        "rollout": {"good": 200, "collapse": 403, "starved": 200},
        "confirm-promotion": {"good": 200, "collapse": 403, "starved": 403},
        "rollback": {"good": 403, "collapse": 200, "starved": 403},
    }


# -- Argo Rollouts: the shipped AnalysisTemplate, evaluated as Argo would ------------------------


def json_path(expression: str, document: Any) -> Any:
    """Argo's jsonPath for the simple `{$.a.b}` form the template uses."""
    match = re.fullmatch(r"\{\$((?:\.\w+)+)\}", expression)
    assert match, f"unsupported jsonPath {expression!r}"
    for key in match.group(1).strip(".").split("."):
        document = document[key]
    return document


def condition(expression: str, result: str) -> bool:
    """A condition made of `result == "x"` terms joined by `||`."""
    terms = [term.strip() for term in expression.split("||")]
    values = [re.fullmatch(r'result == "(\w+)"', term) for term in terms]
    assert all(values), f"unsupported condition {expression!r}"
    return any(result == value.group(1) for value in values if value)


def measurement(metric: dict[str, Any], args: dict[str, str]) -> str:
    """Take one measurement the way the web provider does: GET, jsonPath, then the conditions."""
    web = metric["provider"]["web"]

    def resolve(text: str) -> str:
        return re.sub(r"\{\{args\.([\w-]+)\}\}", lambda m: args[m.group(1)], text)

    headers = {h["key"]: resolve(h["value"]) for h in web.get("headers", [])}
    response = httpx.get(resolve(web["url"]), headers=headers, timeout=web.get("timeoutSeconds", 10))
    assert response.status_code == 200  # the gate route answers 200 whatever the verdict
    result = json_path(web["jsonPath"], response.json())
    if condition(metric["failureCondition"], result):
        return "Failed"
    if condition(metric["successCondition"], result):
        return "Successful"
    return "Inconclusive"


def test_the_argo_template_reads_the_gate_as_intended(sidecar: RunningSidecar) -> None:
    template = yaml.safe_load(TEMPLATE.read_text())
    assert template["kind"] == "AnalysisTemplate"
    (metric,) = template["spec"]["metrics"]
    assert metric["provider"]["web"]["jsonPath"] == "{$.verdict}"
    assert metric["successCondition"] == 'result == "go"'
    assert metric["failureCondition"] == 'result == "no_go"'
    # An all-pending run must not reach `count` and pass: it has to end Inconclusive first.
    assert metric["inconclusiveLimit"] < metric["count"]
    _verdict_of(sidecar, "good", "go")
    _verdict_of(sidecar, "collapse", "no_go")
    args = {"driftgate-url": sidecar.url, "api-token": TOKEN}
    outcomes = {name: measurement(metric, {**args, "deployment": name}) for name in SCENARIOS}
    assert outcomes == {"good": "Successful", "collapse": "Failed", "starved": "Inconclusive"}


def test_the_gate_route_is_404_for_an_unknown_deployment(sidecar: RunningSidecar) -> None:
    response = httpx.get(f"{sidecar.url}/v1/deployments/nowhere/gate", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404
