"""Feature, score and data-quality drift checks, figures against Evidently, and their place in the verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import wasserstein_distance as scipy_wasserstein

from monitor.config import FeatureDriftCheckSettings, parse_config
from monitor.core.events import Prediction
from monitor.core.feature_checks import column_tests, data_quality_checks, drift_figures, feature_drift_checks
from monitor.core.ingest import new_state
from monitor.core.profile import build_profile
from monitor.core.state.deployment import DeploymentState
from monitor.core.state.features import FeatureLayout, FeatureStats
from monitor.core.verdict import evaluate
from monitor.reports.profile_file import read_profile, write_profile

evidently_stattests = pytest.importorskip("evidently.legacy.calculations.stattests")
ColumnType = pytest.importorskip("evidently.legacy.core").ColumnType

CLASSES = ["invoice", "contract", "other"]


def rows(n: int, seed: int, text_shift: float = 0.0, lang: tuple[str, ...] = ("de", "en", "fr")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "label": rng.choice(CLASSES, n),
        "n_pages": rng.integers(1, 30, n).astype(float),
        "lang": rng.choice(list(lang), n),
        "text_len": rng.normal(3000 + text_shift, 500, n),
    })


def profile_file(tmp_path: Path, reference: pd.DataFrame) -> Path:
    columns = {name: reference[name].tolist() for name in ("n_pages", "lang", "text_len")}
    path = tmp_path / "doc.profile.json"
    write_profile(build_profile("doc", reference["label"].tolist(), columns, bins=100), path)
    return path


def config_for(profile: Path | None, **checks: Any) -> Any:
    deployment: dict[str, Any] = {"name": "doc", "classes": CLASSES, "drift": {"sample_every": 1},
                                  "policy": {"checks": checks}}
    if profile is not None:
        deployment["reference"] = {"profile": str(profile)}
    return parse_config({"deployments": [deployment]}).deployments[0]



def state_for(config: Any) -> DeploymentState:
    """An empty state of the deployment with the profile its config names, as the sidecar assembles it."""
    path = config.reference.profile
    return new_state(config, read_profile(path) if path is not None else None)


def feed(state: DeploymentState, live: pd.DataFrame, canary: pd.DataFrame) -> DeploymentState:
    for i, (a, b) in enumerate(zip(live.to_dict("records"), canary.to_dict("records"), strict=True)):
        for role, row, version in (("canary", b, "v2"), ("live", a, "v1")):
            features = {k: row[k] for k in ("n_pages", "lang", "text_len")}
            state.add_prediction(role, Prediction(f"r{i}", "doc", row["label"], 1000.0 + i * 0.01, version,
                                                  None, features))
        if i % 500 == 0:
            state.tick()
    state.tick()
    return state


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return rows(20_000, seed=1)


def evidently(test: Any, reference: pd.Series, current: pd.Series, kind: Any) -> float:
    return float(test(reference, current, kind, None).drift_score)


def test_canary_drifting_on_one_feature_fails_that_feature_only(tmp_path: Path, reference: pd.DataFrame) -> None:
    config = config_for(profile_file(tmp_path, reference))
    live, canary = rows(3000, seed=2), rows(3000, seed=3, text_shift=400)
    state = feed(state_for(config), live, canary)
    figures = {(f.role, f.baseline, f.feature, f.test): f for f in drift_figures(state)}
    # Against Evidently on the same raw values: exact where exact, within the stated bound where binned.
    for role, frame in (("live", live), ("canary", canary)):
        wd = figures[(role, "reference", "text_len", "wasserstein")]
        expected = evidently(evidently_stattests.wasserstein_stat_test, reference["text_len"], frame["text_len"],
                             ColumnType.Numerical)
        assert abs(wd.value - expected) <= wd.error_bound + 1e-9
        js = figures[(role, "reference", "lang", "js")]
        expected_js = evidently(evidently_stattests.jensenshannon_stat_test, reference["lang"], frame["lang"],
                                ColumnType.Categorical)
        assert js.value == pytest.approx(expected_js, abs=1e-6)
    drift, vs_live = feature_drift_checks(state, config.policy.checks.feature_drift)
    assert drift.name == "feature_drift" and drift.status == "warn" and not drift.blocking
    assert "'text_len' " in drift.detail and "n_pages" not in drift.detail and "lang" not in drift.detail
    assert vs_live.name == "feature_drift_vs_live" and vs_live.status == "warn" and "'text_len' " in vs_live.detail
    assert figures[("live", "reference", "text_len", "wasserstein")].value < 0.1
    assert figures[("canary", "reference", "text_len", "wasserstein")].value > 0.5
    # warnings do not change the verdict's blocking logic, and they are named among its reasons
    verdict = evaluate(config, state)
    assert any(r.startswith("warning: canary inputs drifted") for r in verdict.reasons)
    warnings = [check for check in verdict.checks if check.status == "warn"]
    assert {"feature_drift", "feature_drift_vs_live"} <= {check.name for check in warnings}
    assert not any("no-go" in check.detail or "no_go" in check.detail for check in warnings)


def test_a_blocking_feature_makes_drift_a_no_go(tmp_path: Path, reference: pd.DataFrame) -> None:
    config = config_for(profile_file(tmp_path, reference), feature_drift={"blocking_features": ["text_len"]})
    state = feed(state_for(config), rows(3000, seed=2), rows(3000, seed=3, text_shift=400))
    verdict = evaluate(config, state)
    assert verdict.verdict == "no_go"
    assert any("text_len" in reason for reason in verdict.reasons)


def test_without_a_profile_the_canary_is_compared_with_live(reference: pd.DataFrame) -> None:
    config = config_for(None)
    state = feed(state_for(config), rows(3000, seed=2), rows(3000, seed=3, lang=("de", "en", "fr", "it")))
    assert {(f.baseline, f.role) for f in drift_figures(state)} == {("live", "canary")}
    (check,) = feature_drift_checks(state, config.policy.checks.feature_drift)
    assert check.status == "warn" and "lang" in check.detail and "text_len" not in check.detail
    quality = {c.name: c for c in data_quality_checks(state, config.policy.checks.data_quality)}
    # a quarter of the canary's languages never appeared in live's first rows
    assert quality["unseen_categories"].status == "warn"
    assert quality["unseen_categories"].value == pytest.approx(0.25, abs=0.03)
    assert quality["missing_values"].status == "pass"
    assert quality["out_of_range"].status == "pass"


def test_same_inputs_pass(tmp_path: Path, reference: pd.DataFrame) -> None:
    config = config_for(profile_file(tmp_path, reference))
    state = feed(state_for(config), rows(3000, seed=2), rows(3000, seed=3))
    assert [c.status for c in feature_drift_checks(state, config.policy.checks.feature_drift)] == ["pass", "pass"]
    assert [c.status for c in data_quality_checks(state, config.policy.checks.data_quality)] == ["pass"] * 4


def test_missing_values_and_type_changes_are_flagged(tmp_path: Path, reference: pd.DataFrame) -> None:
    config = config_for(profile_file(tmp_path, reference))
    canary = rows(3000, seed=3).astype({"n_pages": object})
    canary.loc[:599, "text_len"] = None
    canary.loc[:99, "n_pages"] = "many"
    state = feed(state_for(config), rows(3000, seed=2), canary)
    quality = {c.name: c for c in data_quality_checks(state, config.policy.checks.data_quality)}
    assert quality["missing_values"].status == "warn" and "'text_len' 20.0%" in quality["missing_values"].detail
    assert quality["type_changes"].status == "warn" and "'n_pages' " in quality["type_changes"].detail
    assert not any("no-go" in check.detail or "no_go" in check.detail for check in quality.values())


def test_too_few_rows_is_insufficient_data(tmp_path: Path, reference: pd.DataFrame) -> None:
    config = config_for(profile_file(tmp_path, reference))
    state = feed(state_for(config), rows(100, seed=2), rows(100, seed=3))
    checks = feature_drift_checks(state, FeatureDriftCheckSettings())
    assert {c.status for c in checks} == {"insufficient_data"}
    assert all(not c.blocking for c in checks)


@settings(deadline=None, max_examples=150)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=200),
       st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=200),
       st.integers(min_value=1, max_value=20))
def test_column_wasserstein_holds_the_raw_value_with_values_beyond_the_reference(
    reference: list[float], current: list[float], bins: int
) -> None:
    layout = FeatureLayout.learn_columns({"x": np.array(reference)}, bins)
    baseline, observed = FeatureStats(layout), FeatureStats(layout)
    baseline.update_columns(len(reference), {"x": reference})
    observed.update_columns(len(current), {"x": current})
    estimate = column_tests(baseline.columns["x"], observed.columns["x"])["wasserstein"]
    norm = max(float(np.std(reference)), 0.001)
    exact = scipy_wasserstein(reference, current) / norm
    slack = 1e-9 * max(1.0, exact)
    assert estimate.lower - slack <= exact <= estimate.upper + slack


def test_blocking_features_must_be_columns_of_the_profile(tmp_path: Path, reference: pd.DataFrame) -> None:
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError, match="blocking_features names columns the profile does not have: txt_len"):
        config_for(profile_file(tmp_path, reference), feature_drift={"blocking_features": ["txt_len"]})
