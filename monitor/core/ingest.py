"""From raw records to state: route by topic, decode, validate, fold in; bad input becomes dead letters.

Pure: no I/O happens here. The caller hands in a batch of records and gets back the
dead letters to publish; afterwards every record is accounted for, either in a
deployment's state or in the returned dead letters (consumed = processed + dead).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.config import DeploymentSettings, Settings
from monitor.core.events import UNKNOWN_DEPLOYMENT, EventDecoder, load_object, plain_prediction
from monitor.core.evidence import EvidenceSettings
from monitor.core.profile import ReferenceProfile
from monitor.core.records import DeadLetter, Record
from monitor.core.state.deployment import DeploymentState
from monitor.core.state.feature_intake import FeatureIntake, IntakeSettings
from monitor.core.state.spotcheck import SpotcheckSampler
from monitor.errors import DriftgateError, EventError

UNROUTED = "unknown"


@dataclass(frozen=True, slots=True)
class Route:
    """What a record of one topic is for: a deployment's state, its role and its decoder."""

    state: DeploymentState
    role: str
    decoder: EventDecoder


def new_state(settings: DeploymentSettings, profile: ReferenceProfile | None = None) -> DeploymentState:
    """An empty state for a configured deployment (with its reference profile, if the config names one)."""
    state = DeploymentState.new(
        settings.name,
        classes=settings.classes,
        max_classes=settings.max_classes,
        max_open_requests=settings.join.max_open_requests,
        join_ttl_s=settings.join.ttl_s,
        window_s=settings.window_s,
        windows_kept=settings.windows_kept,
        feedback_max_requests=settings.feedback.max_requests,
        feedback_ttl_s=settings.feedback.ttl_s,
        spotcheck=SpotcheckSampler(
            max_per_minute=settings.spotcheck.max_per_minute,
            priority=dict(settings.spotcheck.priority),
            priority_share=settings.spotcheck.priority_share,
        ),
        review_queue_size=settings.spotcheck.queue_size,
        evidence=evidence_settings(settings) if settings.policy.mode == "sequential" else None,
    )
    attach_features(state, settings, profile)
    return state


def attach_features(state: DeploymentState, settings: DeploymentSettings, profile: ReferenceProfile | None) -> None:
    """Give a state the configured feature intake and the reference profile's features and class shares."""
    if (settings.reference.profile is None) != (profile is None):
        # The profile is read once, where the sidecar is assembled; a state without the one its
        # config names would judge without the reference, silently.
        raise DriftgateError(
            f"deployment {settings.name!r}: reference.profile is {settings.reference.profile}, "
            f"and {'no' if profile is None else 'a'} profile was given"
        )
    drift = settings.drift
    intake_settings = IntakeSettings(
        bins=drift.bins, learn_from=drift.learn_from, max_new_categories=drift.max_new_categories,
        sample_rows=drift.sample_rows, sample_every=drift.sample_every,
    )
    intake = FeatureIntake(intake_settings, profile.layout if profile is not None else None)
    state.use_features(intake, profile.features if profile is not None else None)
    state.reference_classes = profile.class_distribution() or None if profile is not None else None


def evidence_settings(settings: DeploymentSettings) -> EvidenceSettings:
    """The sequential tests' parameters from a deployment's policy."""
    checks = settings.policy.checks
    return EvidenceSettings(
        alpha=settings.policy.alpha,
        class_margin=checks.class_divergence.margin,
        max_disagreement=checks.disagreement.max_rate,
        accuracy_margin=checks.accuracy.margin,
    )


def _unknown_deployment(name: str, routes: list[Route]) -> EventError:
    """The error for an event naming a deployment that the topic it came from does not feed."""
    known = ", ".join(sorted(route.state.name for route in routes))
    return EventError(UNKNOWN_DEPLOYMENT, f"deployment {name[:64]!r} is not configured on this topic ({known})")


def _plain_routes(routes: list[Route]) -> dict[str, Route] | None:
    """Deployment name -> route when every route of a topic takes plain predictions, else None."""
    if all(route.role != "feedback" and route.decoder.plain_names for route in routes):
        return {route.state.name: route for route in routes}
    return None


class Ingest:
    """Routes, decodes and folds records into the deployments' states."""

    def __init__(
        self,
        settings: Settings,
        states: dict[str, DeploymentState] | None = None,
        profiles: Mapping[str, ReferenceProfile] | None = None,
    ) -> None:
        """``profiles``: each deployment's reference profile, for those whose config names one."""
        self.max_bytes = settings.kafka.max_message_bytes
        profiles = profiles or {}
        self.profiles = profiles
        self.states: dict[str, DeploymentState] = states or {
            d.name: new_state(d, profiles.get(d.name)) for d in settings.deployments
        }
        self.routes: dict[str, list[Route]] = {}
        for deployment in settings.deployments:
            fields = deployment.fields.model_dump()
            decoder = EventDecoder(fields, self.max_bytes)
            for role in ("live", "canary", "feedback"):
                topic = getattr(deployment.topics, role)
                route = Route(self.states[deployment.name], role, decoder)
                self.routes.setdefault(topic, []).append(route)
        # topic -> its routes, and (for topics of predictions with the contract's field names only,
        # shared or not) deployment name -> route: their messages take plain_prediction's one pass.
        self._by_topic: dict[str, tuple[list[Route], dict[str, Route] | None]] = {
            topic: (routes, _plain_routes(routes)) for topic, routes in self.routes.items()
        }
        # (deployment, reason) -> dead letters so far
        self.dead_letters: dict[tuple[str, str], int] = {}
        # (topic, partition) -> next offset to read: what a checkpoint or a commit stores
        self.positions: dict[tuple[str, int], int] = {}
        self.consumed = 0

    @property
    def topics(self) -> list[str]:
        return list(self.routes)

    def process(self, records: list[Record], now: float) -> list[DeadLetter]:
        """Fold a batch into state; returns the records that could not be used, with reasons.

        Hot path: per record one JSON parse, one validation and a handful of dict updates; a
        plain prediction is parsed and checked in one pass (:func:`plain_prediction`).
        ``now`` (epoch seconds) stands in for the event time of records with neither a
        ``ts`` field nor a Kafka timestamp.
        """
        dead: list[DeadLetter] = []
        by_topic = self._by_topic
        max_bytes = self.max_bytes
        for record in records:
            routes, plain = by_topic[record.topic]
            route = routes[0]
            try:
                value = record.value
                if plain is not None and value and len(value) <= max_bytes:
                    prediction = plain_prediction(value, record.timestamp or now)
                    if prediction is not None:
                        target = plain.get(prediction.deployment)
                        if target is None:  # well-formed, for a deployment not here: no second parse
                            raise _unknown_deployment(prediction.deployment, routes)
                        target.state.add_prediction(target.role, prediction)
                        continue
                obj = load_object(value, max_bytes)
                if obj.get("deployment") != route.state.name or len(routes) > 1:
                    # Not the plain case (shared topic, remapped fields or a wrong name): look closer.
                    route = self._route(routes, obj)
                received = record.timestamp or now
                if route.role == "feedback":
                    route.state.add_feedback(route.decoder.feedback(obj, received))
                else:
                    route.state.add_prediction(route.role, route.decoder.prediction(obj, received))
            except EventError as error:
                deployment = route.state.name if len(routes) == 1 else None
                dead.append(DeadLetter(record, error.reason, error.detail, deployment))
        # Records of a partition arrive in offset order, so the last one of each sets its position.
        self.positions.update({(r.topic, r.partition): r.offset + 1 for r in records})
        self.consumed += len(records)
        for letter in dead:
            key = (letter.deployment or UNROUTED, letter.reason)
            self.dead_letters[key] = self.dead_letters.get(key, 0) + 1
        for state in self.states.values():
            state.tick()
        return dead

    @staticmethod
    def _route(routes: list[Route], obj: dict[str, object]) -> Route:
        """The route whose deployment the object names; a missing name is left to validation."""
        name = routes[0].decoder.deployment_of(obj)
        if not isinstance(name, str) or not name:
            return routes[0]
        for route in routes:
            if route.decoder.deployment_of(obj) == route.state.name:
                return route
        raise _unknown_deployment(name, routes)

    @property
    def processed(self) -> int:
        return sum(sum(state.events.values()) for state in self.states.values())

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letters.values())

    def figures_to_dict(self) -> dict[str, Any]:
        """The figures kept beside the deployments' states (positions, dead letters, consumed) as JSON-able data."""
        return {
            "positions": [[topic, partition, offset] for (topic, partition), offset in self.positions.items()],
            "dead_letters": [[deployment, reason, n] for (deployment, reason), n in self.dead_letters.items()],
            "consumed": self.consumed,
        }

    def load_figures(self, data: dict[str, Any]) -> None:
        """Take over the figures of :meth:`figures_to_dict` (when resuming from a checkpoint)."""
        self.positions = {(str(topic), int(partition)): int(offset) for topic, partition, offset in data["positions"]}
        self.dead_letters = {(str(dep), str(reason)): int(n) for dep, reason, n in data["dead_letters"]}
        self.consumed = int(data["consumed"])
