"""The configuration: one pydantic model is the single source of every key.

A YAML file is read, environment overrides are applied, and the result is validated
once at start-up. Any refusal is a :class:`ConfigError` naming the dotted key.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.errors import ConfigError

if TYPE_CHECKING:
    from monitor.core.profile import ReferenceProfile

ENV_PREFIX = "DRIFTGATE__"
TOKEN_ENV = "DRIFTGATE_API_TOKEN"
ROLES = ("live", "canary", "feedback")


def class_name(value: int) -> str:
    """The name of a class given as an integer or a boolean, as classifiers emit them
    (docs/contract.md §1): ``7`` is the class ``"7"``, and ``true`` and ``false`` are ``"true"``
    and ``"false"``, as JSON and YAML write them (not Python's ``"True"``)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _class_key(value: Any) -> Any:
    """A class name from the file: an integer or a boolean becomes its text (:func:`class_name`);
    a number with a fraction is refused, since a class is named, not measured."""
    if isinstance(value, int):
        return class_name(value)
    if isinstance(value, float):
        raise ValueError(f"a class is a string or an integer, not the number {value!r}")
    return value


def _class_keys(value: Any) -> Any:
    """A mapping keyed by class, with its keys named as :func:`_class_key` names them."""
    if not isinstance(value, dict):
        return value
    named: dict[Any, Any] = {}
    for key, item in value.items():
        name = _class_key(key)
        if name in named:
            raise ValueError(f"names the class {name!r} twice")
        named[name] = item
    return named


ClassName = Annotated[str, BeforeValidator(_class_key)]


class _ConfigLoader(yaml.SafeLoader):
    """YAML as the file is read: only true and false (also True, TRUE, False, FALSE) are booleans,
    as in YAML 1.2, so that yes, no, on and off stay text (a class named ``no`` is not the class
    ``"false"``); a boolean key still takes them, as pydantic reads them."""


_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class Section(BaseModel):
    """Base of every config section: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(Section):
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated.")
    start_from: Literal["latest", "earliest"] = Field(
        "latest", description="Where a new consumer group starts reading."
    )
    client: Literal["confluent", "kafka-python"] = Field(
        "confluent", description="Kafka client library: confluent-kafka or the pure-Python kafka-python."
    )
    group_id: str = Field("driftgate", description="Consumer group id; offsets are committed to it.")
    partition_assignment: Literal["group", "static"] = Field(
        "group",
        description="`group`: partitions assigned by the consumer group; `static`: this process "
        "reads every partition of its input topics (one replica, no rebalance wait).",
    )
    max_poll_records: int = Field(5000, ge=1, description="Most messages taken in one poll.")
    poll_timeout_s: float = Field(0.5, gt=0, description="Longest wait for a poll to return.")
    max_lead_s: float = Field(
        10.0, ge=0,
        description="While catching up a backlog, no input partition reads more than this many seconds "
        "(of message time) ahead of the slowest one with records waiting, so a request's live and canary "
        "answers reach the join together; 0 turns it off.",
    )
    max_message_bytes: int = Field(
        1_048_576, ge=64, description="Messages larger than this are dead-lettered as `too_large`."
    )
    deadletter_topic: str = Field("driftgate.deadletter", description="Where bad input goes.")
    verdicts_topic: str = Field("driftgate.verdicts", description="Where verdict changes go.")
    spotcheck_topic: str = Field("driftgate.spotcheck", description="Where disagreements picked for review go.")
    create_topics: bool = Field(True, description="Create missing input and output topics at start.")
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Extra client properties passed through as they are (security.protocol, sasl.*).",
    )


class ApiSettings(Section):
    host: str = Field("127.0.0.1", description="Address the HTTP API listens on.")
    port: int = Field(8080, ge=0, le=65535, description="Port of the HTTP API (0: any free port).")
    token: str | None = Field(
        None, description=f"Bearer token required on every route but health and metrics; or ${TOKEN_ENV}."
    )
    max_body_bytes: int = Field(65_536, ge=1024, description="Larger request bodies get 413.")


class StateSettings(Section):
    dir: Path = Field(Path("./.driftgate"), description="Where checkpoints live.")
    enabled: bool = Field(
        True, description="Checkpoint the state and offsets, and resume from the last checkpoint at start."
    )
    checkpoint_interval_s: float = Field(
        10.0, gt=0, description="Wall-clock seconds between checkpoints (one is also written at shutdown)."
    )


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    format: Literal["auto", "json", "text"] = Field(
        "auto", description="`auto`: JSON lines unless writing to a terminal."
    )


class ElasticsearchSettings(Section):
    hosts: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:9200"], description="Cluster URLs.")
    index_prefix: str = Field("driftgate", description="Indices are <prefix>-windows*, -verdicts*, -spotcheck*.")
    username: str | None = Field(None, description="Basic-auth user (with `password`).")
    password: str | None = Field(
        None, description="Basic-auth password; or $DRIFTGATE__ELASTICSEARCH__PASSWORD (never logged)."
    )
    api_key: str | None = Field(
        None, description="API key (base64 id:key); or $DRIFTGATE__ELASTICSEARCH__API_KEY (never logged)."
    )
    ca_certs: Path | None = Field(None, description="CA bundle that signs the cluster's TLS certificate.")
    spool_dir: Path | None = Field(
        None, description="Where documents wait while Elasticsearch is away (default: `state.dir`)."
    )
    spool_max_documents: int = Field(
        100_000, ge=100,
        description="Documents kept waiting on disk; past it the oldest window documents are dropped "
        "(then spot-check cases), never verdicts.",
    )
    handoff_size: int = Field(
        10_000, ge=10, description="Documents waiting in memory for the sink's thread; past it they go to disk."
    )
    batch_size: int = Field(500, ge=1, le=10_000, description="Most documents in one bulk request.")
    flush_interval_s: float = Field(2.0, gt=0, description="Longest wait before waiting documents are sent.")
    request_timeout_s: float = Field(10.0, gt=0, description="Longest wait for one Elasticsearch request.")
    backoff_s: float = Field(0.5, gt=0, description="First wait after a failed bulk; doubled per failure (jittered).")
    max_backoff_s: float = Field(60.0, gt=0, description="Longest wait between two bulk attempts.")
    ilm_policy: str | None = Field(
        None, description="An ILM policy (made beforehand) that the index templates give every new index."
    )
    replica: str | None = Field(
        None,
        description="This sidecar's name when several share a deployment (each reading its own partitions): "
        "part of window ids, so their windows add up instead of replacing each other.",
    )

    @field_validator("hosts")
    @classmethod
    def _http_hosts(cls, value: list[str]) -> list[str]:
        if not value or any(
            not host.startswith(("http://", "https://")) or not urlsplit(host).hostname for host in value
        ):
            raise ValueError("needs at least one http:// or https:// URL with a host")
        return value

    @field_validator("ca_certs")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("index_prefix")
    @classmethod
    def _index_prefix(cls, value: str) -> str:
        # What Elasticsearch accepts in an index name: lowercase, no leading - _ +, no separators or wildcards.
        if not value or value != value.lower() or value[0] in "-_+" or any(c in value for c in '\\/*?"<>| ,#:'):
            raise ValueError("must be a lowercase Elasticsearch index name prefix (no spaces or \\/*?\"<>|,#:)")
        return value


class WebhookSettings(Section):
    url: str = Field(description="Receives a POST of the verdict object on every verdict change.")
    secret: str | None = Field(None, description="HMAC-SHA256 key for X-Driftgate-Signature.")
    format: Literal["json", "slack"] = Field(
        "json",
        description="`json`: the verdict object; `slack`: a Slack-compatible message asking \"deploy v42?\".",
    )
    timeout_s: float = Field(5.0, gt=0, description="Longest wait for one delivery attempt.")
    max_attempts: int = Field(
        6, ge=1, description="Attempts per delivery; connection errors, 5xx and 429 are retried, other 4xx not."
    )
    backoff_s: float = Field(
        0.5, gt=0, description="First retry waits up to this long; each further one up to twice as long (jittered)."
    )
    max_backoff_s: float = Field(30.0, gt=0, description="Longest wait between two attempts.")
    queue_size: int = Field(
        1000, ge=1, description="Deliveries waiting for this URL; when full, the oldest is dropped and counted."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        # Checked at start-up so a typo is refused with the key's name, not found at the first verdict.
        if not value.startswith(("http://", "https://")) or len(value) <= len("https://"):
            raise ValueError("must be an http:// or https:// URL")
        return value


class TopicSettings(Section):
    live: str = Field("predictions.live", description="Topic of the live model's predictions.")
    canary: str = Field("predictions.canary", description="Topic of the canary model's predictions.")
    feedback: str = Field("feedback", description="Topic of feedback events.")

    @model_validator(mode="after")
    def _distinct(self) -> TopicSettings:
        names = [self.live, self.canary, self.feedback]
        if len(set(names)) != len(names):
            raise ValueError("live, canary and feedback must be three different topics")
        return self


class FieldMap(Section):
    """Dotted paths in the producer's JSON for each contract field (defaults: the contract's names)."""

    request_id: str = Field("request_id", description="Path of the request id.")
    deployment: str = Field("deployment", description="Path of the deployment name.")
    label: str = Field("label", description="Path of the predicted (or true) class.")
    ts: str = Field("ts", description="Path of the event time.")
    model_version: str = Field("model_version", description="Path of the model version.")
    scores: str = Field("scores", description="Path of the class scores object.")
    features: str = Field("features", description="Path of the features object.")
    correct: str = Field("correct", description="Path of feedback's `correct` flag.")
    source: str = Field("source", description="Path of feedback's source.")

    def is_identity(self) -> bool:
        return all(getattr(self, name) == name for name in FieldMap.model_fields)


class JoinSettings(Section):
    max_open_requests: int = Field(
        100_000, ge=1, description="Most requests waiting for their other half; the oldest is evicted."
    )
    ttl_s: float = Field(600.0, gt=0, description="Event-time seconds a request waits for its other half.")


class FeedbackSettings(Section):
    max_requests: int = Field(
        100_000, ge=1, description="Most answered requests kept waiting for feedback (and early feedback for them)."
    )
    ttl_s: float = Field(
        259_200.0, gt=0, description="Event-time seconds feedback may arrive after a request (3 days)."
    )


class SpotcheckSettings(Section):
    max_per_minute: int = Field(30, ge=0, description="Most disagreements picked for review per minute of event time.")
    priority: Annotated[dict[str, float], BeforeValidator(_class_keys)] = Field(
        default_factory=dict,
        description="Weight of classes that matter most, e.g. {invoice: 3}; a disagreement involving one is a "
        "priority case.",
    )
    priority_share: float = Field(
        0.5, ge=0, le=1, description="Share of each minute's budget kept for priority cases."
    )
    queue_size: int = Field(100, ge=1, description="Picked cases kept on the review page until labelled.")


class AccuracyCheckSettings(Section):
    blocking: bool = Field(True, description="A failure makes the verdict no_go.")
    margin: float = Field(
        0.02, ge=0, lt=1, description="Fail when canary accuracy is lower than live's by more than this..."
    )
    p_value: float = Field(
        0.01, gt=0, lt=1, description="...and McNemar's exact test says so with a p-value below this."
    )
    min_labels: int = Field(50, ge=1, description="Labelled requests (both answers judged) needed first.")


class ClassPrecisionCheckSettings(Section):
    blocking: bool = Field(True, description="A failure makes the verdict no_go.")
    margin: float = Field(
        0.05, ge=0, lt=1, description="Fail when a class's canary precision is below live's by more than this..."
    )
    confidence: float = Field(
        0.95, gt=0, lt=1, description="...and their Wilson intervals at this confidence do not overlap."
    )
    min_labels: int = Field(30, ge=1, description="Labelled answers of a class, per model, needed to judge it.")


class DivergenceCheckSettings(Section):
    blocking: bool = Field(True, description="A failure makes the verdict no_go.")
    margin: float = Field(
        0.01, gt=0, lt=1,
        description="Sequential mode: the largest difference in any class's share worth blocking for "
        "(0.01: one point of traffic).",
    )
    js_threshold: float = Field(0.05, gt=0, le=1, description="Fail above this Jensen-Shannon distance...")
    p_value: float = Field(
        0.001, gt=0, lt=1, description="...when the chi-square test's p-value is also below this."
    )


class ReferenceCheckSettings(Section):
    blocking: bool = Field(True, description="A failure makes the verdict no_go.")
    js_threshold: float = Field(0.1, gt=0, le=1, description="Fail above this JS distance from the reference.")
    p_value: float = Field(0.001, gt=0, lt=1, description="...when the goodness-of-fit p-value is below this.")


class CollapseCheckSettings(Section):
    blocking: bool = Field(True, description="A failure makes the verdict no_go.")
    max_class_share: float = Field(
        0.8, gt=0, le=1, description="Fail when one class takes more than this share of the canary..."
    )
    min_entropy_ratio: float = Field(
        0.5, ge=0, le=1, description="...or the canary's entropy falls below this fraction of live's."
    )


class DisagreementCheckSettings(Section):
    blocking: bool = Field(False, description="Disagreement is a signal for review, so a warning by default.")
    max_rate: float = Field(0.2, gt=0, le=1, description="Warn (or fail) above this disagreement rate.")
    min_pairs: int = Field(100, ge=1, description="Requests answered by both models before judging.")


class FeatureDriftCheckSettings(Section):
    blocking: bool = Field(
        False, description="Feature drift is a warning by default; true: any drifting feature blocks."
    )
    blocking_features: list[str] = Field(
        default_factory=list,
        description="Features (or `scores.<class>`) whose drift blocks even when `blocking` is false.",
    )
    numeric_test: Literal["wasserstein", "psi", "ks"] = Field(
        "wasserstein", description="Statistic judged for numeric features and scores (Wasserstein normed by "
        "the reference's standard deviation, as Evidently).",
    )
    numeric_threshold: float = Field(0.1, gt=0, description="Drift when the numeric statistic is above this.")
    categorical_test: Literal["js", "psi"] = Field(
        "js", description="Statistic judged for categorical features (Jensen-Shannon distance or PSI)."
    )
    categorical_threshold: float = Field(0.1, gt=0, description="Drift when the categorical statistic is above this.")
    min_samples: int = Field(500, ge=1, description="Rows with features needed on each side before judging.")


class DataQualityCheckSettings(Section):
    blocking: bool = Field(False, description="Data-quality findings are warnings by default.")
    max_missing_increase: float = Field(
        0.05, ge=0, le=1,
        description="`missing_values`: canary's missing share above its baseline's by more than this.",
    )
    max_type_change_share: float = Field(
        0.01, ge=0, le=1,
        description="`type_changes`: share of a feature's values of another type than its baseline's.",
    )
    max_unseen_share: float = Field(
        0.05, ge=0, le=1,
        description="`unseen_categories`: share of a categorical feature's values the baseline never had.",
    )
    max_out_of_range_share: float = Field(
        0.05, ge=0, le=1,
        description="`out_of_range`: share of a numeric feature's values outside the baseline's range.",
    )
    min_samples: int = Field(500, ge=1, description="Canary rows with features needed before judging.")


class ChecksSettings(Section):
    class_divergence: DivergenceCheckSettings = Field(default_factory=DivergenceCheckSettings)
    reference_divergence: ReferenceCheckSettings = Field(default_factory=ReferenceCheckSettings)
    collapse: CollapseCheckSettings = Field(default_factory=CollapseCheckSettings)
    disagreement: DisagreementCheckSettings = Field(default_factory=DisagreementCheckSettings)
    accuracy: AccuracyCheckSettings = Field(default_factory=AccuracyCheckSettings)
    class_precision: ClassPrecisionCheckSettings = Field(default_factory=ClassPrecisionCheckSettings)
    feature_drift: FeatureDriftCheckSettings = Field(default_factory=FeatureDriftCheckSettings)
    data_quality: DataQualityCheckSettings = Field(default_factory=DataQualityCheckSettings)


class PolicySettings(Section):
    mode: Literal["sequential", "fixed"] = Field(
        "sequential",
        description="`sequential`: anytime-valid tests with error rate `alpha` however often the verdict is read; "
        "`fixed`: fixed-sample thresholds (JS distance and p-value), valid only at one pre-declared look.",
    )
    alpha: float = Field(
        0.05, gt=0, lt=0.5,
        description="Sequential mode: the error rate of each gating check, over the whole comparison.",
    )
    min_samples: int = Field(
        400, ge=1, description="Canary and live predictions each needed before a verdict other than pending."
    )
    max_samples: int | None = Field(
        None, ge=1, description="Canary predictions after which an undecided comparison is inconclusive."
    )
    max_duration_s: float | None = Field(
        None, gt=0, description="Event-time seconds after which an undecided comparison is inconclusive."
    )
    require_feedback: bool = Field(
        False,
        description="Hold the verdict at pending until the feedback checks have enough labelled requests; "
        "otherwise they decide only once they have.",
    )
    feedback_decides: bool = Field(
        True,
        description="When labelled outcomes show the canary is not less accurate, a class distribution "
        "that moved is a warning, not a no_go.",
    )
    checks: ChecksSettings = Field(default_factory=ChecksSettings)


def profile_at(path: Path) -> ReferenceProfile:
    """The profile in a file, for checking the config against it (ValueError says what is wrong).

    The sidecar reads its profiles once more when it is assembled (monitor.reports.profile_file).
    """
    from monitor.core.profile import decode_profile
    from monitor.errors import ProfileError

    try:
        return decode_profile(path.read_bytes(), str(path))
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    except ProfileError as error:
        raise ValueError(str(error)) from None


class ReferenceSettings(Section):
    class_distribution: Annotated[dict[str, float] | None, BeforeValidator(_class_keys)] = Field(
        None, description="Class shares of the reference (test) set, e.g. {invoice: 0.5, ...}."
    )
    profile: Path | None = Field(
        None,
        description="Reference profile from `driftgate reference build`: features, scores and class shares "
        "(the class shares serve when `class_distribution` is not set).",
    )

    @field_validator("profile")
    @classmethod
    def _readable_profile(cls, value: Path | None) -> Path | None:
        if value is not None:
            profile_at(value)
        return value

    @field_validator("class_distribution")
    @classmethod
    def _shares(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        if not value or any(share < 0 for share in value.values()) or sum(value.values()) <= 0:
            raise ValueError("needs at least one class and non-negative shares that add up to more than 0")
        return value


class DriftSettings(Section):
    bins: int = Field(
        100, ge=2, le=10_000,
        description="Without a profile: bins per numeric column, at quantiles of the first `learn_from` live rows.",
    )
    learn_from: int = Field(
        500, ge=10,
        description="Without a profile: sampled live rows whose features fix the bins the canary is compared on "
        "(features present in at least 5% of them).",
    )
    max_new_categories: int = Field(
        50, ge=0, description="Distinct categories kept beyond the baseline's per feature; the rest pooled, counted."
    )
    sample_rows: int = Field(
        2000, ge=0, le=100_000,
        description="Recent rows per role kept for reports (`driftgate report`), taken from the binned sample.",
    )
    sample_every: int = Field(
        8, ge=1, le=1000,
        description="Bin the features and scores of one prediction in this many (1: every one), chosen by a "
        "hash of the request id: the hot path stays fast; drift and quality figures are of the sample.",
    )


class DeploymentSettings(Section):
    name: str = Field(min_length=1, description="The deployment's name, as events carry it.")
    topics: TopicSettings = Field(default_factory=TopicSettings)
    classes: list[ClassName] | None = Field(
        None,
        description="The classes; learned from the data if absent. An integer or a boolean names the class of "
        "its text (`7` is `\"7\"`, `true` is `\"true\"`).",
    )
    max_classes: int = Field(
        64, ge=2, description="Cap on distinct classes learned; events beyond it are dead-lettered."
    )
    fields: FieldMap = Field(default_factory=FieldMap)
    reference: ReferenceSettings = Field(default_factory=ReferenceSettings)
    join: JoinSettings = Field(default_factory=JoinSettings)
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)
    spotcheck: SpotcheckSettings = Field(default_factory=SpotcheckSettings)
    window_s: float = Field(60.0, gt=0, description="Length of the tumbling dashboard windows (event time).")
    windows_kept: int = Field(60, ge=1, description="Closed windows kept in memory for the API.")
    policy: PolicySettings = Field(default_factory=PolicySettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)

    @field_validator("classes")
    @classmethod
    def _classes(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (len(value) < 2 or len(set(value)) != len(value)):
            raise ValueError("needs at least two distinct class names")
        return value

    @model_validator(mode="after")
    def _reference_classes(self) -> DeploymentSettings:
        reference = self.reference.class_distribution
        if reference and self.classes is not None:
            unknown = sorted(set(reference) - set(self.classes))
            if unknown:
                raise ValueError(
                    f"reference.class_distribution names classes not in classes: {', '.join(unknown)}"
                )
        if self.reference.profile is not None:
            profile = profile_at(self.reference.profile)
            if profile.deployment != self.name:
                raise ValueError(
                    f"reference.profile {self.reference.profile} was built for deployment {profile.deployment!r}, "
                    f"not {self.name!r}"
                )
            unknown = sorted(set(self.policy.checks.feature_drift.blocking_features) - set(profile.layout.columns))
            if unknown:
                raise ValueError(
                    f"policy.checks.feature_drift.blocking_features names columns the profile does not have: "
                    f"{', '.join(unknown)} (it has {', '.join(sorted(profile.layout.columns))})"
                )
        return self


class Settings(Section):
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    verdict_interval_s: float = Field(1.0, gt=0, description="Wall-clock seconds between verdict evaluations.")
    elasticsearch: ElasticsearchSettings | None = Field(None, description="Optional Elasticsearch sink.")
    webhooks: list[WebhookSettings] = Field(default_factory=list, description="Verdict-change webhooks.")
    deployments: list[DeploymentSettings] = Field(min_length=1, description="The deployments watched.")

    @model_validator(mode="after")
    def _unique(self) -> Settings:
        names = [deployment.name for deployment in self.deployments]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"deployment names must be unique; repeated: {', '.join(duplicates)}")
        roles_by_topic: dict[str, set[str]] = {}
        for deployment in self.deployments:
            for role in ROLES:
                roles_by_topic.setdefault(getattr(deployment.topics, role), set()).add(role)
        mixed = sorted(topic for topic, roles in roles_by_topic.items() if len(roles) > 1)
        if mixed:
            raise ValueError(f"a topic plays one role only; used for several: {', '.join(mixed)}")
        return self

    def deployment(self, name: str) -> DeploymentSettings | None:
        return next((d for d in self.deployments if d.name == name), None)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Return the validated settings from a YAML file plus environment overrides."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError("", f"cannot read config file {path}: {error.strerror}") from error
    try:
        raw = yaml.load(text, Loader=_ConfigLoader)
    except yaml.YAMLError as error:
        raise ConfigError("", f"{path} is not valid YAML: {error}") from error
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("", f"{path} must hold a mapping at the top level")
    return parse_config(raw, os.environ if environ is None else environ)


def parse_config(raw: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Validate a config mapping (after environment overrides) into settings."""
    data = _apply_env(copy.deepcopy(dict(raw)), environ or {})
    try:
        return Settings.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        key = _dotted(first["loc"])
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(first["loc"])
        elif first["type"] == "missing":
            message = "required key is missing"
        elif "input" in first and first["type"] not in ("value_error", "assertion_error"):
            message = f"{message} (got {first['input']!r})"
        raise ConfigError(key or "config", message) from None


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    """'; did you mean ...?' naming the known key nearest to the unknown one at the end of ``loc``, if any."""
    model: type[BaseModel] = Settings
    for item in loc[:-1]:
        if isinstance(item, int):
            continue
        field = model.model_fields.get(item)
        nested = _section_type(field.annotation) if field is not None else None
        if nested is None:
            return ""
        model = nested
    known = [field.alias or name for name, field in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), known, n=1) if loc else []
    return f"; did you mean '{close[0]}'?" if close else ""


def _dotted(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts)


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Apply ``DRIFTGATE__SECTION__KEY=value`` overrides (values parsed as YAML scalars)."""
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__") if part]
        if not path:
            continue
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(part, f"{name} cannot override inside {part!r}, which is not a section")
            node = child
        # Strings stay strings (a token of digits is still a token); pydantic converts them to
        # numbers and booleans where a key wants one. Lists and mappings are written as YAML.
        node[path[-1]] = yaml.load(value, Loader=_ConfigLoader) if value.lstrip().startswith(("[", "{")) else value
    token = environ.get(TOKEN_ENV)
    if token:
        api = data.get("api")
        api = dict(api) if isinstance(api, dict) else {}
        if api.get("token") is None:
            api["token"] = token
        data["api"] = api
    return data


def config_keys(model: type[BaseModel] = Settings, prefix: str = "") -> Iterator[tuple[str, Any, str]]:
    """Yield (dotted key, default, description) for every key, for the docs and their test."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        nested = _section_type(annotation)
        if nested is not None:
            is_list = getattr(annotation, "__origin__", None) is list
            yield from config_keys(nested, f"{key}[]." if is_list else f"{key}.")
            continue
        default = field.get_default(call_default_factory=True) if not field.is_required() else None
        yield key, default, field.description or ""


def _section_type(annotation: Any) -> type[BaseModel] | None:
    """The Section class inside an annotation (X, X | None, list[X]), else None."""
    candidates = [annotation, *getattr(annotation, "__args__", ())]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, Section):
            return candidate
    return None


REFERENCE_START = "<!-- config-reference:start -->"
REFERENCE_END = "<!-- config-reference:end -->"


def _shown(default: Any) -> str:
    if isinstance(default, bool):
        return "true" if default else "false"
    if default is None:
        return "null"
    if isinstance(default, Path):
        return str(default)
    return repr(default).replace("'", "")


def reference_table() -> str:
    """The Markdown table of every config key, its default and its meaning (the README's reference)."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for key, default, description in config_keys():
        required = key in ("deployments[].name", "webhooks[].url")
        rows.append(f"| `{key}` | `{'required' if required else _shown(default)}` | {description} |")
    return "\n".join(rows)


def write_reference(readme: Path) -> bool:
    """Rewrite the reference table between its markers in ``readme``; returns whether it changed."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.index(REFERENCE_START), text.index(REFERENCE_END)
    updated = f"{text[: start + len(REFERENCE_START)]}\n{reference_table()}\n{text[end:]}"
    if updated != text:
        readme.write_text(updated, encoding="utf-8")
    return updated != text
