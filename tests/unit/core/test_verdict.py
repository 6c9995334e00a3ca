"""Tests of monitor.core.verdict: the rules of decide() and evaluate() on states with known counts."""

from __future__ import annotations

import calendar
from datetime import datetime
from typing import Any

import pytest
from scipy.spatial.distance import jensenshannon

from monitor.config import DeploymentSettings, parse_config
from monitor.core.checks import CheckResult
from monitor.core.events import Prediction
from monitor.core.state.codec import encode
from monitor.core.state.deployment import DeploymentState
from monitor.core.verdict import VERDICTS, decide, evaluate, iso_time

NAME = "doc-classifier"
CLASSES = ["invoice", "contract", "other"]
START = float(calendar.timegm((2026, 11, 23, 10, 0, 0, 0, 0, 0)))


def deployment(policy: dict[str, Any] | None = None, **extra: Any) -> DeploymentSettings:
    raw = {"deployments": [{"name": NAME, "classes": CLASSES, "policy": policy or {}, **extra}]}
    return parse_config(raw, {}).deployments[0]


def state_with(live: list[int], canary: list[int], span_s: float = 100.0) -> DeploymentState:
    """A state whose canary v2 and live v1 answered these counts per class over ``span_s`` seconds.

    The two models answer different requests, so no pairs form (disagreement lacks data, and does not block).
    """
    state = DeploymentState.new(NAME, classes=CLASSES)
    rows = [("canary", label, "v2") for label, n in zip(CLASSES, canary, strict=True) for _ in range(n)]
    rows += [("live", label, "v1") for label, n in zip(CLASSES, live, strict=True) for _ in range(n)]
    step = span_s / max(len(rows) - 1, 1)
    for i, (role, label, version) in enumerate(rows):
        state.add_prediction(role, Prediction(f"{role}-{i}", NAME, label, START + i * step, version))
    return state


def result(name: str, status: str, blocking: bool = True, detail: str | None = None) -> CheckResult:
    return CheckResult(name, status, None, None, detail or f"{name} is {status}", blocking)  # type: ignore[arg-type]


# -- decide -----------------------------------------------------------------------------------


def test_blocking_failure_is_no_go_with_its_detail() -> None:
    results = [
        result("class_divergence", "fail", detail="JS distance 0.41 > 0.10"),
        result("collapse", "pass"),
        result("disagreement", "warn", blocking=False),
        result("other", "insufficient_data"),
    ]
    verdict, reasons = decide(deployment(), results, canary_samples=5000, elapsed_s=60)
    assert verdict == "no_go"
    assert reasons == ["JS distance 0.41 > 0.10"]


def test_every_blocking_failure_is_a_reason() -> None:
    results = [result("a", "fail", detail="a failed"), result("b", "fail", detail="b failed")]
    assert decide(deployment(), results, 10, 0) == ("no_go", ["a failed", "b failed"])


def test_blocking_insufficient_data_is_pending() -> None:
    results = [result("a", "pass"), result("b", "insufficient_data", detail="need 400 canary")]
    verdict, reasons = decide(deployment(), results, canary_samples=10, elapsed_s=5)
    assert verdict == "pending"
    assert "need 400 canary" in reasons


@pytest.mark.parametrize(
    ("policy", "canary_samples", "elapsed_s"),
    [
        ({"max_samples": 1000}, 1000, 0.0),
        ({"max_samples": 1000}, 1500, 0.0),
        ({"max_duration_s": 600}, 0, 600.0),
        ({"max_duration_s": 600}, 0, 900.0),
    ],
)
def test_window_over_while_insufficient_is_inconclusive(policy: dict[str, Any], canary_samples: int,
                                                        elapsed_s: float) -> None:
    results = [result("a", "insufficient_data", detail="still waiting")]
    verdict, reasons = decide(deployment(policy), results, canary_samples, elapsed_s)
    assert verdict == "inconclusive"
    assert "still waiting" in reasons


@pytest.mark.parametrize(
    ("policy", "canary_samples", "elapsed_s"),
    [({}, 10**9, 10**9), ({"max_samples": 1000}, 999, 10**9), ({"max_duration_s": 600}, 10**9, 599.0)],
)
def test_window_still_open_stays_pending(policy: dict[str, Any], canary_samples: int, elapsed_s: float) -> None:
    results = [result("a", "insufficient_data")]
    assert decide(deployment(policy), results, canary_samples, elapsed_s)[0] == "pending"


def test_window_over_does_not_turn_a_failure_or_a_pass_around() -> None:
    policy = deployment({"max_samples": 10, "max_duration_s": 1})
    assert decide(policy, [result("a", "fail")], 100, 100)[0] == "no_go"
    assert decide(policy, [result("a", "pass")], 100, 100)[0] == "go"


def test_all_pass_is_go() -> None:
    verdict, _ = decide(deployment(), [result("a", "pass"), result("b", "pass")], 5000, 60)
    assert verdict == "go"


def test_non_blocking_warning_and_missing_data_do_not_hold_up_go() -> None:
    results = [
        result("a", "pass"),
        result("disagreement", "warn", blocking=False, detail="models disagree on 30%"),
        result("other", "insufficient_data", blocking=False),
    ]
    verdict, reasons = decide(deployment(), results, 5000, 60)
    assert verdict == "go"
    assert any("models disagree on 30%" in reason for reason in reasons)


def test_no_blocking_check_never_says_go() -> None:
    assert decide(deployment(), [result("a", "pass", blocking=False)], 5000, 60)[0] == "pending"
    assert decide(deployment(), [], 5000, 60)[0] == "pending"


# -- evaluate ---------------------------------------------------------------------------------


def test_no_canary_yet_is_pending() -> None:
    state = DeploymentState.new(NAME, classes=CLASSES)
    state.add_prediction("live", Prediction("r1", NAME, "invoice", START, "v1"))
    verdict = evaluate(deployment(), state)
    assert verdict.verdict == "pending"
    assert verdict.checks == []
    assert verdict.canary_version is None
    assert verdict.samples["canary"] == 0


def test_equal_distributions_are_go() -> None:
    state = state_with([250, 150, 100], [250, 150, 100])
    verdict = evaluate(deployment({"min_samples": 400}), state)
    assert verdict.verdict == "go"
    assert (verdict.live_version, verdict.canary_version) == ("v1", "v2")
    assert verdict.samples == {"live": 500, "canary": 500, "feedback": 0, "spotcheck_labels": 0}
    statuses = {check.name: check.status for check in verdict.checks}
    assert statuses["class_divergence"] == statuses["collapse"] == "pass"
    assert "reference_divergence" not in statuses


def test_collapsed_canary_is_no_go_for_collapse_and_divergence() -> None:
    live, canary = [250, 150, 100], [450, 30, 20]
    verdict = evaluate(deployment({"min_samples": 400}), state_with(live, canary))
    assert verdict.verdict == "no_go"
    by_name = {check.name: check for check in verdict.checks}
    assert by_name["collapse"].status == by_name["class_divergence"].status == "fail"
    assert by_name["class_divergence"].value == pytest.approx(jensenshannon(canary, live, base=2), rel=1e-9)
    assert by_name["collapse"].value == pytest.approx(450 / 500)
    assert by_name["collapse"].detail in verdict.reasons
    assert by_name["class_divergence"].detail in verdict.reasons


def test_too_few_samples_is_pending_and_never_go() -> None:
    verdict = evaluate(deployment({"min_samples": 400}), state_with([50, 30, 20], [50, 30, 20]))
    assert verdict.verdict == "pending"
    waiting = [check for check in verdict.checks if check.blocking]
    assert {check.status for check in waiting} == {"insufficient_data"}
    # Checks waiting for the same samples say the same sentence: the reasons give it once.
    details = [check.detail for check in waiting]
    repeated = {detail for detail in details if details.count(detail) > 1}
    assert repeated
    assert repeated <= set(verdict.reasons)
    assert len(verdict.reasons) == len(set(verdict.reasons))


def test_max_samples_reached_while_insufficient_is_inconclusive() -> None:
    # 100 canary answers but 50 live ones: the live side lacks data when the canary budget runs out.
    verdict = evaluate(deployment({"min_samples": 80, "max_samples": 100}), state_with([25, 15, 10], [50, 30, 20]))
    assert verdict.verdict == "inconclusive"


def test_max_duration_reached_while_insufficient_is_inconclusive() -> None:
    state = state_with([5, 3, 2], [5, 3, 2], span_s=1000.0)
    assert evaluate(deployment({"min_samples": 400, "max_duration_s": 999}), state).verdict == "inconclusive"
    assert evaluate(deployment({"min_samples": 400, "max_duration_s": 1001}), state).verdict == "pending"


def test_reference_divergence_only_when_configured() -> None:
    state = state_with([250, 150, 100], [250, 150, 100])
    without = evaluate(deployment({"min_samples": 400}), state)
    assert "reference_divergence" not in [check.name for check in without.checks]
    reference = {"class_distribution": {"invoice": 0.5, "contract": 0.3, "other": 0.2}}
    with_reference = evaluate(deployment({"min_samples": 400}, reference=reference), state)
    names = [check.name for check in with_reference.checks]
    assert names.count("reference_divergence") == 1
    assert with_reference.verdict == "go"
    shifted = {"class_distribution": {"invoice": 0.1, "contract": 0.1, "other": 0.8}}
    failed = evaluate(deployment({"min_samples": 400}, reference=shifted), state)
    assert failed.verdict == "no_go"
    check = next(c for c in failed.checks if c.name == "reference_divergence")
    assert check.value == pytest.approx(jensenshannon([250, 150, 100], [0.1, 0.1, 0.8], base=2), rel=1e-9)


def test_verdict_object_has_the_contract_shape() -> None:
    state = state_with([250, 150, 100], [250, 150, 100])
    data = evaluate(deployment({"min_samples": 400}), state).to_dict()
    assert set(data) >= {"deployment", "verdict", "reasons", "checks", "samples", "live_version",
                         "canary_version", "evaluated_at"}
    assert data["deployment"] == NAME
    assert data["verdict"] in VERDICTS
    assert set(data["samples"]) == {"live", "canary", "feedback", "spotcheck_labels"}
    for check in data["checks"]:
        assert {"name", "status", "value", "threshold", "detail"} <= set(check)
    evaluated = datetime.fromisoformat(data["evaluated_at"])
    assert data["evaluated_at"].endswith("Z")
    assert evaluated.timestamp() == pytest.approx(state.watermark, abs=1e-3)


def test_iso_time() -> None:
    assert iso_time(START) is not None and iso_time(START).startswith("2026-11-23T10:00:00")  # type: ignore[union-attr]
    assert iso_time(0.0) is None


def test_evaluate_is_pure() -> None:
    state = state_with([250, 150, 100], [450, 30, 20])
    before = encode(state)
    first = evaluate(deployment({"min_samples": 400}), state).to_dict()
    assert evaluate(deployment({"min_samples": 400}), state).to_dict() == first
    assert encode(state) == before
