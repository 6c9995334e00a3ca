"""What people ask of a running sidecar: the review queue and its labels, reports, profiles.

Each action copies what it needs under the sidecar's lock and does its slow part (a
report, a profile's encoding) outside it, so consuming goes on meanwhile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from monitor.core.profile import ReferenceProfile
from monitor.core.state.codec import clone
from monitor.core.state.spotcheck import SpotcheckCase
from monitor.core.verdict import iso_time
from monitor.errors import LabelError, NotReadyError, ReportError

if TYPE_CHECKING:
    from monitor.sidecar.service import Sidecar

UNSURE = "unsure"


class Actions:
    """The requests a reviewer, the API or the demo makes of one sidecar."""

    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar

    def review_queue(self, name: str) -> list[dict[str, Any]]:
        """The picked cases of a deployment still waiting for a label, newest first."""
        with self.sidecar.lock:
            cases = list(self.sidecar.ingest.states[name].review.cases.values())  # cases are never changed
        return [spotcheck_event(case) for case in reversed(cases)]

    def submit_label(self, name: str, request_id: str, label: str) -> dict[str, Any]:
        """A reviewer's answer: a class goes to the feedback topic as a spot-check label; 'unsure'
        takes the case off the page. LabelError for a class the deployment does not know,
        NotReadyError before the Kafka producer runs."""
        sidecar = self.sidecar
        deployment = sidecar.settings.deployment(name)
        assert deployment is not None
        with sidecar.lock:
            state = sidecar.ingest.states[name]
            if label == UNSURE:
                state.review.settle(request_id)
                return {"request_id": request_id, "label": None, "sent": False}
            if label not in state.classes:
                raise LabelError(f"{label[:64]!r} is not a class of {name!r}; one of {', '.join(state.classes)}")
            ts = state.watermark or sidecar.clock()
        sink = sidecar.sink
        if sink is None:
            raise NotReadyError("the Kafka producer is not running yet")
        event = {"request_id": request_id, "deployment": name, "label": label, "source": "spotcheck",
                 "ts": iso_time(ts)}
        sink.send(deployment.topics.feedback, request_id.encode(), orjson.dumps(event))
        sink.flush(5.0)
        return {"request_id": request_id, "label": label, "sent": True}

    def report(self, name: str, role: str) -> str:
        """The Evidently report of the reference against a role's recent rows (ReportError: not enough yet)."""
        # Imported here: Evidently takes seconds to import, and only a report needs it.
        from monitor.reports.evidently_report import report_html

        sidecar = self.sidecar
        deployment = sidecar.settings.deployment(name)
        assert deployment is not None
        with sidecar.lock:
            state = sidecar.ingest.states[name]
            current = state.intake.sample(role)
            layout = state.intake.layout
        profile = sidecar.profiles.get(name)
        if profile is not None and deployment.reference.profile is not None:
            reference = profile.sample
            baseline = f"the reference {profile.source or deployment.reference.profile.name}"
        else:
            if role == "live":
                raise ReportError("without a reference profile (reference.profile) live is the baseline; "
                                  "report on the canary")
            with sidecar.lock:
                reference = state.intake.sample("live")
            baseline = "live's recent traffic"
        kinds = {column: spec.kind for column, spec in layout.columns.items()} if layout is not None else {}
        title = f"{name}: recent {role} traffic against {baseline}"
        return report_html(title, reference, current, kinds)

    def live_profile(self, name: str) -> dict[str, Any]:
        """A reference profile taken from live traffic of the current comparison (ReportError: none yet)."""
        sidecar = self.sidecar
        with sidecar.lock:
            state = sidecar.ingest.states[name]
            state.flush_features()
            comparison, layout = state.current, state.intake.layout
            live = comparison.features.get("live") if comparison is not None else None
            if comparison is None or layout is None or live is None or live.rows == 0:
                raise ReportError("no live features in the current comparison yet: a profile needs some")
            profile = ReferenceProfile(
                name, live.rows, dict(comparison.live.counts), layout,
                clone(live),
                source=f"live traffic since {iso_time(comparison.live_from)}",
                sample=state.intake.sample("live"),
            )
        return profile.to_dict()


def spotcheck_event(case: SpotcheckCase) -> dict[str, Any]:
    """The spot-check topic's JSON for a case: docs/contract.md §2 fields plus the canary version."""
    return {
        "request_id": case.request_id,
        "deployment": case.deployment,
        "live_label": case.live_label,
        "canary_label": case.canary_label,
        "live_scores": case.live_scores,
        "canary_scores": case.canary_scores,
        "features": case.features,
        "ts": iso_time(case.ts),
        "canary_version": case.canary_version,
        "priority": case.priority,
    }
