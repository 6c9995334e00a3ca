"""The checks a verdict is made of: each turns a comparison into pass, fail, warn or insufficient_data.

Every check returns a :class:`CheckResult` with its value, its threshold and a
sentence a person understands. Checks are pure functions of counts and settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from monitor.config import (
    AccuracyCheckSettings,
    ClassPrecisionCheckSettings,
    CollapseCheckSettings,
    DisagreementCheckSettings,
    DivergenceCheckSettings,
    ReferenceCheckSettings,
)
from monitor.core.evidence import SequentialEvidence
from monitor.core.state.deployment import Comparison
from monitor.core.state.outcomes import Outcomes
from monitor.core.stats.divergence import (
    chi2_goodness_of_fit,
    chi2_homogeneity,
    entropy_bits,
    js_distance,
    largest_share,
    psi,
    shares,
)
from monitor.core.stats.proportion import mcnemar_exact, wilson_interval
from monitor.core.stats.sequential.base import ending, quoted

Status = Literal["pass", "fail", "warn", "insufficient_data"]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    name: str
    status: Status
    value: float | None
    threshold: float | None
    detail: str
    blocking: bool
    # the anytime-valid evidence (e-values, always-valid p-values, confidence sequence), if sequential
    evidence: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "status": self.status,
            "value": self.value,
            "threshold": self.threshold,
            "detail": self.detail,
            "blocking": self.blocking,
        }
        if self.evidence is not None:
            data["evidence"] = self.evidence
        return data


def _failed(blocking: bool) -> Status:
    """A failed check fails the verdict only when it blocks; otherwise it warns."""
    return "fail" if blocking else "warn"


def only_warns(result: CheckResult, why: str) -> CheckResult:
    """``result`` turned into a warning that does not block, its sentence saying ``why`` instead of "no-go"."""
    detail = result.detail.removesuffix(f": {ending('no_go')}.")
    return replace(result, status="warn", blocking=False, detail=f"{detail}; {why}")


def _pct(share: float) -> str:
    return f"{share * 100:.0f}%"


def _largest_gap(classes: Sequence[str], canary: Sequence[float], baseline: Sequence[float]) -> str:
    """A phrase naming the class whose share moved most, e.g. "'invoice' 92% vs 50%"."""
    gaps = [abs(c - b) for c, b in zip(canary, baseline, strict=True)]
    i = max(range(len(gaps)), key=gaps.__getitem__)
    return f"{quoted(classes[i])} {_pct(canary[i])} vs {_pct(baseline[i])}"


@dataclass(frozen=True)
class DivergenceFigures:
    """Descriptive divergences of canary from a baseline, for metrics and dashboards."""

    js: float
    psi: float
    chi2_pvalue: float


def live_divergence(classes: Sequence[str], comparison: Comparison) -> DivergenceFigures:
    """JS distance, PSI and chi-square p-value of canary against live in a comparison."""
    live = comparison.live.vector(classes)
    canary = comparison.canary.vector(classes)
    return DivergenceFigures(
        js=js_distance(canary, live),
        psi=psi(live, canary),
        chi2_pvalue=chi2_homogeneity(canary, live).p_value,
    )


def reference_divergence_figures(
    classes: Sequence[str], counts: Sequence[int], reference: dict[str, float]
) -> DivergenceFigures:
    """JS distance, PSI and goodness-of-fit p-value of counts against reference shares."""
    expected = [reference.get(label, 0.0) for label in classes]
    total = sum(expected)
    expected_counts = [share / total * 1e6 for share in expected] if total > 0 else expected
    return DivergenceFigures(
        js=js_distance(counts, expected_counts),
        psi=psi(expected_counts, counts),
        chi2_pvalue=chi2_goodness_of_fit(counts, expected).p_value,
    )


def class_divergence(
    classes: Sequence[str], comparison: Comparison, min_samples: int, settings: DivergenceCheckSettings
) -> CheckResult:
    """Canary's class distribution against live's on the same period.

    Fails when the difference is both large (JS distance over the threshold) and
    unlikely to be chance (chi-square p-value under its level). A large but not yet
    significant difference waits for more data rather than passing.
    """
    name, threshold = "class_divergence", settings.js_threshold
    n_live, n_canary = comparison.live.total, comparison.canary.total
    if min(n_live, n_canary) < min_samples:
        return CheckResult(
            name, "insufficient_data", None, threshold,
            f"{n_canary} canary and {n_live} live predictions; {min_samples} of each are needed",
            settings.blocking,
        )
    figures = live_divergence(classes, comparison)
    gap = _largest_gap(
        classes, shares(comparison.canary.vector(classes)).tolist(), shares(comparison.live.vector(classes)).tolist()
    )
    return _judge_divergence(name, "live", figures, gap, threshold, settings.p_value, settings.blocking)


def _judge_divergence(
    name: str, baseline: str, figures: DivergenceFigures, gap: str, threshold: float, p_value: float, blocking: bool
) -> CheckResult:
    """Fail when the divergence is large and beyond chance; wait when large but not yet; else pass."""
    if figures.js > threshold and figures.chi2_pvalue < p_value:
        return CheckResult(
            name, _failed(blocking), figures.js, threshold,
            f"canary class distribution differs from {baseline}: JS distance {figures.js:.3f} > {threshold:.3f} "
            f"(chi-square p = {figures.chi2_pvalue:.2g}, PSI {figures.psi:.3f}; {gap})",
            blocking,
        )
    if figures.js > threshold:
        return CheckResult(
            name, "insufficient_data", figures.js, threshold,
            f"canary class distribution may differ from {baseline} (JS distance {figures.js:.3f}, {gap}) "
            f"but not yet beyond chance (p = {figures.chi2_pvalue:.2g}); waiting for more data",
            blocking,
        )
    return CheckResult(
        name, "pass", figures.js, threshold,
        f"canary class distribution matches {baseline}: JS distance {figures.js:.3f} <= {threshold:.3f}",
        blocking,
    )


def reference_divergence(
    classes: Sequence[str],
    comparison: Comparison,
    reference: dict[str, float],
    min_samples: int,
    settings: ReferenceCheckSettings,
) -> CheckResult:
    """Canary's class distribution against the reference (test set) distribution."""
    name, threshold = "reference_divergence", settings.js_threshold
    n_canary = comparison.canary.total
    if n_canary < min_samples:
        return CheckResult(
            name, "insufficient_data", None, threshold,
            f"{n_canary} canary predictions; {min_samples} are needed", settings.blocking,
        )
    counts = comparison.canary.vector(classes)
    figures = reference_divergence_figures(classes, counts, reference)
    expected = [reference.get(label, 0.0) for label in classes]
    total = sum(expected)
    if total <= 0:
        return CheckResult(
            name, _failed(settings.blocking), 1.0, threshold,
            "the reference distribution names none of the classes the canary answers "
            f"({', '.join(quoted(label) for label in classes[:10])}); check reference.class_distribution",
            settings.blocking,
        )
    gap = _largest_gap(classes, shares(counts).tolist(), [e / total for e in expected])
    return _judge_divergence(name, "the reference", figures, gap, threshold, settings.p_value, settings.blocking)


def collapse(
    classes: Sequence[str], comparison: Comparison, min_samples: int, settings: CollapseCheckSettings
) -> CheckResult:
    """Whether one class has taken the canary over, or its answers lost their variety."""
    name, threshold = "collapse", settings.max_class_share
    n_live, n_canary = comparison.live.total, comparison.canary.total
    if min(n_live, n_canary) < min_samples:
        return CheckResult(
            name, "insufficient_data", None, threshold,
            f"{n_canary} canary and {n_live} live predictions; {min_samples} of each are needed",
            settings.blocking,
        )
    canary = comparison.canary.vector(classes)
    live = comparison.live.vector(classes)
    top, canary_top_share = largest_share(canary)
    live_top_share = float(shares(live)[top])
    live_entropy = entropy_bits(live)
    entropy_ratio = entropy_bits(canary) / live_entropy if live_entropy > 0 else 1.0
    label = classes[top]
    if canary_top_share > threshold and live_top_share <= threshold:
        return CheckResult(
            name, _failed(settings.blocking), canary_top_share, threshold,
            f"canary collapsed onto {quoted(label)}: {_pct(canary_top_share)} of its answers "
            f"(live: {_pct(live_top_share)}), over the limit of {_pct(threshold)}",
            settings.blocking,
        )
    if entropy_ratio < settings.min_entropy_ratio:
        return CheckResult(
            name, _failed(settings.blocking), canary_top_share, threshold,
            f"canary's answers lost their variety: entropy {entropy_ratio:.2f} of live's "
            f"(limit {settings.min_entropy_ratio:.2f}); largest class {quoted(label)} at {_pct(canary_top_share)}",
            settings.blocking,
        )
    return CheckResult(
        name, "pass", canary_top_share, threshold,
        f"no collapse: largest canary class {quoted(label)} at {_pct(canary_top_share)}, "
        f"entropy {entropy_ratio:.2f} of live's",
        settings.blocking,
    )


def disagreement(comparison: Comparison, settings: DisagreementCheckSettings) -> CheckResult:
    """How often the two models answer the same request differently."""
    name, threshold = "disagreement", settings.max_rate
    pairs = comparison.pairs
    if pairs < settings.min_pairs:
        return CheckResult(
            name, "insufficient_data", None, threshold,
            f"{pairs} requests answered by both models; {settings.min_pairs} are needed",
            settings.blocking,
        )
    rate = comparison.disagreements / pairs
    if rate > threshold:
        return CheckResult(
            name, _failed(settings.blocking), rate, threshold,
            f"the models disagree on {_pct(rate)} of {pairs} shared requests (limit {_pct(threshold)}); "
            "worth a human look at the disagreements",
            settings.blocking,
        )
    return CheckResult(
        name, "pass", rate, threshold,
        f"the models disagree on {_pct(rate)} of {pairs} shared requests", settings.blocking,
    )


@dataclass(frozen=True)
class Precision:
    """A proportion of right answers with its Wilson interval."""

    correct: int
    labelled: int
    lower: float
    upper: float

    @property
    def estimate(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    def to_dict(self) -> dict[str, Any]:
        return {"estimate": self.estimate, "lower": self.lower, "upper": self.upper,
                "correct": self.correct, "labelled": self.labelled}


def _precision(correct: int, labelled: int, confidence: float) -> Precision:
    lower, upper = wilson_interval(correct, labelled, confidence)
    return Precision(correct, labelled, lower, upper)


def precision_figures(classes: Sequence[str], outcomes: Outcomes, confidence: float = 0.95) -> dict[str, Any]:
    """Per role: accuracy over labelled answers and precision per predicted class, with intervals."""
    figures: dict[str, Any] = {}
    for role, labelled, correct in (
        ("live", outcomes.live_labelled, outcomes.live_correct),
        ("canary", outcomes.canary_labelled, outcomes.canary_correct),
    ):
        figures[role] = {
            "accuracy": _precision(correct.total, labelled.total, confidence).to_dict(),
            "precision": {
                label: _precision(correct.get(label), labelled.get(label), confidence).to_dict()
                for label in classes
            },
        }
    canary_scored = outcomes.canary_labelled.total
    figures["labelled_pairs"] = outcomes.labelled_pairs
    figures["paired"] = dict(outcomes.paired)
    figures["spotcheck_share"] = outcomes.spotcheck / canary_scored if canary_scored else 0.0
    figures["awaiting_spotcheck"] = outcomes.unresolved
    return figures


def accuracy(outcomes: Outcomes, settings: AccuracyCheckSettings) -> CheckResult:
    """Canary against live on the same labelled requests: McNemar's exact test and a margin."""
    name, margin = "accuracy", settings.margin
    n = outcomes.labelled_pairs
    if n < settings.min_labels:
        return CheckResult(
            name, "insufficient_data", None, -margin,
            f"{n} labelled requests with both answers judged; {settings.min_labels} are needed",
            settings.blocking,
        )
    b, c = outcomes.paired["canary_only_right"], outcomes.paired["live_only_right"]
    difference = (b - c) / n
    test = mcnemar_exact(b, c)
    canary_acc = (outcomes.paired["both_right"] + b) / n
    live_acc = (outcomes.paired["both_right"] + c) / n
    spot = f"; {outcomes.spotcheck} of them settled by spot-check labels" if outcomes.spotcheck else ""
    figures = (
        f"canary right on {_pct(canary_acc)} and live on {_pct(live_acc)} of {n} labelled requests "
        f"(canary alone right {b}, live alone right {c}, McNemar p = {test.p_canary_worse:.2g}{spot})"
    )
    if difference < -margin and test.p_canary_worse < settings.p_value:
        return CheckResult(
            name, _failed(settings.blocking), difference, -margin,
            f"canary is less accurate than live: {figures}", settings.blocking,
        )
    if difference < -margin:
        return CheckResult(
            name, "insufficient_data", difference, -margin,
            f"canary may be less accurate than live, not yet beyond chance: {figures}", settings.blocking,
        )
    return CheckResult(
        name, "pass", difference, -margin,
        f"canary is at least as accurate as live within {_pct(margin)}: {figures}", settings.blocking,
    )


def class_precision(
    classes: Sequence[str], outcomes: Outcomes, settings: ClassPrecisionCheckSettings
) -> CheckResult:
    """Per class, canary precision against live's: fails when one is clearly worse by more than the margin."""
    name, margin = "class_precision", settings.margin
    judged: list[tuple[float, str, Precision, Precision]] = []
    for label in classes:
        live = _precision(outcomes.live_correct.get(label), outcomes.live_labelled.get(label), settings.confidence)
        canary = _precision(
            outcomes.canary_correct.get(label), outcomes.canary_labelled.get(label), settings.confidence
        )
        if min(live.labelled, canary.labelled) >= settings.min_labels:
            assert live.estimate is not None and canary.estimate is not None
            judged.append((canary.estimate - live.estimate, label, canary, live))
    if not judged:
        return CheckResult(
            name, "insufficient_data", None, -margin,
            f"no class has {settings.min_labels} labelled answers from each model yet", settings.blocking,
        )
    gap, label, canary, live = min(judged)
    words = (
        f"precision of {quoted(label)}: canary {_pct(canary.estimate or 0)} "
        f"[{_pct(canary.lower)}, {_pct(canary.upper)}] "
        f"vs live {_pct(live.estimate or 0)} [{_pct(live.lower)}, {_pct(live.upper)}]"
    )
    if gap < -margin and canary.upper < live.lower:
        return CheckResult(
            name, _failed(settings.blocking), gap, -margin, f"canary is less precise: {words}", settings.blocking
        )
    return CheckResult(
        name, "pass", gap, -margin,
        f"no class clearly less precise on the canary ({len(judged)} judged); weakest {words}", settings.blocking,
    )


def _from_decision(decision: str, blocking: bool) -> Status:
    if decision == "no_go":
        return _failed(blocking)
    return "pass" if decision == "go" else "insufficient_data"


def sequential_class_divergence(
    comparison: Comparison, evidence: SequentialEvidence, min_samples: int, settings: DivergenceCheckSettings
) -> CheckResult:
    """Canary vs live class shares on paired requests, by an anytime-valid test with a margin."""
    name, test = "class_divergence", evidence.distribution
    n_live, n_canary = comparison.live.total, comparison.canary.total
    if min(n_live, n_canary) < min_samples and test.decision != "no_go":
        return CheckResult(
            name, "insufficient_data", None, test.margin,
            f"{n_canary} canary and {n_live} live predictions; {min_samples} of each are needed",
            settings.blocking, test.evidence(),
        )
    if test.n == 0:
        return CheckResult(
            name, "insufficient_data", None, test.margin, "no request answered by both models yet",
            settings.blocking, test.evidence(),
        )
    status = _from_decision(test.decision, settings.blocking)
    lead = {
        "pass": "canary class distribution matches live within the margin",
        "insufficient_data": "canary class distribution not yet shown within or beyond the margin",
    }.get(status, "canary class distribution differs from live")
    return CheckResult(
        name, status, test.distance, test.margin, f"{lead}: {test.explain(settings.blocking)}", settings.blocking,
        test.evidence(),
    )


def sequential_disagreement(evidence: SequentialEvidence, settings: DisagreementCheckSettings) -> CheckResult:
    """The disagreement rate against its allowed maximum, by an anytime-valid test."""
    test = evidence.disagreement
    if test.n < settings.min_pairs:
        return CheckResult(
            "disagreement", "insufficient_data", None, settings.max_rate,
            f"{test.n} requests answered by both models; {settings.min_pairs} are needed", settings.blocking,
        )
    detail = test.explain(settings.blocking)
    if test.decision == "no_go":
        detail = detail.removesuffix(".") + "; worth a human look at the disagreements"
    return CheckResult(
        "disagreement", _from_decision(test.decision, settings.blocking), test.estimate, settings.max_rate,
        detail, settings.blocking, test.evidence(),
    )


def sequential_accuracy(
    evidence: SequentialEvidence, outcomes: Outcomes, settings: AccuracyCheckSettings
) -> CheckResult:
    """Canary vs live accuracy on labelled requests: an anytime-valid non-inferiority test."""
    test = evidence.accuracy
    if test.n < settings.min_labels:
        return CheckResult(
            "accuracy", "insufficient_data", None, -test.margin,
            f"{test.n} labelled requests with both answers judged; {settings.min_labels} are needed",
            settings.blocking, test.evidence(),
        )
    spot = f"; {outcomes.spotcheck} settled by spot-check labels" if outcomes.spotcheck else ""
    b, c = outcomes.paired["canary_only_right"], outcomes.paired["live_only_right"]
    mcnemar = mcnemar_exact(b, c)
    paired = f" (canary alone right {b}, live alone right {c}; McNemar exact p = {mcnemar.p_two_sided:.2g}{spot})"
    facts = {**test.evidence(), "mcnemar_p_two_sided": mcnemar.p_two_sided,
             "mcnemar_p_canary_worse": mcnemar.p_canary_worse}
    return CheckResult(
        "accuracy", _from_decision(test.decision, settings.blocking), test.estimate, -test.margin,
        test.explain(settings.blocking) + paired, settings.blocking, facts,
    )
