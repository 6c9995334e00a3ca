"""Simulated traffic of a document classifier: live and canary answers and delayed user feedback.

Pure and seeded: the same seed gives the same events. Scenarios for the canary:

- ``good``: an equal retrain, as accurate as live, agreeing with it on most requests;
- ``collapse``: calls nearly everything an invoice;
- ``shift``: its class mix moved by 10 points, from contract to invoice.

``canary_feature_shift`` (e.g. ``{"text_len": 2000}``) feeds the canary inputs moved by
that much on numeric features, as a canary behind a changed preprocessing step would
see them; it draws no random numbers, so every scenario's traffic stays the same.
"""

from __future__ import annotations

import heapq
import random
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

CLASSES = ("invoice", "contract", "other")
TRUE_MIX = (0.5, 0.3, 0.2)
SCENARIOS = ("good", "collapse", "shift")
LANGS = ("de", "en", "fr")
TRUTHS_KEPT = 100_000


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One event to produce: its role (live, canary, feedback), Kafka key and JSON payload."""

    role: str
    key: str
    payload: dict[str, Any]


@dataclass
class ScenarioModel:
    """How a model answers: its accuracy and its bias."""

    accuracy: float = 0.9
    collapse_to_invoice: float = 0.0
    contract_to_invoice: float = 0.0


SCENARIO_MODELS = {
    "good": ScenarioModel(),
    "collapse": ScenarioModel(collapse_to_invoice=0.9),
    # 10 points of the 30% contract mass move to invoice: 1/3 of contract answers.
    "shift": ScenarioModel(contract_to_invoice=1 / 3),
}


@dataclass
class TrafficSimulator:
    """Generates requests answered by both models, and feedback on some of them later."""

    scenario: str = "good"
    deployment: str = "doc-classifier"
    seed: int = 0
    live_version: str = "v41"
    canary_version: str = "v42"
    agreement: float = 0.85
    feedback_rate: float = 0.3
    feedback_delay_s: tuple[float, float] = (1.0, 30.0)
    canary_feature_shift: dict[str, float] = field(default_factory=dict)
    _rng: random.Random = field(init=False)
    _pending: list[tuple[float, int, SimEvent]] = field(init=False, default_factory=list)
    _n: int = field(init=False, default=0)
    _truths: OrderedDict[str, str] = field(init=False, default_factory=OrderedDict)

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIO_MODELS:
            raise ValueError(f"unknown scenario {self.scenario!r}; one of {', '.join(SCENARIOS)}")
        self._rng = random.Random(self.seed)

    def _answer(self, truth: str, model: ScenarioModel) -> str:
        rng = self._rng
        wrong = [c for c in CLASSES if c != truth]
        label = truth if rng.random() < model.accuracy else rng.choice(wrong)
        if label == "contract" and rng.random() < model.contract_to_invoice:
            label = "invoice"
        if rng.random() < model.collapse_to_invoice:
            label = "invoice"
        return label

    def _prediction(
        self, request_id: str, ts: float, label: str, version: str, features: dict[str, Any]
    ) -> dict[str, Any]:
        rng = self._rng
        top = round(rng.uniform(0.5, 0.99), 3)
        rest = [c for c in CLASSES if c != label]
        split = round(rng.uniform(0, 1 - top), 3)
        scores = {label: top, rest[0]: split, rest[1]: round(max(0.0, 1 - top - split), 3)}
        return {
            "request_id": request_id,
            "ts": ts,
            "deployment": self.deployment,
            "model_version": version,
            "label": label,
            "scores": scores,
            "features": features,
        }

    def request(self, ts: float) -> list[SimEvent]:
        """One request at event time ``ts``: both answers, plus any feedback now due."""
        rng = self._rng
        self._n += 1
        request_id = f"r-{self.seed}-{self._n}"
        truth = rng.choices(CLASSES, TRUE_MIX)[0]
        self._truths[request_id] = truth
        if len(self._truths) > TRUTHS_KEPT:
            self._truths.popitem(last=False)
        features = {
            "n_pages": rng.randint(1, 4) if truth == "invoice" else rng.randint(2, 30),
            "lang": rng.choice(LANGS),
            "text_len": int(rng.gauss(1500 if truth == "invoice" else 6000, 400)),
        }
        live_label = self._answer(truth, SCENARIO_MODELS["good"])
        canary_model = SCENARIO_MODELS[self.scenario]
        # An equal retrain mostly repeats live's answer; its own errors are independent.
        if self.scenario == "good" and rng.random() < self.agreement:
            canary_label = live_label
        else:
            canary_label = self._answer(truth, canary_model)
        events = [
            SimEvent("live", request_id, self._prediction(request_id, ts, live_label, self.live_version, features)),
            SimEvent(
                "canary", request_id,
                self._prediction(request_id, ts, canary_label, self.canary_version, self._canary_inputs(features)),
            ),
        ]
        if rng.random() < self.feedback_rate:
            due = ts + rng.uniform(*self.feedback_delay_s)
            feedback = {
                "request_id": request_id, "ts": due, "deployment": self.deployment,
                "label": truth, "source": "user",
            }
            heapq.heappush(self._pending, (due, self._n, SimEvent("feedback", request_id, feedback)))
        while self._pending and self._pending[0][0] <= ts:
            events.append(heapq.heappop(self._pending)[2])
        return events

    def _canary_inputs(self, features: dict[str, Any]) -> dict[str, Any]:
        if not self.canary_feature_shift:
            return features
        shift = self.canary_feature_shift
        return {name: value + shift[name] if name in shift else value for name, value in features.items()}

    def truth_of(self, request_id: str) -> str | None:
        """The true class of a recent request (what a spot-checker would answer), if still known."""
        return self._truths.get(request_id)

    def stream(self, n_requests: int, start_ts: float, rate_per_s: float) -> Iterator[SimEvent]:
        """``n_requests`` requests spaced evenly in event time at ``rate_per_s``."""
        for i in range(n_requests):
            yield from self.request(start_ts + i / rate_per_s)
