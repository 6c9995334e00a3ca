"""Feature drift end to end on the real broker: `driftgate run` as a process, one canary fed moved inputs.

Two deployments in one sidecar, no reference profile (so the canary is compared with
live on the same requests): ``drifted``, whose canary sees ``text_len`` moved by 2,000
characters (a changed preprocessing step), and ``same``, whose canary sees live's inputs.
The drifted canary shows it on ``text_len`` and on no other feature, in the verdict's
checks, the metrics snapshot and the Prometheus exposition; the other shows nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from integration.sidecar_process import (
    fresh_topics,
    get_json,
    produce_events,
    run_config,
    sidecar_process,
    wait_all_read,
)
from monitor.embedded.simulator import CLASSES, TrafficSimulator

pytestmark = pytest.mark.integration

REQUESTS = 12000
SHIFTS = {"drifted": {"text_len": 2000.0}, "same": {}}


@dataclass
class Running:
    url: str


@pytest.fixture(scope="module")
def running(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    run = fresh_topics(broker.bootstrap, "fd", SHIFTS)
    topics = run.inputs
    directory = tmp_path_factory.mktemp("feature-drift-e2e")
    config = run_config(
        broker.bootstrap, run,
        [{"name": name, "topics": topics[name], "classes": list(CLASSES)} for name in SHIFTS],
        state={"dir": str(directory / "state")},
    )
    with sidecar_process(config, directory) as sidecar:
        url = sidecar.url
        produced: dict[str, Counter[str]] = {}
        for name, shift in SHIFTS.items():
            simulator = TrafficSimulator("good", deployment=name, seed=11, canary_feature_shift=shift)
            events = simulator.stream(REQUESTS, start_ts=1_800_000_000.0, rate_per_s=200)
            produced[name] = produce_events(
                broker.bootstrap, topics[name], ((e.role, e.key, orjson.dumps(e.payload)) for e in events)
            )
        wait_all_read(url, produced)
        yield Running(url)


def _checks(url: str, name: str) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in get_json(url, f"/v1/deployments/{name}/verdict")["checks"]}


def test_the_drifted_canary_shows_it_on_that_feature_only(running: Running) -> None:
    check = _checks(running.url, "drifted")["feature_drift"]
    assert check["status"] == "warn" and not check["blocking"], check["detail"]
    assert "text_len" in check["detail"]
    assert "n_pages" not in check["detail"] and "lang" not in check["detail"] and "scores." not in check["detail"]
    figures = get_json(running.url, "/v1/deployments/drifted/metrics")["features"]
    assert figures["baseline"] == "live" and figures["layout"] == "learned"
    by_feature = {f["feature"]: f["value"] for f in figures["drift"] if f["test"] == "wasserstein_vs_live"}
    # 2,000 characters against live's spread of about 2,400: a normed distance near 0.8
    assert by_feature["text_len"] > 0.5
    assert all(value < 0.1 for feature, value in by_feature.items() if feature != "text_len"), by_feature
    js = {f["feature"]: f["value"] for f in figures["drift"] if f["test"] == "js_vs_live"}
    assert js["lang"] < 0.1
    # the out-of-range check sees the moved values beyond live's range
    assert figures["quality"]["canary"]["text_len"]["out_of_range_share"] > 0.05


def test_prometheus_exposes_the_drift_under_the_contract_labels(running: Running) -> None:
    text = httpx.get(f"{running.url}/metrics", timeout=10).text
    lines = [line for line in text.splitlines() if line.startswith("driftgate_feature_drift{")]
    drifted = [line for line in lines if 'deployment="drifted"' in line and 'feature="text_len"' in line
               and 'test="wasserstein_vs_live"' in line]
    assert len(drifted) == 1 and 'role="canary"' in drifted[0]
    assert float(drifted[0].rsplit(" ", 1)[1]) > 0.5


def test_a_canary_fed_the_same_inputs_shows_no_drift(running: Running) -> None:
    checks = _checks(running.url, "same")
    assert checks["feature_drift"]["status"] == "pass", checks["feature_drift"]["detail"]
    for name in ("missing_values", "type_changes", "unseen_categories", "out_of_range"):
        assert checks[name]["status"] == "pass", checks[name]


