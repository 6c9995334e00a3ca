"""Prometheus exposition: a collector that reads the sidecar's typed views when Prometheus scrapes.

Nothing on the hot path touches a prometheus_client object; the counters live in the
state and are read here at scrape time. The attachments (Elasticsearch sink, webhooks)
bring collectors of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.core.ingest import UNROUTED
from monitor.core.verdict import VERDICTS, Verdict
from monitor.sidecar.views import DeploymentView


class SnapshotReader(Protocol):
    """What the collector needs from the sidecar."""

    verdicts: dict[str, Verdict]

    def snapshot(self, name: str) -> DeploymentView: ...
    def unrouted_dead_letters(self) -> dict[str, int]: ...
    def consumer_lag(self) -> dict[tuple[str, str, int], int]: ...


class SidecarCollector(Collector):
    """Builds the contract's metric families (docs/contract.md §4) from snapshots at scrape time."""

    def __init__(self, sidecar: SnapshotReader, deployments: list[str]) -> None:
        self.sidecar = sidecar
        self.deployments = deployments

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "driftgate_events", "Events processed, by role.", labels=["deployment", "role"]
        )
        predictions = CounterMetricFamily(
            "driftgate_predictions", "Predictions processed, by role and class.",
            labels=["deployment", "role", "class"],
        )
        dead = CounterMetricFamily(
            "driftgate_dead_letters", "Messages sent to the dead-letter topic, by reason.",
            labels=["deployment", "reason"],
        )
        divergence = GaugeMetricFamily(
            "driftgate_class_divergence",
            "Canary class distribution against a baseline (js, psi: larger is more drift; chi2_pvalue).",
            labels=["deployment", "metric", "baseline"],
        )
        disagreement = GaugeMetricFamily(
            "driftgate_disagreement_rate", "Share of requests answered by both models where they differ.",
            labels=["deployment"],
        )
        verdict = GaugeMetricFamily(
            "driftgate_verdict", "1 for the current verdict, 0 for the others.", labels=["deployment", "verdict"]
        )
        samples = GaugeMetricFamily(
            "driftgate_comparison_samples", "Predictions in the current canary comparison, by role.",
            labels=["deployment", "role"],
        )
        open_requests = GaugeMetricFamily(
            "driftgate_join_open_requests", "Requests waiting for the other model's answer.",
            labels=["deployment"],
        )
        join_outcomes = CounterMetricFamily(
            "driftgate_join_requests", "Requests leaving the join, by outcome.", labels=["deployment", "outcome"]
        )
        precision = GaugeMetricFamily(
            "driftgate_precision", "Share of right answers among labelled answers of a predicted class.",
            labels=["deployment", "role", "class"],
        )
        precision_bounds = GaugeMetricFamily(
            "driftgate_precision_interval", "Wilson 95% interval of driftgate_precision.",
            labels=["deployment", "role", "class", "bound"],
        )
        accuracy = GaugeMetricFamily(
            "driftgate_accuracy", "Share of right answers among labelled requests, by role.",
            labels=["deployment", "role"],
        )
        feedback = CounterMetricFamily(
            "driftgate_feedback", "Feedback events by what became of them.", labels=["deployment", "outcome"]
        )
        feature_drift = GaugeMetricFamily(
            "driftgate_feature_drift",
            "Drift of a feature or score (scores.<class>) of a role against the reference, or against live for "
            "tests named <test>_vs_live (psi, wasserstein, ks, js: larger is more drift).",
            labels=["deployment", "role", "feature", "test"],
        )
        feature_quality = GaugeMetricFamily(
            "driftgate_feature_quality",
            "Share of a feature's values in the current comparison with an issue (missing_share, "
            "type_change_share, unseen_share, out_of_range_share).",
            labels=["deployment", "role", "feature", "issue"],
        )
        for name in self.deployments:
            view = self.sidecar.snapshot(name)
            for figure in view.features.drift:
                feature_drift.add_metric([name, figure.role, figure.feature, figure.test], figure.value)
            for role, by_feature in view.features.quality.items():
                for feature, issues in by_feature.items():
                    for issue, value in issues.items():
                        if issue.endswith("_share"):
                            feature_quality.add_metric([name, role, feature, issue], value)
            for role, n in view.events.items():
                events.add_metric([name, role], n)
            for role, by_class in view.predictions.items():
                for label, n in by_class.items():
                    predictions.add_metric([name, role, label], n)
            for reason, n in view.dead_letters.items():
                dead.add_metric([name, reason], n)
            comparison = view.comparison
            if comparison is not None:
                for baseline, figures in comparison.divergence.items():
                    divergence.add_metric([name, "js", baseline], figures.js)
                    divergence.add_metric([name, "psi", baseline], figures.psi)
                    divergence.add_metric([name, "chi2_pvalue", baseline], figures.chi2_pvalue)
                if comparison.disagreement_rate is not None:
                    disagreement.add_metric([name], comparison.disagreement_rate)
                for role, side in (("live", comparison.feedback.live), ("canary", comparison.feedback.canary)):
                    if side.accuracy.estimate is not None:
                        accuracy.add_metric([name, role], side.accuracy.estimate)
                    for label, item in side.precision.items():
                        if item.estimate is None:
                            continue
                        precision.add_metric([name, role, label], item.estimate)
                        precision_bounds.add_metric([name, role, label, "lower"], item.lower)
                        precision_bounds.add_metric([name, role, label, "upper"], item.upper)
                samples.add_metric([name, "live"], sum(comparison.live.values()))
                samples.add_metric([name, "canary"], sum(comparison.canary.values()))
            for candidate in VERDICTS:
                verdict.add_metric([name, candidate], 1.0 if candidate == view.verdict else 0.0)
            for outcome in ("matched", "duplicates", "settled_by_spotcheck", "expired", "evicted"):
                feedback.add_metric([name, outcome], getattr(view.feedback, outcome))
            join = view.join
            open_requests.add_metric([name], join.open_requests)
            for outcome in ("paired", "evicted", "expired_live_only", "expired_canary_only", "duplicates"):
                join_outcomes.add_metric([name, outcome], getattr(join, outcome))
        for reason, n in self.sidecar.unrouted_dead_letters().items():
            dead.add_metric([UNROUTED, reason], n)
        lag = GaugeMetricFamily(
            "driftgate_consumer_lag", "Records of an input partition not processed yet (as of the last poll).",
            labels=["deployment", "role", "partition"],
        )
        for (deployment, role, partition), n in sorted(self.sidecar.consumer_lag().items()):
            lag.add_metric([deployment, role, str(partition)], n)
        yield from (
            events, predictions, dead, divergence, disagreement, verdict, samples, open_requests, join_outcomes,
            precision, precision_bounds, accuracy, feedback, lag, feature_drift, feature_quality,
        )
