"""False alarms and detection delays of driftgate's sequential checks against what monitors usually do.

Run: ``python benchmarks/detection.py`` (1 to 2 minutes on one core, about 300 MB; ``--quick`` for a smoke run).

Traffic model: the demo's (``monitor.embedded.simulator``): classes invoice, contract, other
with true mix 0.5 / 0.3 / 0.2; live is right 90% of the time, its errors spread
evenly over the other classes. Every request is answered by both models (shadow
traffic); 30% of requests get a true label (feedback). Scenarios for the canary:

- ``A/A``: an equal retrain, as the demo's ``good`` canary: it repeats live's answer
  on 85% of requests and answers on its own (90% right) on the rest;
- ``A/A split``: the same model on a traffic split instead of shadow traffic: canary
  and live answer *different* requests (pairs are formed by arrival order), so
  nothing is shared; the hardest null for every method, and the one where the
  chi-square's false-alarm rate per look is its nominal 5% (with shadow traffic
  both models are right on the same easy requests, which makes a chi-square that
  ignores the pairing conservative);
- ``collapse``: it answers on its own, then 85% of its answers become invoice
  (the demo's ``collapse`` with 0.85 instead of 0.9);
- ``shift 5`` / ``shift 2``: it answers on its own, then moves 5 (or 2) points of
  class mass from contract to invoice;
- ``accuracy drop``: it answers on its own and is right 85% of the time, 5 points
  below live.

For each: (a) driftgate's sequential checks (``monitor.core.stats.sequential``) read after
every canary event; (b) a chi-square test of homogeneity on a sliding window of
the last 1,000 requests, repeated every 100 events at p < 0.05 (what most monitors
do); (c) a single fixed-horizon test at the sample size that gives it 80% power on
this traffic (found by simulation): the chi-square test run once, and, for
reference, the fixed-sample version of driftgate's own check (same margin, same
alpha). Delays are in canary events; a stream never detected within the cap of
20,000 events counts as 20,000. Each A/A variant uses 1,000 streams, the other
scenarios 200 (to stay within a few minutes); ``aa_*`` figures are the worse of
the two A/A variants.

The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from scipy.stats import chi2

from monitor.core.stats.divergence import chi2_homogeneity
from monitor.core.stats.sequential import PairedAccuracy, PairedDifference, RateBelow
from monitor.embedded.simulator import CLASSES, TRUE_MIX, TrafficSimulator

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

ALPHA = 0.05
CLASS_MARGIN = 0.01  # PairedDifference's default: 1 point of any class's share
ACCURACY_MARGIN = 0.02  # PairedAccuracy's default: 2 points of accuracy
MAX_DISAGREEMENT = 0.2  # RateBelow's default, as the disagreement check's max_rate
CAP = 20_000
WINDOW = 1_000
EVERY = 100
LIVE_ACCURACY = 0.9
AGREEMENT = TrafficSimulator.agreement
LABELLED = TrafficSimulator.feedback_rate
N_CLASSES = len(CLASSES)
INVOICE, CONTRACT = CLASSES.index("invoice"), CLASSES.index("contract")
POWER = 0.8


def answers(accuracy: float) -> FloatArray:
    """P(answer = a | truth = t): right with ``accuracy``, errors spread evenly."""
    matrix = np.full((N_CLASSES, N_CLASSES), (1 - accuracy) / (N_CLASSES - 1))
    np.fill_diagonal(matrix, accuracy)
    return matrix


def scenario_joint(name: str) -> FloatArray:
    """P(truth, live answer, canary answer) as a 3 x 3 x 3 array."""
    mix = np.asarray(TRUE_MIX)
    live = answers(LIVE_ACCURACY)
    own = answers(0.85 if name == "accuracy drop" else LIVE_ACCURACY)
    if name == "collapse":
        own = 0.15 * own
        own[:, INVOICE] += 0.85
    elif name.startswith("shift"):
        points = float(name.split()[1]) / 100
        contract_share = float(mix @ own[:, CONTRACT])
        moved = own[:, CONTRACT] * points / contract_share
        own = own.copy()
        own[:, CONTRACT] -= moved
        own[:, INVOICE] += moved
    if name == "A/A split":  # canary's answers independent of live's and of the truth (another request)
        return mix[:, None, None] * live[:, :, None] * (mix @ own)[None, None, :]
    joint = mix[:, None, None] * live[:, :, None] * own[:, None, :]
    if name == "A/A":
        repeat = np.eye(N_CLASSES)[None, :, :] * (mix[:, None, None] * live[:, :, None])
        joint = AGREEMENT * repeat + (1 - AGREEMENT) * joint
    return joint


@dataclass
class Streams:
    """Simulated events of many streams: class indices and whether each request is labelled."""

    truth: IntArray
    live: IntArray
    canary: IntArray
    labelled: BoolArray
    canary_truth: IntArray  # the truth of the canary's request: ``truth`` except on a traffic split


def simulate(joint: FloatArray, streams: int, steps: int, rng: np.random.Generator) -> Streams:
    cdf = np.cumsum(joint.ravel())
    cells = np.minimum(np.searchsorted(cdf, rng.random((streams, steps)) * cdf[-1], side="right"), cdf.size - 1)
    truth = cells // (N_CLASSES * N_CLASSES)
    return Streams(
        truth=truth,
        live=(cells // N_CLASSES) % N_CLASSES,
        canary=cells % N_CLASSES,
        labelled=rng.random((streams, steps)) < LABELLED,
        canary_truth=truth,
    )


def simulate_split(streams: int, steps: int, rng: np.random.Generator) -> Streams:
    """Canary and live answering different requests: two independent paired simulations, one side of each."""
    independent = scenario_joint("A/A split")
    live_side, canary_side = simulate(independent, streams, steps, rng), simulate(independent, streams, steps, rng)
    return Streams(
        truth=live_side.truth,
        live=live_side.live,
        canary=canary_side.live,
        labelled=live_side.labelled,
        canary_truth=canary_side.truth,
    )


def first_event(mask: BoolArray, cap: int = CAP) -> IntArray:
    """1-based index of the first True along the last axis; ``cap`` where there is none."""
    found = mask.any(axis=-1)
    return np.where(found, mask.argmax(axis=-1) + 1, cap)


def labelled_sequence(values: FloatArray, labelled: BoolArray) -> tuple[FloatArray, IntArray, IntArray]:
    """The values at labelled requests, left-aligned and zero-padded; their event positions; their counts."""
    order = np.argsort(~labelled, axis=1, kind="stable")
    counts = labelled.sum(axis=1)
    width = max(int(counts.max()), 1)
    positions = order[:, :width]
    picked = np.take_along_axis(values, positions, axis=1)
    valid = np.arange(width)[None, :] < counts[:, None]
    return np.where(valid, picked, 0.0), positions, counts


def first_labelled_event(mask: BoolArray, positions: IntArray, counts: IntArray) -> IntArray:
    """Canary-event delay of the first True in a labelled sequence (cap when none within the stream)."""
    index = first_event(mask, cap=mask.shape[1] + 1) - 1
    inside = index < counts
    event = np.take_along_axis(positions, np.minimum(index, positions.shape[1] - 1)[:, None], axis=1)[:, 0] + 1
    return np.where(inside, event, CAP)


def chi2_p_values(first: FloatArray, second: FloatArray) -> FloatArray:
    """p-values of chi-square homogeneity tests of count rows (last axis: classes), as chi2_homogeneity."""
    table_total = first.sum(-1, keepdims=True) + second.sum(-1, keepdims=True)
    column = first + second
    statistic = np.zeros(first.shape[:-1])
    for row in (first, second):
        expected = row.sum(-1, keepdims=True) * column / np.maximum(table_total, 1)
        terms = np.divide((row - expected) ** 2, expected, out=np.zeros_like(row), where=expected > 0)
        statistic += terms.sum(-1)
    dof = (column > 0).sum(-1) - 1
    testable = (dof > 0) & (first.sum(-1) > 0) & (second.sum(-1) > 0)
    p_values: FloatArray = np.where(testable, chi2.sf(statistic, np.maximum(dof, 1)), 1.0)
    return p_values


def repeated_chi2_delay(canary_counts: FloatArray, live_counts: FloatArray) -> IntArray:
    """First look (every EVERY events) at which the sliding-window chi-square has p < ALPHA.

    ``*_counts`` are cumulative counts per class, shape streams x classes x (steps + 1).
    """
    looks = np.arange(EVERY, canary_counts.shape[-1], EVERY)
    starts = np.maximum(looks - WINDOW, 0)
    window_canary = np.moveaxis(canary_counts[..., looks] - canary_counts[..., starts], 1, -1)
    window_live = np.moveaxis(live_counts[..., looks] - live_counts[..., starts], 1, -1)
    alarms = chi2_p_values(window_canary, window_live) < ALPHA
    found = alarms.any(axis=-1)
    return np.where(found, looks[alarms.argmax(axis=-1)], CAP)


def cumulative_counts(indices: IntArray, n_values: int, weights: BoolArray | None = None) -> FloatArray:
    """Counts per value after each event, shape streams x values x (steps + 1), starting at 0."""
    hits = (indices[:, None, :] == np.arange(n_values)[None, :, None]).astype(np.float64)
    if weights is not None:
        hits *= weights[:, None, :]
    zeros = np.zeros((*hits.shape[:-1], 1))
    return np.concatenate([zeros, np.cumsum(hits, axis=-1)], axis=-1)


@dataclass
class Outcome:
    """Per-stream delays (or alarm flags) of every method in one scenario."""

    figures: dict[str, npt.NDArray[Any]]

    def add(self, name: str, values: npt.NDArray[Any]) -> None:
        self.figures[name] = np.concatenate([self.figures[name], values]) if name in self.figures else values


def run_chunk(streams: Streams, outcome: Outcome, aa: bool) -> None:
    """Every method on one chunk of streams; delays in canary events."""
    classes = PairedDifference.decision_paths(streams.canary, streams.live, N_CLASSES, CLASS_MARGIN, ALPHA)
    outcome.add("class_no_go", first_event(classes.no_go))
    outcome.add("class_go", first_event(classes.go))
    disagree = (streams.canary != streams.live).astype(np.float64)
    rate = RateBelow.decision_paths(disagree, MAX_DISAGREEMENT, ALPHA)
    outcome.add("rate_no_go", first_event(rate.no_go))
    canary_right = streams.canary == streams.canary_truth
    right = canary_right.astype(np.float64) - (streams.live == streams.truth).astype(np.float64)
    differences, positions, counts = labelled_sequence(right, streams.labelled)
    accuracy = PairedAccuracy.decision_paths(differences, ACCURACY_MARGIN, ALPHA)
    outcome.add("accuracy_no_go", first_labelled_event(accuracy.no_go, positions, counts))
    outcome.add("accuracy_go", first_labelled_event(accuracy.go, positions, counts))
    if aa:
        strict = PairedDifference.decision_paths(streams.canary, streams.live, N_CLASSES, 0.0, ALPHA)
        outcome.add("class_no_go_margin0", first_event(strict.no_go))
    canary_counts = cumulative_counts(streams.canary, N_CLASSES)
    live_counts = cumulative_counts(streams.live, N_CLASSES)
    outcome.add("class_chi2", repeated_chi2_delay(canary_counts, live_counts))
    canary_outcomes = cumulative_counts((~canary_right).astype(np.intp), 2, streams.labelled)
    live_outcomes = cumulative_counts((streams.live != streams.truth).astype(np.intp), 2, streams.labelled)
    outcome.add("accuracy_chi2", repeated_chi2_delay(canary_outcomes, live_outcomes))


# Fixed-horizon tests: power at a sample size, by simulating the counts of n requests.

Test = Callable[[FloatArray, int], BoolArray]
"""Rejects (per simulated sample) given counts of the 27 (truth, live, canary) cells of n requests."""


def chi2_class_test(cells: FloatArray, n: int) -> BoolArray:
    table = cells.reshape(-1, N_CLASSES, N_CLASSES, N_CLASSES)
    live, canary = table.sum(axis=(1, 3)), table.sum(axis=(1, 2))
    rejected: BoolArray = chi2_p_values(canary, live) < ALPHA
    return rejected


def same_margin_class_test(cells: FloatArray, n: int) -> BoolArray:
    """Paired z-tests of each class's share difference against +-margin, Bonferroni over 2K, at n."""
    table = cells.reshape(-1, N_CLASSES, N_CLASSES, N_CLASSES).sum(axis=1)  # live x canary
    critical = _normal_quantile(1 - ALPHA / (2 * N_CLASSES))
    rejected = np.zeros(table.shape[0], dtype=bool)
    for c in range(N_CLASSES):
        plus = table[:, :, c].sum(1) - table[:, c, c]
        minus = table[:, c, :].sum(1) - table[:, c, c]
        mean = (plus - minus) / n
        se = np.sqrt(np.maximum((plus + minus) / n - mean**2, 1e-12) / n)
        rejected |= ((mean - CLASS_MARGIN) / se > critical) | ((mean + CLASS_MARGIN) / se < -critical)
    return rejected


def _accuracy_counts(cells: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Counts of (canary right & live wrong), (canary wrong & live right), and all requests."""
    table = cells.reshape(-1, N_CLASSES, N_CLASSES, N_CLASSES)
    eye = np.eye(N_CLASSES, dtype=bool)
    live_right = eye[:, :, None]
    canary_right = eye[:, None, :]
    gained = (table * (canary_right & ~live_right)).sum(axis=(1, 2, 3))
    lost = (table * (~canary_right & live_right)).sum(axis=(1, 2, 3))
    return gained, lost, table.sum(axis=(1, 2, 3))


def chi2_accuracy_test(cells: FloatArray, n: int) -> BoolArray:
    table = cells.reshape(-1, N_CLASSES, N_CLASSES, N_CLASSES)
    eye = np.eye(N_CLASSES, dtype=bool)
    live_right = (table * eye[:, :, None]).sum(axis=(1, 2, 3))
    canary_right = (table * eye[:, None, :]).sum(axis=(1, 2, 3))
    rows_canary = np.stack([canary_right, n - canary_right], axis=-1)
    rows_live = np.stack([live_right, n - live_right], axis=-1)
    rejected: BoolArray = chi2_p_values(rows_canary, rows_live) < ALPHA
    return rejected


def same_margin_accuracy_test(cells: FloatArray, n: int) -> BoolArray:
    """Paired non-inferiority z-test at one-sided alpha / 2: rejects 'canary not worse by > margin' ."""
    gained, lost, _ = _accuracy_counts(cells)
    mean = (gained - lost) / n
    se = np.sqrt(np.maximum((gained + lost) / n - mean**2, 1e-12) / n)
    rejected: BoolArray = (mean + ACCURACY_MARGIN) / se < -_normal_quantile(1 - ALPHA / 2)
    return rejected


def _normal_quantile(probability: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(probability))


def power_at(joint: FloatArray, test: Test, n: int, samples: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    cells = rng.multinomial(n, joint.ravel(), size=samples).astype(np.float64)
    return float(test(cells, n).mean())


def sample_size_for_power(joint: FloatArray, test: Test, samples: int, seed: int, limit: int = 2_000_000) -> int:
    """Smallest n (to about 1%) at which ``test`` rejects with probability >= POWER; common random numbers."""
    low, high = 2, 4
    while power_at(joint, test, high, samples, seed) < POWER:
        low, high = high, high * 2
        if high > limit:
            return limit
    while high - low > max(1, low // 100):
        middle = (low + high) // 2
        if power_at(joint, test, middle, samples, seed) >= POWER:
            high = middle
        else:
            low = middle
    return high


@dataclass(frozen=True)
class Scenario:
    name: str
    key: str
    streams: int


SCENARIOS = (
    Scenario("A/A", "aa", 1000),
    Scenario("A/A split", "aa_split", 1000),
    Scenario("collapse", "collapse", 200),
    Scenario("shift 5", "shift5", 200),
    Scenario("shift 2", "shift2", 200),
    Scenario("accuracy drop", "accuracy_drop", 200),
)


def check_chi2_against_library(rng: np.random.Generator) -> None:
    """The vectorised chi-square must give chi2_homogeneity's p-values."""
    first = rng.integers(0, 40, size=(50, N_CLASSES)).astype(np.float64)
    second = rng.integers(0, 40, size=(50, N_CLASSES)).astype(np.float64)
    first[0] = [0, 5, 0]
    second[0] = [0, 7, 0]
    ours = chi2_p_values(first, second)
    reference = [chi2_homogeneity(a, b).p_value for a, b in zip(first, second, strict=True)]
    if not np.allclose(ours, reference, rtol=1e-9, atol=1e-12):
        raise AssertionError("vectorised chi-square differs from monitor.core.stats.divergence.chi2_homogeneity")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the streams and a quarter of the events")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--chunk", type=int, default=20, help="streams simulated at once (about 15 MB each)")
    args = parser.parse_args()
    started = time.time()
    rng = np.random.default_rng(args.seed)
    check_chi2_against_library(rng)
    steps = CAP // 4 if args.quick else CAP
    err = Console(stderr=True)
    results: dict[str, Outcome] = {}
    columns = (
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        scale = 10 if args.quick else 1
        tasks = {s.key: progress.add_task(s.name, total=max(s.streams // scale, 1)) for s in SCENARIOS}
        for scenario in SCENARIOS:
            joint = scenario_joint(scenario.name)
            total = max(scenario.streams // scale, 1)
            outcome = Outcome({})
            for start in range(0, total, args.chunk):
                size = min(args.chunk, total - start)
                if scenario.key == "aa_split":
                    simulated = simulate_split(size, steps, rng)
                else:
                    simulated = simulate(joint, size, steps, rng)
                run_chunk(simulated, outcome, aa=scenario.key.startswith("aa"))
                progress.advance(tasks[scenario.key], size)
            results[scenario.key] = outcome
        fixed_task = progress.add_task("fixed horizon", total=len(SCENARIOS) - 1)
        fixed: dict[str, dict[str, float]] = {}
        samples = 1000 if args.quick else 4000
        for scenario in SCENARIOS[2:]:
            joint = scenario_joint(scenario.name)
            if scenario.key == "accuracy_drop":
                tests: tuple[Test, Test] = (chi2_accuracy_test, same_margin_accuracy_test)
                per_event = LABELLED
            else:
                tests = (chi2_class_test, same_margin_class_test)
                per_event = 1.0
            n_chi2 = sample_size_for_power(joint, tests[0], samples, args.seed)
            n_same = sample_size_for_power(joint, tests[1], samples, args.seed)
            fixed[scenario.key] = {
                "n_chi2": math.ceil(n_chi2 / per_event),
                "n_same_margin": math.ceil(n_same / per_event),
                "power_chi2": power_at(joint, tests[0], n_chi2, samples, args.seed + 1),
            }
            progress.advance(fixed_task)
        for key, name in (("aa", "A/A"), ("aa_split", "A/A split")):
            aa_joint = scenario_joint(name)
            fixed[key] = {
                "false_alarm_chi2": power_at(aa_joint, chi2_class_test, fixed["shift5"]["n_chi2"], samples, args.seed),
                "false_alarm_same_margin": power_at(
                    aa_joint, same_margin_class_test, fixed["shift5"]["n_same_margin"], samples, args.seed
                ),
            }
        progress.advance(fixed_task)
    report(results, fixed, steps, args, time.time() - started)


def median(values: npt.NDArray[Any]) -> float:
    return float(np.median(values))


def detected(values: npt.NDArray[Any], steps: int) -> float:
    return float(np.mean(values < min(steps, CAP)))


def report(
    results: dict[str, Outcome],
    fixed: dict[str, dict[str, float]],
    steps: int,
    args: argparse.Namespace,
    seconds: float,
) -> None:
    out = Console(width=150)
    variants = {key: results[key].figures for key in ("aa", "aa_split")}
    per_variant: dict[str, dict[str, float]] = {}
    for key, aa in variants.items():
        blocking_alarm = np.minimum(aa["class_no_go"], aa["accuracy_no_go"]) < steps
        per_variant[key] = {
            "false_alarm_rate": float(blocking_alarm.mean()),
            "false_alarm_rate_class_margin0": detected(aa["class_no_go_margin0"], steps),
            "false_alarm_rate_disagreement": detected(aa["rate_no_go"], steps),
            "false_alarm_rate_repeated_chi2": detected(aa["class_chi2"], steps),
            "false_alarm_rate_repeated_chi2_accuracy": detected(aa["accuracy_chi2"], steps),
            "false_alarm_rate_fixed_horizon": fixed[key]["false_alarm_chi2"],
            "false_alarm_rate_fixed_horizon_same_margin": fixed[key]["false_alarm_same_margin"],
            "class_go_median_delay": median(aa["class_go"]),
            "accuracy_go_median_delay": median(aa["accuracy_go"]),
        }
    figures: dict[str, Any] = {}
    for name in per_variant["aa"]:
        if name == "false_alarm_rate_disagreement":
            # On a traffic split the models answer different requests: disagreement means nothing there.
            figures[f"aa_{name}"] = per_variant["aa"][name]
        elif name.startswith("false_alarm"):
            figures[f"aa_{name}"] = max(per_variant["aa"][name], per_variant["aa_split"][name])
    for key, values in per_variant.items():
        for name, value in values.items():
            figures[f"{key}_{name}" if key != "aa" else f"aa_demo_{name}"] = value
    table = Table(title=f"Detection: delays in canary events (median / 90th percentile; never detected = {CAP:,})")
    for column in (
        "scenario",
        "streams",
        "driftgate sequential",
        "detected",
        "repeated χ² (window 1,000, every 100)",
        "fixed-horizon χ² n (power)",
        "fixed, same margin n",
    ):
        table.add_column(column, justify="right" if column != "scenario" else "left")
    for key, title in (("aa", "A/A"), ("aa_split", "A/A split")):
        aa, rates = variants[key], per_variant[key]
        table.add_row(
            f"{title}: false alarms",
            str(len(aa["class_no_go"])),
            f"{rates['false_alarm_rate']:.3f} (margin 0: {rates['false_alarm_rate_class_margin0']:.3f})",
            "",
            f"{rates['false_alarm_rate_repeated_chi2']:.3f}",
            f"{rates['false_alarm_rate_fixed_horizon']:.3f} at n={fixed['shift5']['n_chi2']:,}",
            f"{rates['false_alarm_rate_fixed_horizon_same_margin']:.3f}",
        )
        table.add_row(
            f"{title}: time to go",
            "",
            f"class {median(aa['class_go']):,.0f}; accuracy {median(aa['accuracy_go']):,.0f}",
            f"{detected(aa['class_go'], steps):.2f}; {detected(aa['accuracy_go'], steps):.2f}",
            "",
            "",
            "",
        )
    for scenario in SCENARIOS[2:]:
        data = results[scenario.key].figures
        check = "accuracy" if scenario.key == "accuracy_drop" else "class"
        delays = data[f"{check}_no_go"]
        chi2_delays = data[f"{check}_chi2"]
        key = scenario.key
        figures[f"{key}_median_delay"] = median(delays)
        figures[f"{key}_p90_delay"] = float(np.percentile(delays, 90))
        figures[f"{key}_detected"] = detected(delays, steps)
        figures[f"{key}_median_delay_repeated_chi2"] = median(chi2_delays)
        figures[f"{key}_fixed_horizon_n"] = fixed[key]["n_chi2"]
        figures[f"{key}_fixed_horizon_power"] = round(fixed[key]["power_chi2"], 3)
        figures[f"{key}_fixed_horizon_n_same_margin"] = fixed[key]["n_same_margin"]
        figures[f"{key}_median_delay_disagreement"] = median(data["rate_no_go"])
        table.add_row(
            scenario.name,
            str(len(delays)),
            f"{median(delays):,.0f} / {np.percentile(delays, 90):,.0f}",
            f"{detected(delays, steps):.2f}",
            f"{median(chi2_delays):,.0f}",
            f"{fixed[key]['n_chi2']:,} ({fixed[key]['power_chi2']:.2f})",
            f"{fixed[key]['n_same_margin']:,}",
        )
    out.print(table)
    out.print(
        f"alpha {ALPHA}; margins: class share {CLASS_MARGIN} (1 point), accuracy {ACCURACY_MARGIN} (2 points); "
        f"disagreement max rate {MAX_DISAGREEMENT}. Sequential = PairedDifference (class scenarios) or "
        f"PairedAccuracy (accuracy drop, {LABELLED:.0%} of requests labelled), read after every event; "
        "A/A false alarms = either ever no_go within the cap. Fixed-horizon n: events at which that single test "
        f"has 80% power (by simulation); for accuracy, canary events = labelled / {LABELLED}. "
        "Same margin = the fixed-sample version of driftgate's check (same margin and alpha)."
    )
    figures.update(
        {
            "alpha": ALPHA,
            "class_margin": CLASS_MARGIN,
            "accuracy_margin": ACCURACY_MARGIN,
            "max_disagreement_rate": MAX_DISAGREEMENT,
            "cap_events": min(steps, CAP),
            "aa_streams_per_variant": len(variants["aa"]["class_no_go"]),
            "scenario_streams": len(results["collapse"].figures["class_no_go"]),
            "seed": args.seed,
            "seconds": round(seconds, 1),
        }
    )
    print(json.dumps(figures), file=sys.stdout)


if __name__ == "__main__":
    main()
