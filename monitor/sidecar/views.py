"""Typed views of a deployment's state: what the HTTP API serves as JSON and /metrics reads.

A view is taken under the sidecar's lock and is a copy: readers use it without the lock,
and nothing they do reaches the state. The field names and their order are the JSON of
``GET /v1/deployments/{name}/metrics`` (docs/contract.md §3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from monitor.config import DeploymentSettings
from monitor.core.checks import DivergenceFigures, live_divergence, precision_figures, reference_divergence_figures
from monitor.core.feature_checks import drift_figures, quality_figures
from monitor.core.state.codec import encode
from monitor.core.state.counts import ClassCounts
from monitor.core.state.deployment import Comparison, DeploymentState
from monitor.core.state.windows import Window
from monitor.core.verdict import iso_time, reference_classes


class Divergence(msgspec.Struct):
    """The canary's class mix against a baseline (js, psi: larger is more drift)."""

    js: float
    psi: float
    chi2_pvalue: float


class Proportion(msgspec.Struct):
    """A share of right answers with its Wilson interval (estimate None before any label)."""

    estimate: float | None
    lower: float
    upper: float
    correct: int
    labelled: int


class RoleFeedback(msgspec.Struct):
    accuracy: Proportion
    precision: dict[str, Proportion]


class FeedbackFigures(msgspec.Struct):
    """Accuracy and precision of both roles on labelled requests of the current comparison."""

    live: RoleFeedback
    canary: RoleFeedback
    labelled_pairs: int
    paired: dict[str, int]
    spotcheck_share: float
    awaiting_spotcheck: int


class ComparisonView(msgspec.Struct):
    """The current canary comparison."""

    canary_version: str | None
    live_version: str | None
    started_at: str | None
    live: dict[str, int]
    canary: dict[str, int]
    pairs: int
    disagreements: int
    disagreement_rate: float | None
    divergence: dict[str, Divergence]  # baseline ("live", "reference") -> figures
    feedback: FeedbackFigures


class JoinView(msgspec.Struct):
    """What became of requests waiting for the other model's answer."""

    open_requests: int
    paired: int
    evicted: int
    expired_live_only: int
    expired_canary_only: int
    duplicates: int


class FeedbackView(msgspec.Struct):
    """What became of feedback events."""

    awaiting_feedback: int
    early_feedback: int
    spotcheck_labels: int
    matched: int
    duplicates: int
    settled_by_spotcheck: int
    expired: int
    evicted: int


class WindowView(msgspec.Struct):
    """Counts of one tumbling event-time window."""

    start: float
    live: dict[str, int]
    canary: dict[str, int]
    live_versions: dict[str, int]
    pairs: int
    disagreements: int


class SpotcheckView(msgspec.Struct):
    picked: int
    offered: int
    waiting: int


class DriftFigure(msgspec.Struct):
    """One drift statistic of one column of one role (``test`` as in driftgate_feature_drift)."""

    feature: str
    role: str
    baseline: str
    test: str
    value: float
    error_bound: float
    rows: int
    baseline_rows: int


class FeaturesView(msgspec.Struct):
    """Feature, score and data-quality drift of the current comparison."""

    baseline: str
    layout: str
    columns: list[str]
    rows: dict[str, int]
    held: int
    unbinned: int
    sample_every: int
    drift: list[DriftFigure]
    quality: dict[str, dict[str, dict[str, float]]]  # role -> column -> issue -> share


class DeploymentView(msgspec.Struct):
    """Everything measured for one deployment, as of one instant."""

    deployment: str
    classes: list[str]
    events: dict[str, int]
    predictions: dict[str, dict[str, int]]  # role -> class -> count, over every version
    dead_letters: dict[str, int]
    comparison: ComparisonView | None
    join: JoinView
    feedback: FeedbackView
    windows: list[WindowView]
    late_window_events: int
    spotcheck: SpotcheckView
    watermark: str | None
    features: FeaturesView
    verdict: str


def deployment_view(
    deployment: DeploymentSettings, state: DeploymentState, dead_letters: Mapping[str, int], verdict: str
) -> DeploymentView:
    """The view of one deployment's state; call it under the lock that guards the state."""
    classes = list(state.classes)
    comparison = state.current
    return DeploymentView(
        deployment=deployment.name,
        classes=classes,
        events=dict(state.events),
        predictions={role: _sum_versions(by_version) for role, by_version in state.totals.items()},
        dead_letters=dict(dead_letters),
        comparison=None if comparison is None else comparison_view(deployment, state, comparison, classes),
        join=JoinView(open_requests=len(state.join), **encode(state.join.stats)),
        feedback=FeedbackView(
            awaiting_feedback=len(state.feedback.answered),
            early_feedback=len(state.feedback.early),
            spotcheck_labels=state.spotcheck_labels,
            **encode(state.feedback.stats),
        ),
        windows=[window_view(window) for window in state.windows.recent()],
        late_window_events=state.windows.late,
        spotcheck=SpotcheckView(
            picked=state.sampler.picked, offered=state.sampler.offered, waiting=len(state.review.cases)
        ),
        watermark=iso_time(state.watermark),
        features=features_view(state),
        verdict=verdict,
    )


def window_view(window: Window) -> WindowView:
    return WindowView(
        start=window.start, live=window.live.to_dict(), canary=window.canary.to_dict(),
        live_versions=window.live_versions.to_dict(), pairs=window.pairs, disagreements=window.disagreements,
    )


def comparison_view(
    deployment: DeploymentSettings, state: DeploymentState, comparison: Comparison, classes: Sequence[str]
) -> ComparisonView:
    pairs = comparison.pairs
    divergence = {"live": _divergence(live_divergence(classes, comparison))}
    reference = reference_classes(deployment, state)
    if reference:
        divergence["reference"] = _divergence(
            reference_divergence_figures(classes, comparison.canary.vector(classes), reference)
        )
    return ComparisonView(
        canary_version=comparison.canary_version or None,
        live_version=comparison.live_version(),
        started_at=iso_time(comparison.started_at),
        live=comparison.live.to_dict(),
        canary=comparison.canary.to_dict(),
        pairs=pairs,
        disagreements=comparison.disagreements,
        disagreement_rate=comparison.disagreements / pairs if pairs else None,
        divergence=divergence,
        feedback=msgspec.convert(precision_figures(classes, comparison.outcomes), FeedbackFigures),
    )


def features_view(state: DeploymentState) -> FeaturesView:
    """Feature, score and data-quality drift of the current comparison (see monitor.core.feature_checks)."""
    state.flush_features()  # rows waiting to be binned count in what is shown
    intake = state.intake
    comparison = state.current
    sides = comparison.features if comparison is not None else {}
    return FeaturesView(
        baseline="reference" if state.reference_features is not None else "live",
        layout="profile" if intake.from_profile else ("learned" if intake.layout is not None else "learning"),
        columns=sorted(intake.layout.columns) if intake.layout is not None else [],
        rows={role: stats.rows for role, stats in sides.items()},
        held=intake.held_rows,
        unbinned=intake.unbinned,
        sample_every=intake.settings.sample_every,
        drift=[msgspec.convert(figure.to_dict(), DriftFigure) for figure in drift_figures(state)],
        quality={role: quality_figures(stats) for role, stats in sides.items()},
    )


def as_json(view: msgspec.Struct) -> bytes:
    """A view as the API's JSON (non-finite figures become null)."""
    return msgspec.json.encode(view)


def _sum_versions(by_version: Mapping[str, ClassCounts]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in by_version.values():
        for label, n in counts.counts.items():
            total[label] = total.get(label, 0) + n
    return total


def _divergence(figures: DivergenceFigures) -> Divergence:
    return Divergence(js=figures.js, psi=figures.psi, chi2_pvalue=figures.chi2_pvalue)
