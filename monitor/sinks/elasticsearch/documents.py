"""What the Elasticsearch sink writes: documents, their ids and indices, and the index templates.

Pure: no client, no I/O. Three kinds of document, each in its own daily index
``<prefix>-<kind>-YYYY.MM.DD`` (the day of the event time the document speaks of):

- ``windows``: one document per closed tumbling window, deployment, role and class, so
  Kibana can sum counts by class and split by role without nested fields;
- ``verdicts``: one per verdict change, with its checks and reasons (what the
  verdicts topic carries);
- ``spotcheck``: one per disagreement picked for review.

Every id is derived from what the document is about (deployment, role, window start,
class; deployment, canary version, verdict, evaluation time; deployment, request id),
and the day of its index from its own event time, so sending a document twice, after a
retry or a restart, overwrites it instead of adding a second one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from monitor.core.checks import precision_figures, reference_divergence_figures
from monitor.core.state.codec import clone
from monitor.core.state.deployment import DeploymentState
from monitor.core.state.spotcheck import SpotcheckCase
from monitor.core.state.windows import Window
from monitor.core.stats.divergence import chi2_homogeneity, js_distance, psi

Kind = Literal["window", "verdict", "spotcheck"]
KINDS: tuple[Kind, ...] = ("window", "verdict", "spotcheck")
# the middle part of each kind's index names: <prefix>-windows-2026.11.23
INDEX_PARTS: dict[Kind, str] = {"window": "windows", "verdict": "verdicts", "spotcheck": "spotcheck"}
ROLES = ("live", "canary")


@dataclass(frozen=True, slots=True)
class Document:
    """One document to index: where it goes, its id, and its source."""

    kind: Kind
    deployment: str
    index: str
    doc_id: str
    body: dict[str, Any]


def index_name(prefix: str, kind: Kind, ts: float) -> str:
    """The daily index of a document of ``kind`` about event time ``ts`` (UTC day)."""
    day = datetime.fromtimestamp(max(ts, 0.0), tz=UTC).strftime("%Y.%m.%d")
    return f"{prefix}-{INDEX_PARTS[kind]}-{day}"


def index_pattern(prefix: str, kind: Kind) -> str:
    """The wildcard naming every index of one kind (for templates, data views, searches)."""
    return f"{prefix}-{INDEX_PARTS[kind]}-*"


def document_id(*parts: str) -> str:
    """A stable id from the parts that name a document (the same parts always give the same id)."""
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


# -- windows ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowReport:
    """A closed window and what the state knew when it closed, copied out of the state."""

    deployment: str
    length_s: float
    classes: tuple[str, ...]
    window: Window
    canary_version: str | None
    live_version: str | None
    feedback: dict[str, Any] | None
    reference: Mapping[str, float] | None

    @property
    def signature(self) -> str:
        """Changes when a late event changes the window (it is then sent again, under the same ids)."""
        return window_signature(self.window)


def window_signature(window: Window) -> str:
    return f"{window.live.total}/{window.canary.total}/{window.pairs}/{window.disagreements}"


def closed_windows(
    state: DeploymentState, reference: Mapping[str, float] | None, sent: Mapping[float, str]
) -> list[WindowReport]:
    """The windows that closed (the watermark passed their end) and were not sent as they are now.

    Reads the state: call it where the state may be read (the sidecar's lock), it copies
    what it returns.
    """
    windows = state.windows
    length = windows.length_s
    comparison = state.current
    reports = []
    for window in windows.recent():
        if window.start + length > state.watermark or sent.get(window.start) == window_signature(window):
            continue
        reports.append(WindowReport(
            deployment=state.name,
            length_s=length,
            classes=tuple(state.classes),
            window=clone(window),  # a snapshot: the live window goes on counting
            canary_version=(comparison.canary_version or None) if comparison is not None else None,
            live_version=comparison.live_version() if comparison is not None else None,
            feedback=precision_figures(state.classes, comparison.outcomes) if comparison is not None else None,
            reference=dict(reference) if reference else None,
        ))
    return reports


def _divergence(canary: Sequence[int], live: Sequence[int]) -> dict[str, float] | None:
    if sum(canary) == 0 or sum(live) == 0:
        return None
    return {"js": js_distance(canary, live), "psi": psi(live, canary),
            "chi2_pvalue": chi2_homogeneity(canary, live).p_value}


def _interval(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: item[key] for key in ("estimate", "lower", "upper", "labelled")}


def window_documents(report: WindowReport, prefix: str, replica: str | None = None) -> list[Document]:
    """One document per role and class of a closed window (every known class, zeros included).

    ``replica`` names the sidecar when several share a deployment: each writes its own part of
    the window, under its own ids, and Kibana sums them.
    """
    window, classes = report.window, list(report.classes)
    start, end = window.start, window.start + report.length_s
    counts = {"live": window.live.vector(classes), "canary": window.canary.vector(classes)}
    divergence = _divergence(counts["canary"], counts["live"])
    index = index_name(prefix, "window", start)
    documents = []
    for role in ROLES:
        role_counts = counts[role]
        total = sum(role_counts)
        versions = sorted(v for v in window.live_versions.counts if v) if role == "live" else (
            [report.canary_version] if report.canary_version and total else [])
        shared: dict[str, Any] = {
            "@timestamp": _epoch_iso(start),
            "window": {"start": _epoch_iso(start), "end": _epoch_iso(end), "length_s": report.length_s},
            "deployment": report.deployment,
            "role": role,
            "total": total,
            "model_versions": versions,
            "canary_version": report.canary_version,
            "live_version": report.live_version,
            "pairs": window.pairs,
            "disagreements": window.disagreements,
            "disagreement_rate": window.disagreements / window.pairs if window.pairs else None,
            "divergence": divergence,
        }
        if replica is not None:
            shared["replica"] = replica
        if report.reference and total:
            figures = reference_divergence_figures(classes, role_counts, dict(report.reference))
            shared["reference_divergence"] = {"js": figures.js, "psi": figures.psi,
                                              "chi2_pvalue": figures.chi2_pvalue}
        feedback = report.feedback[role] if report.feedback else None
        if feedback is not None:
            shared["accuracy"] = _interval(feedback["accuracy"])
        for label, count in zip(classes, role_counts, strict=True):
            body = {**shared, "class": label, "count": count, "share": count / total if total else None}
            if feedback is not None:
                body["precision"] = _interval(feedback["precision"][label])
            parts = ("window", report.deployment, role, f"{start:.3f}", label)
            doc_id = document_id(*parts, replica) if replica is not None else document_id(*parts)
            documents.append(Document("window", report.deployment, index, doc_id, body))
    return documents


def _epoch_iso(ts: float) -> str:
    return datetime.fromtimestamp(max(ts, 0.0), tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- verdicts and spot-check cases -------------------------------------------------------------------


def verdict_document(verdict: Mapping[str, Any], prefix: str, published_at: float) -> Document:
    """The document of one verdict change (the verdict object, plus what Kibana filters on)."""
    evaluated_at = verdict.get("evaluated_at")
    deployment = str(verdict["deployment"])
    ts = _parse_iso(evaluated_at) if evaluated_at else published_at
    checks = [dict(check) for check in verdict.get("checks") or []]
    body = {
        "@timestamp": evaluated_at or _epoch_iso(published_at),
        "published_at": _epoch_iso(published_at),
        **{key: verdict.get(key) for key in ("deployment", "verdict", "reasons", "samples", "live_version",
                                               "canary_version", "evaluated_at")},
        "checks": checks,
        "failed_checks": [c["name"] for c in checks if c.get("status") == "fail"],
        "warned_checks": [c["name"] for c in checks if c.get("status") == "warn"],
    }
    # The parts that name one verdict change (the same as its webhook Idempotency-Key's).
    doc_id = document_id("verdict", deployment, str(verdict.get("canary_version")), str(verdict.get("verdict")),
                         str(evaluated_at))
    return Document("verdict", deployment, index_name(prefix, "verdict", ts), doc_id, body)


def spotcheck_document(case: SpotcheckCase, prefix: str) -> Document:
    """The document of one disagreement picked for review."""
    body = {
        "@timestamp": _epoch_iso(case.ts),
        "request_id": case.request_id,
        "deployment": case.deployment,
        "live_label": case.live_label,
        "canary_label": case.canary_label,
        "live_score": (case.live_scores or {}).get(case.live_label),
        "canary_score": (case.canary_scores or {}).get(case.canary_label),
        "live_scores": case.live_scores,
        "canary_scores": case.canary_scores,
        "features": case.features,
        "canary_version": case.canary_version,
        "priority": case.priority,
    }
    doc_id = document_id("spotcheck", case.deployment, case.request_id)
    return Document("spotcheck", case.deployment, index_name(prefix, "spotcheck", case.ts), doc_id, body)


def _parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- index templates -----------------------------------------------------------------------------------

_KEYWORD = {"type": "keyword"}
_DATE = {"type": "date"}
_FLOAT = {"type": "double"}
_LONG = {"type": "long"}
_STORED_ONLY = {"type": "object", "enabled": False}  # kept in _source, not indexed: keys are the user's
_INTERVAL = {"properties": {"estimate": _FLOAT, "lower": _FLOAT, "upper": _FLOAT, "labelled": _LONG}}
_DIVERGENCE = {"properties": {"js": _FLOAT, "psi": _FLOAT, "chi2_pvalue": _FLOAT}}

MAPPINGS: dict[Kind, dict[str, Any]] = {
    "window": {
        "@timestamp": _DATE,
        "window": {"properties": {"start": _DATE, "end": _DATE, "length_s": _FLOAT}},
        "deployment": _KEYWORD, "role": _KEYWORD, "class": _KEYWORD, "replica": _KEYWORD,
        "count": _LONG, "share": _FLOAT, "total": _LONG,
        "model_versions": _KEYWORD, "canary_version": _KEYWORD, "live_version": _KEYWORD,
        "pairs": _LONG, "disagreements": _LONG, "disagreement_rate": _FLOAT,
        "divergence": _DIVERGENCE, "reference_divergence": _DIVERGENCE,
        "precision": _INTERVAL, "accuracy": _INTERVAL,
    },
    "verdict": {
        "@timestamp": _DATE, "published_at": _DATE, "evaluated_at": _DATE,
        "deployment": _KEYWORD, "verdict": _KEYWORD,
        "reasons": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 1024}}},
        "checks": {"type": "nested", "properties": {
            "name": _KEYWORD, "status": _KEYWORD, "value": _FLOAT, "threshold": _FLOAT,
            "detail": {"type": "text"}, "blocking": {"type": "boolean"}, "evidence": _STORED_ONLY,
        }},
        "failed_checks": _KEYWORD, "warned_checks": _KEYWORD,
        "samples": {"properties": {"live": _LONG, "canary": _LONG, "feedback": _LONG, "spotcheck_labels": _LONG}},
        "live_version": _KEYWORD, "canary_version": _KEYWORD,
    },
    "spotcheck": {
        "@timestamp": _DATE, "request_id": _KEYWORD, "deployment": _KEYWORD,
        "live_label": _KEYWORD, "canary_label": _KEYWORD, "live_score": _FLOAT, "canary_score": _FLOAT,
        "live_scores": _STORED_ONLY, "canary_scores": _STORED_ONLY, "features": _STORED_ONLY,
        "canary_version": _KEYWORD, "priority": _FLOAT,
    },
}


def index_templates(prefix: str, ilm_policy: str | None = None) -> dict[str, dict[str, Any]]:
    """Template name -> body of ``PUT _index_template/<name>``, one per kind of document.

    ``dynamic: false``: a field this version does not know yet is kept in the source but
    not indexed, so a newer sidecar writing to older indices never has documents refused.
    With ``ilm_policy``, every new index is managed by that lifecycle policy (e.g. deleted
    after 30 days).
    """
    settings: dict[str, Any] = {"number_of_shards": 1}
    if ilm_policy:
        settings["index.lifecycle.name"] = ilm_policy
    return {
        f"{prefix}-{INDEX_PARTS[kind]}": {
            "index_patterns": [index_pattern(prefix, kind)],
            "priority": 200,
            "template": {
                "settings": settings,
                "mappings": {"dynamic": False, "properties": MAPPINGS[kind]},
            },
            "_meta": {"managed_by": "driftgate", "kind": kind},
        }
        for kind in KINDS
    }
