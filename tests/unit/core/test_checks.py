"""Tests of monitor.core.checks on comparisons with known counts; every figure is checked against scipy."""

from __future__ import annotations

import math

import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, chisquare, entropy

from monitor.config import (
    AccuracyCheckSettings,
    ClassPrecisionCheckSettings,
    CollapseCheckSettings,
    DisagreementCheckSettings,
    DivergenceCheckSettings,
    ReferenceCheckSettings,
)
from monitor.core import checks
from monitor.core.evidence import EvidenceSettings, SequentialEvidence
from monitor.core.state.counts import ClassCounts
from monitor.core.state.deployment import Comparison
from monitor.core.state.outcomes import Outcomes

CLASSES = ["invoice", "contract", "other"]
MIN_SAMPLES = 100


def comparison(live: list[int], canary: list[int], confusion: dict[tuple[str, str], int] | None = None) -> Comparison:
    return Comparison(
        canary_version="v2",
        started_at=0.0,
        live=ClassCounts(dict(zip(CLASSES, live, strict=True))),
        canary=ClassCounts(dict(zip(CLASSES, canary, strict=True))),
        confusion=nested(confusion or {}),
    )


def nested(pairs: dict[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    """(live, canary) -> n as the comparison keeps it: live label -> canary label -> n."""
    confusion: dict[str, dict[str, int]] = {}
    for (live, canary), n in pairs.items():
        confusion.setdefault(live, {})[canary] = n
    return confusion


EQUAL = comparison([500, 300, 200], [500, 300, 200])
# A canary that calls 90% of documents invoices while live calls half of them so.
COLLAPSED = comparison([500, 300, 200], [900, 60, 40])


# -- class_divergence -------------------------------------------------------------------------


def test_equal_distributions_pass_class_divergence() -> None:
    result = checks.class_divergence(CLASSES, EQUAL, MIN_SAMPLES, DivergenceCheckSettings())
    assert result.status == "pass"
    assert result.value == pytest.approx(0.0, abs=1e-12)
    assert result.threshold == DivergenceCheckSettings().js_threshold
    assert result.name == "class_divergence"


def test_collapsed_canary_fails_class_divergence_with_scipy_figures() -> None:
    settings = DivergenceCheckSettings()
    result = checks.class_divergence(CLASSES, COLLAPSED, MIN_SAMPLES, settings)
    expected_js = jensenshannon([900, 60, 40], [500, 300, 200], base=2)
    p_value = chi2_contingency([[900, 60, 40], [500, 300, 200]], correction=False).pvalue
    assert expected_js > settings.js_threshold and p_value < settings.p_value  # the premise
    assert result.status == "fail"
    assert result.blocking is True
    assert result.value == pytest.approx(expected_js, rel=1e-9)
    assert f"{expected_js:.3f}" in result.detail


def test_small_live_vs_canary_shift_figures_match_scipy() -> None:
    live, canary = [480, 320, 200], [520, 280, 200]
    figures = checks.live_divergence(CLASSES, comparison(live, canary))
    assert figures.js == pytest.approx(jensenshannon(canary, live, base=2), rel=1e-9)
    assert figures.chi2_pvalue == pytest.approx(chi2_contingency([canary, live], correction=False).pvalue, rel=1e-9)
    live_shares = [n / sum(live) for n in live]
    canary_shares = [n / sum(canary) for n in canary]
    expected_psi = sum((c - e) * math.log(c / e) for c, e in zip(canary_shares, live_shares, strict=True))
    assert figures.psi == pytest.approx(expected_psi, rel=1e-9)


def test_large_but_not_significant_difference_waits() -> None:
    # JS distance is large, but with 20 samples a side the chi-square test cannot tell it from chance.
    small = comparison([8, 6, 6], [12, 4, 4])
    settings = DivergenceCheckSettings(js_threshold=0.05, p_value=0.001)
    js = jensenshannon([12, 4, 4], [8, 6, 6], base=2)
    p_value = chi2_contingency([[12, 4, 4], [8, 6, 6]], correction=False).pvalue
    assert js > 0.05 and p_value > 0.001  # the premise
    result = checks.class_divergence(CLASSES, small, 20, settings)
    assert result.status == "insufficient_data"
    assert result.value == pytest.approx(js, rel=1e-9)


@pytest.mark.parametrize(("live", "canary"), [([50, 30, 19], [500, 300, 200]), ([500, 300, 200], [50, 30, 19])])
def test_too_few_samples_on_either_side_is_insufficient(live: list[int], canary: list[int]) -> None:
    assert sum(live) < MIN_SAMPLES or sum(canary) < MIN_SAMPLES
    result = checks.class_divergence(CLASSES, comparison(live, canary), MIN_SAMPLES, DivergenceCheckSettings())
    assert result.status == "insufficient_data"
    assert result.value is None


def test_exactly_min_samples_is_enough() -> None:
    result = checks.class_divergence(CLASSES, comparison([50, 30, 20], [50, 30, 20]), 100, DivergenceCheckSettings())
    assert result.status == "pass"


def test_non_blocking_failing_divergence_warns() -> None:
    result = checks.class_divergence(CLASSES, COLLAPSED, MIN_SAMPLES, DivergenceCheckSettings(blocking=False))
    assert result.status == "warn"
    assert result.blocking is False


# -- collapse ---------------------------------------------------------------------------------


def test_equal_distributions_pass_collapse() -> None:
    result = checks.collapse(CLASSES, EQUAL, MIN_SAMPLES, CollapseCheckSettings())
    assert result.status == "pass"
    assert result.value == pytest.approx(0.5)


def test_collapsed_canary_fails_collapse() -> None:
    result = checks.collapse(CLASSES, COLLAPSED, MIN_SAMPLES, CollapseCheckSettings())
    assert result.status == "fail"
    assert result.value == pytest.approx(900 / 1000)
    assert "onto 'invoice'" in result.detail


def test_collapse_non_blocking_warns() -> None:
    result = checks.collapse(CLASSES, COLLAPSED, MIN_SAMPLES, CollapseCheckSettings(blocking=False))
    assert result.status == "warn"


def test_same_dominant_class_on_both_sides_is_not_a_collapse() -> None:
    # Live also answers 90% invoice: the canary is no worse.
    both = comparison([900, 60, 40], [900, 60, 40])
    assert checks.collapse(CLASSES, both, MIN_SAMPLES, CollapseCheckSettings()).status == "pass"


def test_loss_of_variety_fails_collapse_below_the_entropy_ratio() -> None:
    classes = ["a", "b", "c", "d"]
    live, canary = [250, 250, 250, 250], [750, 250, 0, 0]
    case = Comparison(
        "v2", 0.0, live=ClassCounts(dict(zip(classes, live, strict=True))),
        canary=ClassCounts(dict(zip(classes, canary, strict=True))),
    )
    settings = CollapseCheckSettings(max_class_share=0.8, min_entropy_ratio=0.5)
    ratio = entropy(canary, base=2) / entropy(live, base=2)
    assert max(canary) / sum(canary) <= 0.8 and ratio < 0.5  # the premise: only the entropy rule fires
    result = checks.collapse(classes, case, MIN_SAMPLES, settings)
    assert result.status == "fail"
    assert f"{ratio:.2f}" in result.detail
    relaxed = CollapseCheckSettings(max_class_share=0.8, min_entropy_ratio=ratio - 0.01)
    assert checks.collapse(classes, case, MIN_SAMPLES, relaxed).status == "pass"


def test_collapse_with_too_few_samples_is_insufficient() -> None:
    result = checks.collapse(CLASSES, comparison([5, 3, 2], [9, 1, 0]), MIN_SAMPLES, CollapseCheckSettings())
    assert result.status == "insufficient_data"
    assert result.value is None


# -- disagreement -----------------------------------------------------------------------------


def test_disagreement_rate_is_disagreements_over_pairs() -> None:
    confusion = {("invoice", "invoice"): 70, ("contract", "contract"): 10, ("invoice", "other"): 15,
                 ("other", "contract"): 5}
    case = comparison([0, 0, 0], [0, 0, 0], confusion)
    settings = DisagreementCheckSettings(max_rate=0.1, min_pairs=100)
    result = checks.disagreement(case, settings)
    assert result.value == pytest.approx(20 / 100)
    assert result.status == "warn"  # not blocking by default
    blocking = checks.disagreement(case, DisagreementCheckSettings(max_rate=0.1, min_pairs=100, blocking=True))
    assert blocking.status == "fail"
    assert checks.disagreement(case, DisagreementCheckSettings(max_rate=0.25, min_pairs=100)).status == "pass"


def test_disagreement_needs_min_pairs() -> None:
    case = comparison([0, 0, 0], [0, 0, 0], {("invoice", "other"): 99})
    result = checks.disagreement(case, DisagreementCheckSettings(min_pairs=100))
    assert result.status == "insufficient_data"
    assert result.value is None


# -- reference_divergence ---------------------------------------------------------------------

REFERENCE = {"invoice": 0.5, "contract": 0.3, "other": 0.2}


def test_canary_matching_the_reference_passes() -> None:
    result = checks.reference_divergence(CLASSES, EQUAL, REFERENCE, MIN_SAMPLES, ReferenceCheckSettings())
    assert result.status == "pass"
    assert result.value == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("counts", [[900, 60, 40], [520, 280, 200], [51, 29, 20]])
def test_reference_figures_match_scipy(counts: list[int]) -> None:
    figures = checks.reference_divergence_figures(CLASSES, counts, REFERENCE)
    expected_shares = [REFERENCE[c] for c in CLASSES]
    assert figures.js == pytest.approx(jensenshannon(counts, expected_shares, base=2), rel=1e-9)
    f_exp = [share * sum(counts) for share in expected_shares]
    assert figures.chi2_pvalue == pytest.approx(chisquare(counts, f_exp=f_exp).pvalue, rel=1e-6, abs=1e-300)


def test_collapsed_canary_fails_the_reference() -> None:
    result = checks.reference_divergence(CLASSES, COLLAPSED, REFERENCE, MIN_SAMPLES, ReferenceCheckSettings())
    assert result.status == "fail"
    assert result.value == pytest.approx(jensenshannon([900, 60, 40], [0.5, 0.3, 0.2], base=2), rel=1e-9)
    non_blocking = ReferenceCheckSettings(blocking=False)
    assert checks.reference_divergence(CLASSES, COLLAPSED, REFERENCE, MIN_SAMPLES, non_blocking).status == "warn"


def test_reference_shares_need_not_sum_to_one() -> None:
    scaled = {name: share * 7 for name, share in REFERENCE.items()}
    a = checks.reference_divergence(CLASSES, COLLAPSED, REFERENCE, MIN_SAMPLES, ReferenceCheckSettings())
    b = checks.reference_divergence(CLASSES, COLLAPSED, scaled, MIN_SAMPLES, ReferenceCheckSettings())
    assert (a.status, a.value) == (b.status, pytest.approx(b.value))


def test_reference_with_too_few_canary_samples_is_insufficient() -> None:
    case = comparison([500, 300, 200], [5, 3, 2])
    result = checks.reference_divergence(CLASSES, case, REFERENCE, MIN_SAMPLES, ReferenceCheckSettings())
    assert result.status == "insufficient_data"


def test_reference_with_no_class_in_common_gives_a_result() -> None:
    result = checks.reference_divergence(CLASSES, EQUAL, {"receipt": 1.0}, MIN_SAMPLES, ReferenceCheckSettings())
    assert result.status in ("fail", "warn", "insufficient_data", "pass")


# -- results ----------------------------------------------------------------------------------


def test_check_result_to_dict_has_the_contract_fields() -> None:
    result = checks.collapse(CLASSES, COLLAPSED, MIN_SAMPLES, CollapseCheckSettings())
    data = result.to_dict()
    assert {"name", "status", "value", "threshold", "detail"} <= set(data)
    assert data["status"] in ("pass", "fail", "warn", "insufficient_data")
    assert data["threshold"] == CollapseCheckSettings().max_class_share


# -- sentences --------------------------------------------------------------------------------


def collapsed_evidence(classes: list[str]) -> SequentialEvidence:
    """Sequential evidence of a canary that answers the first class always and is wrong half the time."""
    evidence = SequentialEvidence(tuple(classes), EvidenceSettings(max_disagreement=0.1))
    for i in range(600):
        evidence.add_pair(classes[0], classes[i % len(classes)])
        evidence.add_outcome(i % 2 == 0, True)
    evidence.flush()
    return evidence


def labelled(classes: list[str]) -> Outcomes:
    """600 labelled requests of the first class: live right on all, the canary on half."""
    first = classes[0]
    return Outcomes(
        live_labelled=ClassCounts({first: 600}), live_correct=ClassCounts({first: 600}),
        canary_labelled=ClassCounts({first: 600}), canary_correct=ClassCounts({first: 300}),
        paired={"both_right": 300, "canary_only_right": 0, "live_only_right": 300, "both_wrong": 0},
    )


def failing_results(classes: list[str], blocking: bool) -> list[checks.CheckResult]:
    """Every check of this module on data that fails it."""
    case = Comparison(
        "v2", 0.0, live=ClassCounts(dict(zip(classes, [500, 300, 200], strict=True))),
        canary=ClassCounts(dict(zip(classes, [900, 60, 40], strict=True))),
        confusion=nested({(classes[1], classes[0]): 300, (classes[0], classes[0]): 700}),
    )
    evidence, outcomes = collapsed_evidence(classes), labelled(classes)
    reference = dict(zip(classes, [0.5, 0.3, 0.2], strict=True))
    disagreement = DisagreementCheckSettings(max_rate=0.1, min_pairs=100, blocking=blocking)
    return [
        checks.class_divergence(classes, case, MIN_SAMPLES, DivergenceCheckSettings(blocking=blocking)),
        checks.reference_divergence(classes, case, reference, MIN_SAMPLES, ReferenceCheckSettings(blocking=blocking)),
        checks.collapse(classes, case, MIN_SAMPLES, CollapseCheckSettings(blocking=blocking)),
        checks.disagreement(case, disagreement),
        checks.accuracy(outcomes, AccuracyCheckSettings(blocking=blocking)),
        checks.class_precision(classes, outcomes, ClassPrecisionCheckSettings(blocking=blocking)),
        checks.sequential_class_divergence(case, evidence, MIN_SAMPLES, DivergenceCheckSettings(blocking=blocking)),
        checks.sequential_disagreement(evidence, disagreement),
        checks.sequential_accuracy(evidence, outcomes, AccuracyCheckSettings(blocking=blocking)),
    ]


def test_a_check_that_only_warns_never_says_no_go() -> None:
    results = failing_results(CLASSES, blocking=False)
    assert [r.status for r in results] == ["warn"] * len(results)
    for result in results:
        assert "no-go" not in result.detail and "no_go" not in result.detail, result
    sequential = [r for r in results if r.evidence is not None]
    assert sequential and all(r.detail.count("a warning, not blocking") == 1 for r in sequential)
    disagreement = next(r for r in sequential if r.name == "disagreement")
    assert "a warning, not blocking; worth a human look at the disagreements" in disagreement.detail


def test_a_blocking_check_that_fails_says_no_go_once() -> None:
    results = failing_results(CLASSES, blocking=True)
    assert [r.status for r in results] == ["fail"] * len(results)
    sequential = [r for r in results if r.evidence is not None]
    assert all(r.detail.count("no-go") == 1 and "warning" not in r.detail for r in sequential)


def test_a_failure_turned_into_a_warning_drops_its_no_go() -> None:
    (divergence,) = (r for r in failing_results(CLASSES, blocking=True)[6:] if r.name == "class_divergence")
    warning = checks.only_warns(divergence, "the outcomes say otherwise, so this only warns")
    assert (warning.status, warning.blocking) == ("warn", False)
    assert "no-go" not in warning.detail
    assert warning.detail.endswith("beyond the margin of 1; the outcomes say otherwise, so this only warns")


def test_every_sentence_quotes_the_classes_it_names() -> None:
    classes = ["2", "7", "9"]  # labels that read as numbers unless quoted
    for blocking in (True, False):
        results = {r.name: r for r in failing_results(classes, blocking) if r.evidence is None}
        assert "'2' 90% vs 50%" in results["class_divergence"].detail
        assert "'2' 90% vs 50%" in results["reference_divergence"].detail
        assert "onto '2'" in results["collapse"].detail
        assert "precision of '2'" in results["class_precision"].detail
    sequential = failing_results(classes, blocking=True)[6]
    assert "canary answers '2' " in sequential.detail
    none_in_common = checks.reference_divergence(classes, EQUAL, {"x": 1.0}, MIN_SAMPLES, ReferenceCheckSettings())
    assert "('2', '7', '9')" in none_in_common.detail
