"""Tests of monitor.stats.sequential: anytime validity by simulation, batch = one-by-one, properties.

Simulation tests read every check after *every* step of every stream, as a gate
polling continuously would, and compare the share of streams that ever decide
wrongly with alpha. The allowance for the simulation's own noise is 3 standard
errors of a binomial proportion at alpha: alpha + 3 sqrt(alpha (1 - alpha) / streams)
(0.083 for 400 streams at alpha = 0.05). All simulations are seeded.
"""

from __future__ import annotations

import doctest
import json
import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import monitor.stats.sequential
from monitor.stats.sequential import (
    DEFAULT_BETS,
    BetGrid,
    BoundedMeanCS,
    MeanSums,
    PairedAccuracy,
    PairedDifference,
    RateBelow,
    UnpairedDifference,
    cs_bounds,
    log_e_value,
    running_sums,
)

ALPHA = 0.05
STREAMS = 400
STEPS = 2000
CLASSES = ("invoice", "contract", "other")
LIVE_MIX = np.array([0.5, 0.3, 0.2])

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]

property_settings = settings(deadline=None, max_examples=60)


def allowance(streams: int, alpha: float = ALPHA) -> float:
    """alpha plus 3 binomial standard errors: the most a valid check may show in ``streams`` simulations."""
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / streams)


def paired_streams(
    canary_mix: FloatArray, live_mix: FloatArray, streams: int, steps: int, seed: int
) -> tuple[IntArray, IntArray]:
    """Class indices of canary and live answering independently, shape streams x steps."""
    rng = np.random.default_rng(seed)
    canary = rng.choice(len(canary_mix), size=(streams, steps), p=canary_mix)
    live = rng.choice(len(live_mix), size=(streams, steps), p=live_mix)
    return canary, live


def three_point(p_minus: float, p_plus: float, size: tuple[int, ...], seed: int) -> FloatArray:
    """Values -1, 0, 1 with the given probabilities of -1 and 1."""
    rng = np.random.default_rng(seed)
    draws = rng.random(size)
    return np.where(draws < p_minus, -1.0, np.where(draws < p_minus + p_plus, 1.0, 0.0))


def ever(mask: npt.NDArray[np.bool_]) -> float:
    """Share of streams (rows) where the mask is ever true."""
    return float(mask.any(axis=-1).mean())


# --- the guarantee: under the null, checked after every step, errors stay at or below alpha


def test_class_check_without_margin_rarely_alarms_on_an_aa_stream() -> None:
    # Margin 0 is the harshest null: canary and live have the same class mix exactly.
    canary, live = paired_streams(LIVE_MIX, LIVE_MIX, STREAMS, STEPS, seed=1)
    paths = PairedDifference.decision_paths(canary, live, 3, margin=0.0, alpha=ALPHA)
    assert ever(paths.no_go) <= allowance(STREAMS)
    assert not paths.go.any()  # go needs the gap shown below 0: impossible


def test_class_check_at_the_margin_errs_either_way_at_most_alpha() -> None:
    # Invoice +5 points and contract -5 points: the largest gap equals the margin, the
    # boundary of both nulls (no_go's "D <= margin" and go's "D >= margin").
    canary_mix = np.array([0.55, 0.25, 0.2])
    canary, live = paired_streams(canary_mix, LIVE_MIX, STREAMS, STEPS, seed=2)
    paths = PairedDifference.decision_paths(canary, live, 3, margin=0.05, alpha=ALPHA)
    assert ever(paths.no_go) <= allowance(STREAMS)
    assert ever(paths.go) <= allowance(STREAMS)


def test_rate_check_at_the_maximum_errs_either_way_at_most_alpha() -> None:
    events = (np.random.default_rng(3).random((STREAMS, STEPS)) < 0.2).astype(np.float64)
    paths = RateBelow.decision_paths(events, max_rate=0.2, alpha=ALPHA)
    assert ever(paths.no_go) <= allowance(STREAMS)
    assert ever(paths.go) <= allowance(STREAMS)


def test_accuracy_check_at_the_margin_errs_either_way_at_most_alpha() -> None:
    # canary 2 points less accurate than live, exactly the margin.
    differences = three_point(p_minus=0.10, p_plus=0.08, size=(STREAMS, STEPS), seed=4)
    paths = PairedAccuracy.decision_paths(differences, margin=0.02, alpha=ALPHA)
    assert ever(paths.no_go) <= allowance(STREAMS)
    assert ever(paths.go) <= allowance(STREAMS)


def test_accuracy_check_on_equal_models_never_says_no_go_and_eventually_says_go() -> None:
    differences = three_point(p_minus=0.05, p_plus=0.05, size=(200, 4000), seed=5)
    paths = PairedAccuracy.decision_paths(differences, margin=0.02, alpha=ALPHA)
    assert ever(paths.no_go) <= allowance(200)
    assert ever(paths.go) > 0.5


def bernoulli(size: tuple[int, ...], seed: int) -> FloatArray:
    return (np.random.default_rng(seed).random(size) < 0.3).astype(np.float64)


def beta(size: tuple[int, ...], seed: int) -> FloatArray:
    return np.random.default_rng(seed).beta(2.0, 5.0, size)


def three_point_values(size: tuple[int, ...], seed: int) -> FloatArray:
    return three_point(0.1, 0.3, size, seed)


@pytest.mark.parametrize(
    ("lo", "hi", "sample", "mean"),
    [(0.0, 1.0, bernoulli, 0.3), (-1.0, 1.0, three_point_values, 0.2), (0.0, 1.0, beta, 2.0 / 7.0)],
    ids=["bernoulli", "three-point", "beta"],
)
def test_confidence_sequence_covers_the_mean_at_all_times(
    lo: float, hi: float, sample: Callable[[tuple[int, ...], int], FloatArray], mean: float
) -> None:
    values = sample((STREAMS, STEPS), 6)
    sums = running_sums(values, lo, hi)
    threshold = math.log(2 / ALPHA)
    # By monotonicity in the null value, "the CS misses the mean" is exactly
    # "an e-process at the mean reached 2 / alpha", which is cheap to evaluate.
    misses = (log_e_value(sums, mean, "above") >= threshold) | (log_e_value(sums, mean, "below") >= threshold)
    assert ever(misses) <= allowance(STREAMS)
    # And directly from the bounds, on a smaller part of the paths.
    part = sums.at((slice(0, 100), slice(0, 300)))
    lower, upper = cs_bounds(part, ALPHA, lo, hi)
    assert np.array_equal((lower > mean) | (upper < mean), misses[:100, :300])


def test_e_process_is_a_supermartingale_in_simulation() -> None:
    # At the null's boundary, the e-process's mean must stay <= 1 at every fixed time.
    streams = 4000
    values = (np.random.default_rng(7).random((streams, 1000)) < 0.3).astype(np.float64)
    sums = running_sums(values, 0.0, 1.0)
    for side in ("above", "below"):
        e_values = np.exp(log_e_value(sums, 0.3, side))  # type: ignore[arg-type]
        assert np.all(e_values >= 0)
        for t in (0, 9, 99, 999):
            column = e_values[:, t]
            standard_error = column.std(ddof=1) / math.sqrt(streams)
            assert column.mean() <= 1 + 3 * standard_error + 1e-12, (side, t)


def test_class_no_go_e_value_is_a_supermartingale_at_the_margin() -> None:
    # The average of the 2K outside e-processes, with the largest gap equal to the margin.
    streams = 3000
    canary, live = paired_streams(np.array([0.55, 0.25, 0.2]), LIVE_MIX, streams, 600, seed=8)
    classes = np.arange(3)[:, None]
    differences = (canary[:, None, :] == classes).astype(float) - (live[:, None, :] == classes).astype(float)
    sums = running_sums(differences, -1.0, 1.0)
    outside = np.exp(log_e_value(sums, 0.05, "above")) + np.exp(log_e_value(sums, -0.05, "below"))
    average = outside.sum(axis=1) / 6
    for t in (9, 99, 599):
        column = average[:, t]
        assert column.mean() <= 1 + 3 * column.std(ddof=1) / math.sqrt(streams), t


# --- detection


def test_a_collapsed_canary_is_no_go_within_a_few_hundred_events() -> None:
    decided_by = []
    for seed in range(20):
        canary, live = paired_streams(np.array([0.85, 0.1, 0.05]), LIVE_MIX, 1, 300, seed=100 + seed)
        check = PairedDifference(CLASSES)
        for step, (canary_answer, live_answer) in enumerate(zip(canary[0], live[0], strict=True), start=1):
            if check.update(int(canary_answer), int(live_answer)).decision == "no_go":
                decided_by.append(step)
                break
    assert len(decided_by) >= 18, decided_by
    assert np.median(decided_by) <= 150


def test_a_shift_beyond_the_margin_is_found_and_one_inside_is_not_blocked() -> None:
    # A 10-point shift, canary and live answering independently (no shared requests to help).
    canary, live = paired_streams(np.array([0.6, 0.2, 0.2]), LIVE_MIX, 50, 3000, seed=9)
    beyond = PairedDifference.decision_paths(canary, live, 3, margin=0.01)
    assert ever(beyond.no_go) >= 0.9
    inside = PairedDifference.decision_paths(canary, live, 3, margin=0.2)
    assert not inside.no_go.any()
    assert ever(inside.go) >= 0.9


# --- batch paths equal one-by-one updates


def test_batch_bounds_equal_one_by_one_updates_exactly() -> None:
    values = three_point(0.1, 0.2, (250,), seed=10)
    sums = running_sums(values, -1.0, 1.0)
    lower, upper = cs_bounds(sums, ALPHA, -1.0, 1.0)
    cs = BoundedMeanCS(-1.0, 1.0, ALPHA)
    for t, value in enumerate(values):
        cs.update(float(value))
        assert cs.lower == lower[t] and cs.upper == upper[t], t
        assert cs.e_value_above(0.0) == math.exp(float(log_e_value(sums.at(t), 0.0, "above")))


def test_class_decision_paths_equal_the_check_read_after_every_request() -> None:
    canary, live = paired_streams(np.array([0.75, 0.15, 0.1]), LIVE_MIX, 3, 400, seed=11)
    paths = PairedDifference.decision_paths(canary, live, 3, margin=0.02)
    for stream in range(3):
        check = PairedDifference(CLASSES, margin=0.02)
        for t in range(400):
            decision = check.update(int(canary[stream, t]), int(live[stream, t])).decision
            expected = "no_go" if paths.no_go[stream, t] else "go" if paths.go[stream, t] else "undecided"
            assert decision == expected, (stream, t)
    assert paths.no_go.any()


def test_rate_and_accuracy_decision_paths_equal_the_checks() -> None:
    events = (np.random.default_rng(12).random((2, 600)) < 0.12).astype(np.float64)
    differences = three_point(0.02, 0.04, (2, 600), seed=13)
    rate_paths = RateBelow.decision_paths(events, max_rate=0.2)
    accuracy_paths = PairedAccuracy.decision_paths(differences, margin=0.02)
    for stream in range(2):
        rate, accuracy = RateBelow(max_rate=0.2), PairedAccuracy(margin=0.02)
        for t in range(600):
            rate.update(float(events[stream, t]))
            canary_right = float(differences[stream, t] >= 0)
            accuracy.update(canary_right, canary_right - float(differences[stream, t]))
            for check, paths in ((rate, rate_paths), (accuracy, accuracy_paths)):
                expected = "no_go" if paths.no_go[stream, t] else "go" if paths.go[stream, t] else "undecided"
                assert check.decision == expected, (type(check).__name__, stream, t)
    assert rate_paths.go.any() and accuracy_paths.go.any()


# --- properties of the confidence sequence and the state

ranges = st.tuples(
    st.floats(min_value=-100, max_value=100, allow_nan=False), st.floats(min_value=0.01, max_value=100)
).map(lambda pair: (pair[0], pair[0] + pair[1]))


@st.composite
def bounded_streams(draw: st.DrawFn) -> tuple[float, float, list[float]]:
    lo, hi = draw(ranges)
    fractions = draw(st.lists(st.floats(min_value=0, max_value=1), min_size=0, max_size=60))
    return lo, hi, [min(max(lo + f * (hi - lo), lo), hi) for f in fractions]


@property_settings
@given(bounded_streams(), st.sampled_from([0.01, 0.05, 0.2]))
def test_bounds_are_ordered_and_within_the_range(stream: tuple[float, float, list[float]], alpha: float) -> None:
    lo, hi, values = stream
    if not values:
        return
    sums = running_sums(values, lo, hi)
    lower, upper = cs_bounds(sums, alpha, lo, hi)
    assert np.all(lo <= lower) and np.all(upper <= hi)
    assert np.all(lower <= upper)
    means = np.cumsum(values) / np.arange(1, len(values) + 1)
    # The interval holds the sample mean unless that sits at the very edge of the range.
    inside = (lower <= means + 1e-9 * (hi - lo)) & (means - 1e-9 * (hi - lo) <= upper)
    assert np.all(inside)


@property_settings
@given(bounded_streams(), st.integers(min_value=0, max_value=60))
def test_update_many_equals_one_by_one_updates(stream: tuple[float, float, list[float]], cut: int) -> None:
    lo, hi, values = stream
    one_by_one = BoundedMeanCS(lo, hi)
    for value in values:
        one_by_one.update(value)
    batched = BoundedMeanCS(lo, hi).update_many(values[:cut]).update_many(values[cut:])
    for mine, theirs in zip(one_by_one.sums, batched.sums, strict=True):
        assert np.array_equal(mine, theirs)
    assert (one_by_one.lower, one_by_one.upper) == (batched.lower, batched.upper)


@property_settings
@given(bounded_streams(), bounded_streams())
def test_merge_adds_the_states(
    first: tuple[float, float, list[float]], second: tuple[float, float, list[float]]
) -> None:
    lo, hi, values = first
    others = [lo + (v - second[0]) / (second[1] - second[0]) * (hi - lo) for v in second[2]]
    others = [min(max(v, lo), hi) for v in others]
    a, b = BoundedMeanCS(lo, hi).update_many(values), BoundedMeanCS(lo, hi).update_many(others)
    a_sums, b_sums = a.sums, b.sums
    merged = BoundedMeanCS(lo, hi).merge(a).merge(b)
    reverse = BoundedMeanCS(lo, hi).merge(b).merge(a)
    assert merged.n == len(values) + len(others)
    for total, mine, theirs, left, right in zip(merged.sums, a_sums, b_sums, merged.sums, reverse.sums, strict=True):
        assert total == pytest.approx(float(mine + theirs), rel=1e-12, abs=1e-12)
        assert left == pytest.approx(float(right), rel=1e-12, abs=1e-12)
    concatenated = BoundedMeanCS(lo, hi).update_many(values + others)
    assert merged.n == concatenated.n
    assert merged.mean == pytest.approx(concatenated.mean, rel=1e-9, abs=1e-9 * (hi - lo))
    empty = BoundedMeanCS(lo, hi)
    assert a.merge(empty).sums == a_sums


def test_merged_replicas_keep_the_guarantee() -> None:
    # Two replicas, each centring on its own running mean, merged at the end of every step.
    values = (np.random.default_rng(14).random((STREAMS, 2, 1000)) < 0.3).astype(np.float64)
    halves = running_sums(values, 0.0, 1.0)
    merged = MeanSums(*(part[:, 0, :] + part[:, 1, :] for part in halves))
    threshold = math.log(2 / ALPHA)
    misses = (log_e_value(merged, 0.3, "above") >= threshold) | (log_e_value(merged, 0.3, "below") >= threshold)
    assert ever(misses) <= allowance(STREAMS)


@settings(deadline=None, max_examples=15)
@given(st.floats(min_value=0.02, max_value=0.98))
def test_intervals_shrink_in_expectation(p: float) -> None:
    values = (np.random.default_rng(15).random((40, 1600)) < p).astype(np.float64)
    lower, upper = cs_bounds(running_sums(values, 0.0, 1.0).at((slice(None), [24, 99, 399, 1599])), ALPHA, 0.0, 1.0)
    widths = (upper - lower).mean(axis=0)
    assert np.all(np.diff(widths) < 0), widths


@property_settings
@given(bounded_streams(), st.floats(min_value=0, max_value=1), st.floats(min_value=0, max_value=1))
def test_e_values_are_monotone_in_the_null(stream: tuple[float, float, list[float]], a: float, b: float) -> None:
    lo, hi, values = stream
    sums = running_sums([*values, lo], lo, hi).at(-1)
    small, large = sorted((lo + a * (hi - lo), lo + b * (hi - lo)))
    assert log_e_value(sums, small, "above") >= log_e_value(sums, large, "above")
    assert log_e_value(sums, small, "below") <= log_e_value(sums, large, "below")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1.5, 1.0001])
def test_bad_values_are_refused_and_leave_the_state_alone(bad: float) -> None:
    cs = BoundedMeanCS(-1.0, 1.0).update_many([0.5, -0.5])
    before = cs.to_dict()
    with pytest.raises(ValueError, match="within"):
        cs.update(bad)
    with pytest.raises(ValueError, match="within"):
        cs.update_many([0.0, bad])
    assert cs.to_dict() == before


def test_empty_state_is_the_whole_range_and_no_evidence() -> None:
    cs = BoundedMeanCS(0.0, 1.0)
    assert (cs.n, cs.lower, cs.upper, cs.mean) == (0, 0.0, 1.0, 0.5)
    assert cs.e_value_above(0.5) == pytest.approx(1.0)
    assert cs.update_many([]).n == 0
    check = PairedDifference(CLASSES)
    assert check.decision == "undecided"
    assert check.distance_bounds == (0.0, 1.0)
    assert "no paired requests yet" in check.explain()


@pytest.mark.parametrize(
    "check",
    [
        BoundedMeanCS(-1.0, 1.0, 0.1, BetGrid.geometric(0.1, 0.5, 3)).update_many([0.5, -1.0, 1.0]),
        PairedDifference(CLASSES, margin=0.03).update_many(["invoice", "other"], ["contract", "other"]),
        UnpairedDifference(CLASSES).update_many(canary=["invoice"], live=["other", "other"]),
        RateBelow(max_rate=0.1).update_many([1, 0, 0]),
        PairedAccuracy(margin=0.05).update_many([1, 0, 1], [1, 1, 0]),
    ],
    ids=lambda check: type(check).__name__,
)
def test_checkpoints_round_trip_through_json(check: object) -> None:
    data = json.loads(json.dumps(check.to_dict()))  # type: ignore[attr-defined]
    restored = type(check).from_dict(data)  # type: ignore[attr-defined]
    assert restored.to_dict() == check.to_dict()  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="checkpoint"):
        type(check).from_dict({**data, "kind": "something else"})  # type: ignore[attr-defined]


# --- the checks' outputs


def test_evidence_and_explanation_of_a_collapse() -> None:
    canary, live = paired_streams(np.array([0.85, 0.1, 0.05]), LIVE_MIX, 1, 400, seed=16)
    check = PairedDifference(CLASSES, margin=0.05).update_many(canary[0], live[0])
    facts = check.evidence()
    json.dumps(facts)
    assert facts["decision"] == "no_go"
    assert facts["focus_class"] == "invoice"
    assert facts["cs_lower"] > 0.05
    assert facts["cs_lower"] <= facts["estimate"] <= facts["cs_upper"]
    assert facts["e_value_no_go"] >= 1 / ALPHA
    assert facts["p_value_no_go"] <= ALPHA
    invoice = facts["classes"]["invoice"]
    assert invoice["cs_lower"] <= invoice["estimate"] <= invoice["cs_upper"]
    sentence = check.explain()
    assert sentence.startswith("canary answers invoice ")
    assert "more often than live" in sentence and "margin of 5" in sentence and sentence.endswith("no-go.")


def test_distance_bounds_agree_with_the_decision() -> None:
    canary, live = paired_streams(np.array([0.53, 0.27, 0.2]), LIVE_MIX, 1, 5000, seed=17)
    for margin in (0.005, 0.01, 0.03, 0.05, 0.2):
        check = PairedDifference(CLASSES, margin=margin).update_many(canary[0], live[0])
        lower, upper = check.distance_bounds
        assert lower <= check.distance <= upper
        decision = "no_go" if lower > margin else "go" if upper < margin else "undecided"
        assert check.decision == decision, margin


def test_rate_and_accuracy_explanations() -> None:
    rate = RateBelow(max_rate=0.2).update_many(np.random.default_rng(18).random(3000) < 0.3)
    assert rate.decision == "no_go"
    assert rate.explain().startswith("canary and live disagree on 3")
    assert rate.evidence()["e_value_no_go"] >= 1 / ALPHA
    accuracy = PairedAccuracy(margin=0.02)
    assert "no labelled requests yet" in accuracy.explain()
    accuracy.update(True, True).update(False, True)
    assert accuracy.decision == "undecided"
    assert accuracy.explain().startswith("not decided after 2 labelled requests")


def test_unpaired_check_decides_obvious_cases_and_keeps_the_guarantee() -> None:
    rng = np.random.default_rng(19)
    check = UnpairedDifference(CLASSES, margin=0.05)
    check.update_many(canary=rng.choice(3, 500, p=[0.9, 0.05, 0.05]), live=rng.choice(3, 500, p=LIVE_MIX))
    assert check.decision == "no_go"
    facts = check.evidence()
    assert facts["p_value_no_go"] <= ALPHA < facts["p_value_go"]
    assert "invoice" in check.explain()
    # Under the null, the per-share sequences (each at alpha / 2K) miss jointly at most alpha.
    for role in range(2):
        shares = (rng.choice(3, (200, 1000), p=LIVE_MIX) == 0).astype(np.float64)
        sums = running_sums(shares, 0.0, 1.0)
        threshold = math.log(2 / (ALPHA / 6))
        misses = (log_e_value(sums, 0.5, "above") >= threshold) | (log_e_value(sums, 0.5, "below") >= threshold)
        assert ever(misses) <= allowance(200, ALPHA / 6), role


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: PairedDifference(CLASSES).update("drawing", "invoice"), "unknown class"),
        (lambda: PairedDifference(CLASSES).update(3, 0), r"\[0, 3\)"),
        (lambda: PairedDifference(CLASSES).update_many([0, 1], [0]), "one answer each"),
        (lambda: PairedDifference(["only"]), "two distinct"),
        (lambda: PairedDifference(CLASSES, margin=-0.1), "margin"),
        (lambda: BoundedMeanCS(1.0, 1.0), "lo < hi"),
        (lambda: BoundedMeanCS(alpha=1.0), "alpha"),
        (lambda: RateBelow(max_rate=0.0), "max_rate"),
        (lambda: PairedAccuracy().update(0.5, 1), "0 or 1"),
        (lambda: BetGrid((0.5, 1.0), (0.5, 0.5)), r"\(0, 1\)"),
        (lambda: BoundedMeanCS().merge(BoundedMeanCS(alpha=0.1)), "same alpha"),
    ],
)
def test_misuse_is_refused_with_a_clear_message(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_default_bets_are_the_documented_grid() -> None:
    assert len(DEFAULT_BETS.fractions) == 8
    assert DEFAULT_BETS.fractions[0] == pytest.approx(0.02) and DEFAULT_BETS.fractions[-1] == pytest.approx(0.9)


def test_docstring_examples_run() -> None:
    outcome = doctest.testmod(monitor.stats.sequential, optionflags=doctest.ELLIPSIS)
    assert outcome.attempted > 0
    assert outcome.failed == 0


def test_evidence_stays_finite_when_the_e_process_is_far_below_one() -> None:
    """A long stream far on the 'go' side gives a very negative log e-value for 'no_go': p must be 1, not an error."""
    check = RateBelow(max_rate=0.2, alpha=0.05)
    check.update_many([0.0] * 200_000)
    facts = check.evidence()
    assert facts["p_value_no_go"] == 1.0
    assert facts["decision"] == "go"
    assert "0" in check.explain()
