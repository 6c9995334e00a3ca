"""Tests of monitor.config: the contract's config (docs/contract.md §6), refusals naming the key, env overrides."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from monitor.config import config_keys, load_config, parse_config
from monitor.errors import ConfigError

# docs/contract.md §6, verbatim: "this much is a complete config".
CONTRACT_MINIMAL_YAML = """\
kafka:
  bootstrap_servers: 127.0.0.1:9092
  start_from: latest          # where a new consumer group starts: latest | earliest
api:
  host: 127.0.0.1
  port: 8080
  token: null                 # or the environment variable DRIFTGATE_API_TOKEN
deployments:
  - name: doc-classifier
    topics: {live: predictions.live, canary: predictions.canary, feedback: feedback}
    classes: [invoice, contract, other]     # optional; learned from the data if absent
"""

# docs/contract.md §6, the optional sections with their fixed keys.
CONTRACT_OPTIONAL_YAML = """\
state:
  dir: ./.driftgate
elasticsearch:
  hosts: [http://127.0.0.1:9200]
  index_prefix: driftgate
webhooks:
  - url: https://ci.example/hooks/driftgate
    secret: null
"""

NO_ENV: dict[str, str] = {}


def minimal() -> dict[str, Any]:
    return yaml.safe_load(CONTRACT_MINIMAL_YAML)


def refusal(raw: dict[str, Any], environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, NO_ENV if environ is None else environ)
    return caught.value


# -- the contract's config --------------------------------------------------------------------


def test_contract_minimal_config_parses() -> None:
    settings = parse_config(minimal(), NO_ENV)
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka.start_from == "latest"
    assert settings.api.host == "127.0.0.1"
    assert settings.api.port == 8080
    assert settings.api.token is None
    [deployment] = settings.deployments
    assert deployment.name == "doc-classifier"
    assert (deployment.topics.live, deployment.topics.canary, deployment.topics.feedback) == (
        "predictions.live", "predictions.canary", "feedback",
    )
    assert deployment.classes == ["invoice", "contract", "other"]
    assert settings.deployment("doc-classifier") is deployment
    assert settings.deployment("nope") is None


def test_contract_defaults_fill_everything_not_given() -> None:
    settings = parse_config({"deployments": [{"name": "doc-classifier"}]}, NO_ENV)
    # Defaults named by the contract (§1, §2, §6).
    assert settings.kafka.start_from == "latest"
    assert settings.kafka.deadletter_topic == "driftgate.deadletter"
    assert settings.kafka.verdicts_topic == "driftgate.verdicts"
    assert settings.kafka.spotcheck_topic == "driftgate.spotcheck"
    assert settings.api.token is None
    assert settings.state.dir == Path("./.driftgate")
    assert settings.elasticsearch is None
    assert settings.webhooks == []
    deployment = settings.deployments[0]
    assert deployment.classes is None  # learned from the data
    assert (deployment.topics.live, deployment.topics.canary, deployment.topics.feedback) == (
        "predictions.live", "predictions.canary", "feedback",
    )


def test_contract_optional_sections_parse() -> None:
    raw = minimal() | yaml.safe_load(CONTRACT_OPTIONAL_YAML)
    settings = parse_config(raw, NO_ENV)
    assert settings.state.dir == Path("./.driftgate")
    assert settings.elasticsearch is not None
    assert settings.elasticsearch.hosts == ["http://127.0.0.1:9200"]
    assert settings.elasticsearch.index_prefix == "driftgate"
    assert [(hook.url, hook.secret) for hook in settings.webhooks] == [("https://ci.example/hooks/driftgate", None)]


def test_earliest_is_accepted() -> None:
    raw = minimal()
    raw["kafka"]["start_from"] = "earliest"
    assert parse_config(raw, NO_ENV).kafka.start_from == "earliest"


# -- refusals name the dotted key -------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        (("deployments", 0, "policy"), {"min_samples": "many"}, "deployments[0].policy.min_samples"),
        (("kafka", "start_from"), "middle", "kafka.start_from"),
        (("api", "port"), "http", "api.port"),
        (("api", "port"), 70000, "api.port"),
        (("deployments", 0, "classes"), "invoice", "deployments[0].classes"),
    ],
)
def test_wrong_type_names_the_key(path: tuple[Any, ...], value: Any, key: str) -> None:
    raw = minimal()
    node: Any = raw
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    assert refusal(raw).key == key


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (("kafka",), "kafka.bootstrapservers"),
        (("deployments", 0), "deployments[0].colour"),
        (("deployments", 0, "policy"), "deployments[0].policy.min_sample"),
        ((), "kafak"),
    ],
)
def test_unknown_key_names_the_key(path: tuple[Any, ...], key: str) -> None:
    raw = minimal()
    node: Any = raw
    for part in path:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[re.split(r"[.\]]", key)[-1]] = 1
    error = refusal(raw)
    assert error.key == key
    assert "unknown" in error.message


@pytest.mark.parametrize(
    ("path", "typo", "message"),
    [
        ((), "kafak", "kafak: unknown key; did you mean 'kafka'?"),
        (("deployments", 0), "clases", "deployments[0].clases: unknown key; did you mean 'classes'?"),
        (("kafka",), "bootstrap_server", "kafka.bootstrap_server: unknown key; did you mean 'bootstrap_servers'?"),
        (
            ("deployments", 0, "policy", "checks"),
            "colapse",
            "deployments[0].policy.checks.colapse: unknown key; did you mean 'collapse'?",
        ),
    ],
)
def test_unknown_key_suggests_the_nearest_known_one(path: tuple[Any, ...], typo: str, message: str) -> None:
    raw = minimal()
    node: Any = raw
    for part in path:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[typo] = ["invoice", "other"]
    assert str(refusal(raw)) == message


def test_unknown_key_like_no_known_one_suggests_nothing() -> None:
    raw = minimal()
    raw["deployments"][0]["zzz"] = 1
    assert str(refusal(raw)) == "deployments[0].zzz: unknown key"


def test_missing_deployments_names_the_key() -> None:
    raw = minimal()
    del raw["deployments"]
    error = refusal(raw)
    assert error.key == "deployments"
    assert "missing" in error.message


def test_missing_deployment_name_names_the_key() -> None:
    raw = minimal()
    del raw["deployments"][0]["name"]
    assert refusal(raw).key == "deployments[0].name"


def test_error_message_starts_with_the_key() -> None:
    raw = minimal()
    raw["kafka"]["start_from"] = "middle"
    assert str(refusal(raw)).startswith("kafka.start_from: ")


def test_duplicate_deployment_names_are_refused() -> None:
    raw = minimal()
    second = copy.deepcopy(raw["deployments"][0])
    second["topics"] = {"live": "b.live", "canary": "b.canary", "feedback": "b.feedback"}
    raw["deployments"].append(second)
    assert "doc-classifier" in str(refusal(raw))


def test_one_topic_in_two_roles_across_deployments_is_refused() -> None:
    raw = minimal()
    raw["deployments"].append(
        {"name": "other", "topics": {"live": "feedback", "canary": "o.canary", "feedback": "o.feedback"}}
    )
    assert "feedback" in str(refusal(raw))


def test_one_topic_in_two_roles_within_a_deployment_is_refused() -> None:
    raw = minimal()
    raw["deployments"][0]["topics"] = {"live": "same", "canary": "same", "feedback": "feedback"}
    assert refusal(raw).key == "deployments[0].topics"


def test_two_deployments_may_share_a_topic_in_the_same_role() -> None:
    raw = minimal()
    raw["deployments"].append({"name": "other"})  # the default topics, same roles
    settings = parse_config(raw, NO_ENV)
    assert [d.name for d in settings.deployments] == ["doc-classifier", "other"]


def test_classes_need_two_distinct_names() -> None:
    raw = minimal()
    raw["deployments"][0]["classes"] = ["invoice", "invoice"]
    assert refusal(raw).key == "deployments[0].classes"


# -- class names given as integers or booleans, as classifiers emit them ------------------------

INTEGER_CLASSES_YAML = """\
deployments:
  - name: digits
    classes: [0, 1, 2]
    spotcheck: {priority: {0: 3, "2": 1}}
    reference: {class_distribution: {0: 0.5, 1: 0.3, 2: 0.2}}
  - name: spam
    classes: [true, false]
    spotcheck: {priority: {true: 2}}
  - name: answers
    classes: [yes, no, on, off]
    policy: {require_feedback: yes}
"""


def test_integer_and_boolean_class_names_are_their_text(tmp_path: Path) -> None:
    path = tmp_path / "driftgate.yaml"
    path.write_text(INTEGER_CLASSES_YAML, encoding="utf-8")
    digits, spam, answers = load_config(path, environ=NO_ENV).deployments
    assert digits.classes == ["0", "1", "2"]
    assert digits.spotcheck.priority == {"0": 3.0, "2": 1.0}
    assert digits.reference.class_distribution == {"0": 0.5, "1": 0.3, "2": 0.2}
    # JSON's and YAML's spelling, not Python's "True"
    assert spam.classes == ["true", "false"]
    assert spam.spotcheck.priority == {"true": 2.0}
    # Only true and false are booleans in the file (YAML 1.2): yes, no, on and off are class names,
    # while a boolean key still takes them.
    assert answers.classes == ["yes", "no", "on", "off"]
    assert answers.policy.require_feedback is True


@given(st.lists(st.integers() | st.booleans(), min_size=2, max_size=6, unique_by=lambda v: (type(v), v)))
def test_any_integer_class_is_named_by_its_text(classes: list[int]) -> None:
    names = ["true" if c is True else "false" if c is False else str(c) for c in classes]
    raw = minimal()
    raw["deployments"][0]["classes"] = classes
    assert parse_config(raw, NO_ENV).deployments[0].classes == names


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"classes": [0, 1.5]}, "deployments[0].classes[1]", "not the number 1.5"),
        ({"classes": [7, "7"]}, "deployments[0].classes", "two distinct"),
        ({"spotcheck": {"priority": {7: 1, "7": 2}}}, "deployments[0].spotcheck.priority", "'7' twice"),
        ({"spotcheck": {"priority": {0.5: 1}}}, "deployments[0].spotcheck.priority", "not the number 0.5"),
        ({"reference": {"class_distribution": {1.0: 1}}}, "deployments[0].reference.class_distribution",
         "not the number 1.0"),
    ],
)
def test_a_class_is_not_a_measurement(change: dict[str, Any], key: str, words: str) -> None:
    raw = minimal()
    raw["deployments"][0].update(change)
    if "classes" not in change:
        del raw["deployments"][0]["classes"]
    error = refusal(raw)
    assert error.key == key
    assert words in str(error)


# -- environment overrides --------------------------------------------------------------------


def test_env_overrides_bootstrap_servers() -> None:
    environ = {"DRIFTGATE__KAFKA__BOOTSTRAP_SERVERS": "broker-1:9092,broker-2:9092"}
    settings = parse_config(minimal(), environ)
    assert settings.kafka.bootstrap_servers == "broker-1:9092,broker-2:9092"


def test_env_override_creates_a_missing_section() -> None:
    raw = minimal()
    del raw["kafka"]
    settings = parse_config(raw, {"DRIFTGATE__KAFKA__START_FROM": "earliest"})
    assert settings.kafka.start_from == "earliest"


def test_env_override_is_validated_and_named() -> None:
    error = refusal(minimal(), {"DRIFTGATE__KAFKA__START_FROM": "middle"})
    assert error.key == "kafka.start_from"


def test_unrelated_environment_is_ignored() -> None:
    settings = parse_config(minimal(), {"PATH": "/bin", "DRIFTGATE_OTHER": "x", "KAFKA__BOOTSTRAP_SERVERS": "x:1"})
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"


def test_env_api_token_fills_a_null_token() -> None:
    raw = minimal()
    assert raw["api"]["token"] is None
    assert parse_config(raw, {"DRIFTGATE_API_TOKEN": "s3cret"}).api.token == "s3cret"


def test_env_api_token_works_without_an_api_section() -> None:
    raw = minimal()
    del raw["api"]
    assert parse_config(raw, {"DRIFTGATE_API_TOKEN": "s3cret"}).api.token == "s3cret"


def test_env_override_leaves_the_callers_mapping_alone() -> None:
    raw = minimal()
    before = copy.deepcopy(raw)
    parse_config(raw, {"DRIFTGATE__KAFKA__BOOTSTRAP_SERVERS": "elsewhere:9092"})
    assert raw == before


# -- load_config ------------------------------------------------------------------------------


def test_load_config_reads_the_contract_file(tmp_path: Path) -> None:
    path = tmp_path / "driftgate.yaml"
    path.write_text(CONTRACT_MINIMAL_YAML, encoding="utf-8")
    settings = load_config(path, environ=NO_ENV)
    assert settings.deployments[0].name == "doc-classifier"


def test_load_config_applies_the_given_environment(tmp_path: Path) -> None:
    path = tmp_path / "driftgate.yaml"
    path.write_text(CONTRACT_MINIMAL_YAML, encoding="utf-8")
    settings = load_config(path, environ={"DRIFTGATE_API_TOKEN": "t0ken"})
    assert settings.api.token == "t0ken"


@pytest.mark.parametrize(
    "text",
    [
        "kafka: [unclosed\n",  # bad YAML
        "- just\n- a list\n",  # not a mapping
        "just a string\n",  # not a mapping
        "",  # empty: no deployments
    ],
)
def test_load_config_refuses_bad_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "driftgate.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(path, environ=NO_ENV)


def test_load_config_refuses_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing, environ=NO_ENV)
    assert str(missing) in str(caught.value)


# -- config_keys ------------------------------------------------------------------------------


def _leaf_paths(node: Any, prefix: str = "") -> list[str]:
    """Dotted leaf paths of a YAML document; list items lose their index."""
    if isinstance(node, dict):
        paths: list[str] = []
        for name, child in node.items():
            paths.extend(_leaf_paths(child, f"{prefix}{name}."))
        return paths
    if isinstance(node, list) and node and all(isinstance(item, dict) for item in node):
        return [path for item in node for path in _leaf_paths(item, prefix)]
    return [prefix.rstrip(".")]


def _normalised_keys() -> set[str]:
    return {key.replace("[]", "") for key, _, _ in config_keys()}


def test_config_keys_cover_every_key_of_the_contract() -> None:
    contract = minimal() | yaml.safe_load(CONTRACT_OPTIONAL_YAML)
    expected = set(_leaf_paths(contract))
    assert {"kafka.bootstrap_servers", "deployments.topics.live", "webhooks.secret"} <= expected
    assert expected <= _normalised_keys()


def test_config_keys_include_known_leaves_and_no_sections() -> None:
    keys = _normalised_keys()
    for key in ("kafka.start_from", "api.token", "state.dir", "elasticsearch.index_prefix",
                "deployments.policy.min_samples", "deployments.join.ttl_s"):
        assert key in keys
    # Sections are expanded, never yielded themselves.
    for section in ("kafka", "api", "deployments", "deployments.policy", "deployments.topics"):
        assert section not in keys


def test_every_config_key_has_a_description() -> None:
    undocumented = [key for key, _, description in config_keys() if not description.strip()]
    assert not undocumented


def test_config_keys_defaults_match_the_parsed_defaults() -> None:
    settings = parse_config({"deployments": [{"name": "d"}]}, NO_ENV)
    defaults = {key: default for key, default, _ in config_keys()}
    assert defaults["kafka.bootstrap_servers"] == settings.kafka.bootstrap_servers
    assert defaults["api.port"] == settings.api.port
    assert defaults["kafka.max_message_bytes"] == settings.kafka.max_message_bytes


def test_every_top_level_config_key_is_accepted() -> None:
    """Each non-list key yielded, set to its own default, is a key the parser knows."""
    for key, default, _ in config_keys():
        if "[]" in key or key.startswith(("deployments", "webhooks")) or default is None:
            continue
        raw: dict[str, Any] = {"deployments": [{"name": "d"}]}
        node = raw
        *sections, leaf = key.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = str(default) if isinstance(default, Path) else default
        parse_config(raw, NO_ENV)


@pytest.mark.parametrize(("section", "key"), [
    ({"index_prefix": "Drift Gate"}, "elasticsearch.index_prefix"),
    ({"index_prefix": "-driftgate"}, "elasticsearch.index_prefix"),
    ({"hosts": []}, "elasticsearch.hosts"),
    ({"hosts": ["127.0.0.1:9200"]}, "elasticsearch.hosts"),
    ({"hosts": ["http://"]}, "elasticsearch.hosts"),
    ({"ca_certs": "/nonexistent/ca.pem"}, "elasticsearch.ca_certs"),
    ({"spool_max_documents": 10}, "elasticsearch.spool_max_documents"),
    ({"batch_size": 0}, "elasticsearch.batch_size"),
    ({"bulk_size": 10}, "elasticsearch.bulk_size"),
])
def test_a_bad_elasticsearch_key_is_refused_by_name(section: dict[str, Any], key: str) -> None:
    assert refusal({**minimal(), "elasticsearch": section}).key == key


def test_elasticsearch_secrets_come_from_the_environment() -> None:
    settings = parse_config({**minimal(), "elasticsearch": {}}, {"DRIFTGATE__ELASTICSEARCH__API_KEY": "c2VjcmV0"})
    assert settings.elasticsearch is not None and settings.elasticsearch.api_key == "c2VjcmV0"
    assert settings.elasticsearch.index_prefix == "driftgate"
