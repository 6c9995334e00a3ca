"""Feature, score and data-quality drift of the current comparison: figures for metrics, and checks.

Sides compared, each per column (feature or ``scores.<class>``):

- with a reference profile: live against the reference, canary against the reference
  (tests ``psi``, ``wasserstein``, ``ks`` for numeric columns; ``psi``, ``js`` for
  categorical ones), and canary against live (the same tests, named ``<test>_vs_live``);
- without one: canary against live only, on edges learned from the first live rows.

Every figure is a drift statistic (larger is more drift, 0 none). KS and Wasserstein
come from bins and carry the bound on their distance to the raw-data value
(:mod:`monitor.core.stats.drift`). Pure: numbers in, numbers and sentences out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.config import DataQualityCheckSettings, FeatureDriftCheckSettings
from monitor.core.checks import CheckResult, Status
from monitor.core.state.deployment import DeploymentState
from monitor.core.state.features import CategoricalColumn, Column, FeatureStats, NumericColumn
from monitor.core.stats.drift import (
    Estimate,
    bin_widths,
    js_distance,
    ks_statistic,
    psi,
    tail_contribution,
    wasserstein_distance,
    wasserstein_norm,
)
from monitor.core.stats.sequential.base import quoted

LIVE_SUFFIX = "_vs_live"


@dataclass(frozen=True)
class FeatureDrift:
    """One drift statistic of one column of one role against a baseline."""

    feature: str
    role: str
    baseline: str
    test: str
    value: float
    error_bound: float
    rows: int
    baseline_rows: int

    @property
    def metric_test(self) -> str:
        """The ``test`` label of driftgate_feature_drift: canary against live is ``<test>_vs_live``."""
        return self.test + LIVE_SUFFIX if self.baseline == "live" else self.test

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "role": self.role, "baseline": self.baseline, "test": self.metric_test,
                "value": self.value, "error_bound": self.error_bound, "rows": self.rows,
                "baseline_rows": self.baseline_rows}


def column_tests(baseline: Column, current: Column) -> dict[str, Estimate]:
    """Every statistic of a column of ``current`` against the same column of ``baseline``."""
    if isinstance(baseline, NumericColumn) and isinstance(current, NumericColumn):
        low = min(baseline.summary.min, current.summary.min)
        high = max(baseline.summary.max, current.summary.max)
        widths = bin_widths(baseline.spec.edge_array, low, high)
        exact_psi = psi(baseline.counts, current.counts)
        return {
            "psi": Estimate(exact_psi, exact_psi, exact_psi),
            "wasserstein": wasserstein_distance(
                baseline.counts, current.counts, widths, wasserstein_norm(baseline.summary.std),
                _tails(baseline, current),
            ),
            "ks": ks_statistic(baseline.counts, current.counts),
        }
    assert isinstance(baseline, CategoricalColumn) and isinstance(current, CategoricalColumn)
    keys = sorted(set(baseline.counts) | set(current.counts))
    reference = np.array([baseline.counts.get(k, 0) for k in keys], dtype=np.float64)
    observed = np.array([current.counts.get(k, 0) for k in keys], dtype=np.float64)
    exact_psi, exact_js = psi(reference, observed), js_distance(reference, observed)
    return {"psi": Estimate(exact_psi, exact_psi, exact_psi), "js": Estimate(exact_js, exact_js, exact_js)}


def _tails(baseline: NumericColumn, current: NumericColumn) -> tuple[float | None, float | None]:
    """The exact Wasserstein contributions of the outer bins where one side has nothing off the edge."""
    edges = baseline.spec.edges
    first: float | None = None
    if baseline.first_bin_at_edge():
        first = tail_contribution(edges[0], int(current.counts[0]), current.first_bin_total, current.observed, True)
    elif current.first_bin_at_edge():
        first = tail_contribution(edges[0], int(baseline.counts[0]), baseline.first_bin_total, baseline.observed, True)
    last: float | None = None
    if baseline.counts[-1] == 0:
        last = tail_contribution(edges[-1], int(current.counts[-1]), current.last_bin_total, current.observed, False)
    elif current.counts[-1] == 0:
        last = tail_contribution(edges[-1], int(baseline.counts[-1]), baseline.last_bin_total, baseline.observed, False)
    return first, last


def _pairs(state: DeploymentState) -> Iterator[tuple[str, str, FeatureStats, FeatureStats]]:
    """(role, baseline, baseline stats, role's stats) for every comparison of sides there is data for."""
    comparison = state.current
    if comparison is None:
        return
    live, canary = comparison.features.get("live"), comparison.features.get("canary")
    reference = state.reference_features
    if reference is not None:
        if live is not None:
            yield "live", "reference", reference, live
        if canary is not None:
            yield "canary", "reference", reference, canary
    if live is not None and canary is not None:
        yield "canary", "live", live, canary


def drift_figures(state: DeploymentState) -> list[FeatureDrift]:
    """Every drift statistic of the current comparison, for the snapshot and /metrics."""
    state.flush_features()
    figures: list[FeatureDrift] = []
    for role, baseline_name, baseline, current in _pairs(state):
        for name, column in current.columns.items():
            base = baseline.columns.get(name)
            if base is None or column.observed == 0 or base.observed == 0:
                continue
            for test, estimate in column_tests(base, column).items():
                figures.append(FeatureDrift(name, role, baseline_name, test, estimate.value, estimate.error_bound,
                                            column.observed, base.observed))
    return figures


def quality_figures(stats: FeatureStats) -> dict[str, dict[str, float]]:
    """Per column, the shares of missing values, type changes, unseen categories and out-of-range values."""
    figures: dict[str, dict[str, float]] = {}
    for name, column in stats.columns.items():
        if isinstance(column, NumericColumn):
            missing, seen = column.summary.missing, column.observed
            extra = {"out_of_range_share": column.out_of_range / seen if seen else 0.0}
        else:
            missing, seen = column.missing, column.observed
            extra = {"unseen_share": column.unseen / seen if seen else 0.0,
                     "pooled": float(column.pooled)}
        rows = missing + seen + column.type_changes
        figures[name] = {
            "missing_share": missing / rows if rows else 0.0,
            "type_change_share": column.type_changes / rows if rows else 0.0,
            **extra,
        }
    return figures


def _failed_status(blocking: bool) -> Status:
    return "fail" if blocking else "warn"


def feature_drift_checks(state: DeploymentState, settings: FeatureDriftCheckSettings) -> list[CheckResult]:
    """``feature_drift``: the canary against the reference (or live, without a profile);
    ``feature_drift_vs_live``: the canary against live, when there is a profile."""
    baselines = ["reference", "live"] if state.reference_features is not None else ["live"]
    figures = drift_figures(state)
    results = []
    for baseline in baselines:
        name = "feature_drift" if baseline == baselines[0] else "feature_drift_vs_live"
        judged = [
            f for f in figures
            if f.role == "canary" and f.baseline == baseline and f.test == _test_of(f, state, settings)
        ]
        results.append(_judge_drift(name, baseline, judged, state, settings))
    return results


def _is_numeric(figure: FeatureDrift, state: DeploymentState) -> bool:
    layout = state.intake.layout
    spec = layout.columns.get(figure.feature) if layout is not None else None
    return spec is not None and spec.kind == "numeric"


def _test_of(figure: FeatureDrift, state: DeploymentState, settings: FeatureDriftCheckSettings) -> str:
    return settings.numeric_test if _is_numeric(figure, state) else settings.categorical_test


def _judge_drift(
    name: str, baseline: str, judged: list[FeatureDrift], state: DeploymentState, settings: FeatureDriftCheckSettings
) -> CheckResult:
    base_words = "the reference" if baseline == "reference" else "live"
    blocking_any = settings.blocking or bool(settings.blocking_features)
    threshold = settings.numeric_threshold
    if state.intake.layout is None:
        held = len(state.intake.held["live"])
        return CheckResult(
            name, "insufficient_data", None, threshold,
            f"learning the feature bins from the first {state.intake.settings.learn_from} live rows ({held} so far)",
            blocking_any,
        )
    ready = [f for f in judged if min(f.rows, f.baseline_rows) >= settings.min_samples]
    if not ready:
        rows = max((f.rows for f in judged), default=0)
        return CheckResult(
            name, "insufficient_data", None, threshold,
            f"{rows} canary rows with features; {settings.min_samples} on each side are needed", blocking_any,
        )
    drifted = []
    for figure in ready:
        limit = settings.numeric_threshold if _is_numeric(figure, state) else settings.categorical_threshold
        if figure.value > limit:
            drifted.append((figure.value / limit, figure, limit))
    worst = max(ready, key=lambda f: f.value)
    if not drifted:
        return CheckResult(
            name, "pass", worst.value, threshold,
            f"canary inputs match {base_words} on {len(ready)} columns; largest: {_words(worst)}",
            settings.blocking,
        )
    drifted.sort(key=lambda item: -item[0])
    blocking = settings.blocking or any(f.feature in settings.blocking_features for _, f, _ in drifted)
    listed = "; ".join(f"{_words(f)} > {limit:.2f}" for _, f, limit in drifted[:5])
    more = f" and {len(drifted) - 5} more" if len(drifted) > 5 else ""
    top = drifted[0][1]
    return CheckResult(
        name, _failed_status(blocking), top.value, drifted[0][2],
        f"canary inputs drifted from {base_words} on {len(drifted)} of {len(ready)} columns: {listed}{more}",
        blocking,
    )


def _words(figure: FeatureDrift) -> str:
    bound = f" ±{figure.error_bound:.3f}" if figure.error_bound > 0 else ""
    return f"{quoted(figure.feature)} {figure.test} {figure.value:.3f}{bound}"


QUALITY_CHECKS = (
    ("missing_values", "missing_share", "max_missing_increase", "missing values"),
    ("type_changes", "type_change_share", "max_type_change_share", "values of another type"),
    ("unseen_categories", "unseen_share", "max_unseen_share", "categories the baseline never had"),
    ("out_of_range", "out_of_range_share", "max_out_of_range_share", "values outside the baseline's range"),
)


def data_quality_checks(state: DeploymentState, settings: DataQualityCheckSettings) -> list[CheckResult]:
    """One check per kind of data-quality finding, on the canary's inputs against its baseline."""
    state.flush_features()
    comparison = state.current
    canary = comparison.features.get("canary") if comparison is not None else None
    baseline = state.reference_features or (comparison.features.get("live") if comparison is not None else None)
    base_words = "the reference" if state.reference_features is not None else "live"
    results = []
    for name, figure, key, words in QUALITY_CHECKS:
        limit = float(getattr(settings, key))
        if canary is None or canary.rows < settings.min_samples:
            rows = canary.rows if canary is not None else 0
            results.append(CheckResult(
                name, "insufficient_data", None, limit,
                f"{rows} canary rows with features; {settings.min_samples} are needed", settings.blocking,
            ))
            continue
        shares = quality_figures(canary)
        base_shares = quality_figures(baseline) if baseline is not None else {}
        found = []
        for column, values in shares.items():
            if figure not in values:
                continue
            value = values[figure]
            if figure == "missing_share":
                value -= base_shares.get(column, {}).get(figure, 0.0)
            found.append((value, column))
        value, column = max(found, default=(0.0, ""))
        over = sorted((item for item in found if item[0] > limit), reverse=True)
        if over:
            listed = ", ".join(f"{quoted(c)} {_pct(v)}" for v, c in over[:5])
            increase = " more than in " + base_words if figure == "missing_share" else ""
            results.append(CheckResult(
                name, _failed_status(settings.blocking), value, limit,
                f"canary inputs have {words}{increase}: {listed} (limit {_pct(limit)})", settings.blocking,
            ))
        else:
            where = f"; most in {quoted(column)} ({_pct(value)})" if column else ""
            results.append(CheckResult(
                name, "pass", value, limit, f"canary {words} within {_pct(limit)}{where}", settings.blocking,
            ))
    return results


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"
