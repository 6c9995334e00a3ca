"""The verdict: a policy of checks turned into go, no_go, pending or inconclusive.

- any blocking check fails                      -> no_go
- a blocking check lacks data, window still open -> pending (never go)
- a blocking check lacks data, window over       -> inconclusive
- otherwise                                      -> go
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from monitor.config import DeploymentSettings
from monitor.core import checks, feature_checks
from monitor.core.checks import CheckResult
from monitor.core.state.deployment import DeploymentState

VerdictName = Literal["go", "no_go", "pending", "inconclusive"]
VERDICTS: tuple[VerdictName, ...] = ("go", "no_go", "inconclusive", "pending")


@dataclass(frozen=True)
class Verdict:
    """The verdict object of the contract (API, verdicts topic, webhooks)."""

    deployment: str
    verdict: VerdictName
    reasons: list[str]
    checks: list[CheckResult]
    samples: dict[str, int]
    live_version: str | None
    canary_version: str | None
    evaluated_at: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "checks": [check.to_dict() for check in self.checks],
            "samples": dict(self.samples),
            "live_version": self.live_version,
            "canary_version": self.canary_version,
            "evaluated_at": self.evaluated_at,
        }

    def changed_from(self, other: Verdict | None) -> bool:
        """Whether this verdict is news compared with ``other`` (verdict or canary version moved)."""
        return other is None or (self.verdict, self.canary_version) != (other.verdict, other.canary_version)


def iso_time(ts: float) -> str | None:
    """Epoch seconds as an RFC 3339 UTC string (None for the zero time)."""
    if ts <= 0:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_checks(settings: DeploymentSettings, state: DeploymentState) -> list[CheckResult]:
    """Every check of the deployment's policy on its current comparison."""
    comparison = state.current
    assert comparison is not None
    policy = settings.policy
    classes = state.classes
    evidence = comparison.evidence
    if evidence is not None:
        evidence.flush()
        results = [
            checks.sequential_class_divergence(
                comparison, evidence, policy.min_samples, policy.checks.class_divergence
            ),
            checks.collapse(classes, comparison, policy.min_samples, policy.checks.collapse),
            checks.sequential_disagreement(evidence, policy.checks.disagreement),
            checks.sequential_accuracy(evidence, comparison.outcomes, policy.checks.accuracy),
        ]
    else:
        results = [
            checks.class_divergence(classes, comparison, policy.min_samples, policy.checks.class_divergence),
            checks.collapse(classes, comparison, policy.min_samples, policy.checks.collapse),
            checks.disagreement(comparison, policy.checks.disagreement),
            checks.accuracy(comparison.outcomes, policy.checks.accuracy),
        ]
    results.append(checks.class_precision(classes, comparison.outcomes, policy.checks.class_precision))
    reference = reference_classes(settings, state)
    if reference:
        results.insert(
            1,
            checks.reference_divergence(
                classes, comparison, reference, policy.min_samples, policy.checks.reference_divergence
            ),
        )
    if has_features(state):
        results.extend(feature_checks.feature_drift_checks(state, policy.checks.feature_drift))
        results.extend(feature_checks.data_quality_checks(state, policy.checks.data_quality))
    if policy.feedback_decides:
        results = _let_feedback_decide(results)
    return results


def reference_classes(settings: DeploymentSettings, state: DeploymentState) -> dict[str, float] | None:
    """The reference's class shares: the config's, else the reference profile's, when there is one."""
    return settings.reference.class_distribution or state.reference_classes


def has_features(state: DeploymentState) -> bool:
    """Whether the deployment's predictions carry features or scores, or it has a reference profile."""
    intake = state.intake
    return intake.layout is not None or intake.held_rows > 0 or state.reference_features is not None


# Checks that need labelled requests: without require_feedback they never hold a verdict back.
FEEDBACK_CHECKS = ("accuracy", "class_precision")
# Checks of the class mix that labelled outcomes may overrule: a mix can move for the better.
_MIX_CHECKS = ("class_divergence", "reference_divergence")


def _let_feedback_decide(results: list[CheckResult]) -> list[CheckResult]:
    """When the accuracy check passes, a moved class mix warns instead of failing."""
    if not any(r.name == "accuracy" and r.status == "pass" for r in results):
        return results
    return [
        checks.only_warns(r, "labelled outcomes show the canary is not less accurate, so this only warns")
        if r.name in _MIX_CHECKS and r.status in ("fail", "insufficient_data")
        else r
        for r in results
    ]


def evaluate(settings: DeploymentSettings, state: DeploymentState) -> Verdict:
    """The deployment's verdict now (pure: the same state always gives the same verdict)."""
    comparison = state.current
    state.flush_features()
    samples = {"live": 0, "canary": 0, "feedback": 0, "spotcheck_labels": 0}
    evaluated_at = iso_time(state.watermark)
    if comparison is None:
        return Verdict(
            settings.name, "pending", ["no canary predictions yet"], [], samples,
            None, None, evaluated_at,
        )
    samples["live"] = comparison.live.total
    samples["canary"] = comparison.canary.total
    samples["feedback"] = comparison.outcomes.live_labelled.total
    samples["spotcheck_labels"] = comparison.outcomes.spotcheck
    results = run_checks(settings, state)
    verdict, reasons = decide(settings, results, comparison.canary.total, state.watermark - comparison.started_at)
    return Verdict(
        settings.name, verdict, reasons, results, samples,
        comparison.live_version(), comparison.canary_version or None, evaluated_at,
    )


def decide(
    settings: DeploymentSettings, results: list[CheckResult], canary_samples: int, elapsed_s: float
) -> tuple[VerdictName, list[str]]:
    """Map check results to a verdict and the reasons for it."""
    blocking = [r for r in results if r.blocking]
    failed = [r.detail for r in blocking if r.status == "fail"]
    if failed:
        return "no_go", failed
    warnings = [f"warning: {r.detail}" for r in results if r.status in ("warn", "fail")]
    # Several checks waiting for the same samples say the same sentence: it is given once.
    waiting = list(dict.fromkeys(
        r.detail
        for r in blocking
        if r.status == "insufficient_data" and (r.name not in FEEDBACK_CHECKS or settings.policy.require_feedback)
    ))
    if waiting:
        policy = settings.policy
        over_samples = policy.max_samples is not None and canary_samples >= policy.max_samples
        over_time = policy.max_duration_s is not None and elapsed_s >= policy.max_duration_s
        if over_samples or over_time:
            limit = (
                f"{canary_samples} canary predictions (max_samples {policy.max_samples})"
                if over_samples
                else f"{elapsed_s:.0f} s (max_duration_s {policy.max_duration_s:.0f})"
            )
            return "inconclusive", [f"decision window over after {limit} without a decision", *waiting]
        return "pending", [*waiting, *warnings]
    if not blocking:
        return "pending", ["the policy has no blocking check, so nothing can say go", *warnings]
    return "go", ["every blocking check passes", *warnings]
