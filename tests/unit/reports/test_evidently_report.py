"""The Evidently report: the reference against recent traffic, through report_html and the HTTP API."""

from __future__ import annotations

import asyncio
import html
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest

from monitor.api.app import create_app
from monitor.config import parse_config
from monitor.core.events import Feedback, Prediction
from monitor.core.profile import build_profile
from monitor.errors import ReportError
from monitor.reports.evidently_report import SampleRow, report_html
from monitor.reports.profile_file import read_profile, write_profile
from monitor.sidecar.service import Sidecar

pytest.importorskip("evidently")
CLASSES = ["invoice", "contract", "other"]


def sample(n: int, seed: int, shift: float = 0.0, with_target: bool = True) -> list[SampleRow]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        label = str(rng.choice(CLASSES))
        truth = label if rng.uniform() < 0.8 else str(rng.choice(CLASSES))
        rows.append(SampleRow(label, truth if with_target else None,
                              {"text_len": float(rng.normal(3000 + shift, 500)), "lang": str(rng.choice(["de", "en"]))},
                              {"invoice": float(rng.uniform())}))
    return rows


KINDS = {"text_len": "numeric", "lang": "categorical", "scores.invoice": "numeric"}


def test_report_shows_drift_and_classification_quality() -> None:
    page = report_html("doc: canary", sample(400, 1), sample(300, 2, shift=600), KINDS)
    assert page.startswith("<!doctype html>")
    assert "Data drift: features, scores and the predicted class" in page
    assert "Classification quality on labelled rows" in page
    inner = html.unescape(page)
    # Evidently's own page is inside, naming the drifting column
    assert all(column in inner for column in ("text_len", "lang", "scores.invoice", "prediction"))


def test_report_without_labels_says_why_quality_is_missing() -> None:
    page = report_html("doc", sample(200, 1), sample(200, 2, with_target=False), KINDS)
    assert "Classification quality on labelled rows" not in page
    assert "needs 30 rows with a true class on each side; there are 0 recent" in page


def test_report_refuses_empty_sides() -> None:
    with pytest.raises(ReportError, match="no recent traffic rows"):
        report_html("doc", sample(10, 1), [], KINDS)


class NoSource:
    def poll(self, max_records: int, timeout_s: float) -> list[object]:
        return []


def test_report_route_serves_the_sidecars_sample(tmp_path: Path) -> None:
    reference = sample(500, 1)
    columns = {"text_len": [r.features["text_len"] for r in reference if r.features],
               "lang": [r.features["lang"] for r in reference if r.features]}
    profile = build_profile("doc", [r.prediction for r in reference], columns, sample=reference)
    write_profile(profile, tmp_path / "p.json")
    settings = parse_config({
        "state": {"enabled": False},
        "deployments": [{"name": "doc", "classes": CLASSES, "reference": {"profile": str(tmp_path / "p.json")},
                         # one chunk is binned here; the report sample takes up to sample_rows // 8 of a chunk
                         "drift": {"sample_every": 1, "sample_rows": 2400}}],
    })
    sidecar = Sidecar(settings, NoSource, NoSource)  # type: ignore[arg-type]
    state = sidecar.ingest.states["doc"]
    for i, row in enumerate(sample(300, 2, shift=800)):
        state.add_prediction("canary", Prediction(f"r{i}", "doc", row.prediction, 1000.0 + i, "v2", None,
                                                  row.features))
        state.add_feedback(Feedback(f"r{i}", "doc", 1001.0 + i, label=row.target))
    state.flush_features()
    app = create_app(sidecar, ["doc"])

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            answer = await client.get("/v1/deployments/doc/report", params={"role": "canary"}, timeout=120)
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith("text/html")
            assert "300 rows" in answer.text and "Classification quality" in answer.text
            empty = await client.get("/v1/deployments/doc/report", params={"role": "live"})
            assert empty.status_code == 409 and "no recent traffic rows" in empty.json()["detail"]
            assert (await client.get("/v1/deployments/nope/report")).status_code == 404
            assert (await client.get("/v1/deployments/doc/report", params={"role": "x"})).status_code == 422

    asyncio.run(go())


def test_a_profile_taken_from_live_traffic_serves_as_the_reference(tmp_path: Path) -> None:
    settings = parse_config({
        "state": {"enabled": False}, "api": {"token": "secret"},
        "deployments": [{"name": "doc", "classes": CLASSES, "drift": {"sample_every": 1, "learn_from": 100}}],
    })
    sidecar = Sidecar(settings, NoSource, NoSource)  # type: ignore[arg-type]
    app = create_app(sidecar, ["doc"], token="secret")
    open_app = create_app(sidecar, ["doc"])
    state = sidecar.ingest.states["doc"]
    auth = {"Authorization": "Bearer secret"}

    async def get(client_app: object, headers: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app=client_app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/v1/deployments/doc/reference-profile", headers=headers)

    assert asyncio.run(get(app, auth)).status_code == 409  # nothing seen yet
    rows = sample(400, 3)
    for i, row in enumerate(rows):
        for role, version in (("canary", "v2"), ("live", "v1")):
            state.add_prediction(role, Prediction(f"r{i}", "doc", row.prediction, 1000.0 + i, version, row.scores,
                                                  row.features))
    answer = asyncio.run(get(app, auth))
    assert answer.status_code == 200, answer.text
    assert asyncio.run(get(app, {})).status_code == 401
    assert asyncio.run(get(open_app, {})).status_code == 403
    path = tmp_path / "live.profile.json"
    path.write_bytes(answer.content)
    profile = read_profile(path)
    assert profile.deployment == "doc" and profile.rows == 400
    assert profile.class_counts == dict(Counter(row.prediction for row in rows))
    text_len = profile.features.columns["text_len"]
    assert text_len.observed == 400
    assert text_len.summary.mean == pytest.approx(np.mean([r.features["text_len"] for r in rows if r.features]))
    config = parse_config({"deployments": [{"name": "doc", "reference": {"profile": str(path)}}]})
    assert config.deployments[0].reference.profile == path
