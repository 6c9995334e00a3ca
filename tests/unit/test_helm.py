"""The Helm chart, rendered and linted by Helm's own engine (helm-python-sdk: the Go SDK, no binary).

Checks what a cluster would be given: both modes render, the probes point at the health
routes, the ConfigMap holds a config `driftgate run` accepts (with the Secret's environment
applied as the container would get it), the container is non-root with a read-only root
filesystem, and the monitoring objects come and go with their toggles.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from monitor.config import Settings, parse_config

CHART = Path(__file__).resolve().parents[2] / "helm" / "driftgate"
SIDECAR = {"mode": "sidecar", "model": {"image": "registry.example/doc-classifier:v42", "port": 8000}}
SECRETS = {
    "secrets": {
        "apiToken": "chart-token",
        "webhooks": [{"url": "https://ci.example/hooks/driftgate", "secret": "hook-secret", "format": "slack"}],
        "elasticsearchHosts": ["https://driftgate:pw@es.example:9200"],
        "env": {"DRIFTGATE__KAFKA__OPTIONS__SASL.PASSWORD": "kafka-pw"},
    }
}


@pytest.fixture(scope="module")
def chart() -> Iterator[Any]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: Any, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object the chart renders with these values."""
    manifests = chart.render(values or {}, name="driftgate", namespace="models", is_install=True)
    objects: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if path.endswith(".yaml"):
            objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def container(objects: list[dict[str, Any]], name: str = "driftgate") -> dict[str, Any]:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    (found,) = [c for c in pod["containers"] if c["name"] == name]
    return found


def config_of(objects: list[dict[str, Any]], environ: dict[str, str] | None = None) -> Settings:
    """The rendered config as `driftgate run` would load it, with the given environment."""
    raw = yaml.safe_load(one(objects, "ConfigMap")["data"]["config.yaml"])
    return parse_config(raw, environ or {})


MONITORING = {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}


@pytest.mark.parametrize(
    "values", [{}, SIDECAR, {**SIDECAR, **SECRETS}, MONITORING], ids=["default", "sidecar", "secrets", "monitoring"]
)
def test_lint_is_clean(values: dict[str, Any]) -> None:
    report = helm.lint(CHART, values, strict=True, namespace="models")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], report


def test_default_values_render_a_standalone_deployment(chart: Any) -> None:
    objects = render(chart)
    assert sorted(o["kind"] for o in objects) == ["ConfigMap", "Deployment", "Service", "ServiceAccount"]
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["driftgate"]
    assert container(objects)["args"] == ["run", "--config", "/etc/driftgate/config.yaml"]
    service = one(objects, "Service")
    assert [p["name"] for p in service["spec"]["ports"]] == ["driftgate"]
    assert service["spec"]["selector"] == one(objects, "Deployment")["spec"]["selector"]["matchLabels"]


def test_sidecar_values_put_driftgate_beside_the_model(chart: Any) -> None:
    objects = render(chart, SIDECAR)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["model", "driftgate"]
    model = container(objects, "model")
    assert model["image"] == "registry.example/doc-classifier:v42"
    assert model["ports"] == [{"name": "model", "containerPort": 8000, "protocol": "TCP"}]
    assert "envFrom" not in model  # driftgate's secrets stay with driftgate
    ports = {p["name"]: p for p in one(objects, "Service")["spec"]["ports"]}
    assert ports["model"]["port"] == 8000 and ports["driftgate"]["targetPort"] == "driftgate"


def test_sidecar_mode_without_a_model_image_is_refused(chart: Any) -> None:
    with pytest.raises(helm.HelmError, match=r"model\.image"):
        render(chart, {"mode": "sidecar"})


def test_an_unknown_mode_is_refused_by_the_schema(chart: Any) -> None:
    with pytest.raises(helm.HelmError, match="mode"):
        render(chart, {"mode": "daemonset"})


@pytest.mark.parametrize("values", [{}, SIDECAR], ids=["default", "sidecar"])
def test_probes_point_at_health_and_readiness(chart: Any, values: dict[str, Any]) -> None:
    driftgate = container(render(chart, values))
    port_names = {p["name"] for p in driftgate["ports"]}
    assert driftgate["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "driftgate"}
    assert driftgate["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "driftgate"}
    assert "driftgate" in port_names
    assert driftgate["resources"]["requests"] and driftgate["resources"]["limits"]


def test_readiness_can_be_left_out(chart: Any) -> None:
    driftgate = container(render(chart, {**SIDECAR, "readinessProbe": {"enabled": False}}))
    assert "readinessProbe" not in driftgate and "livenessProbe" in driftgate


@pytest.mark.parametrize("values", [{}, SIDECAR], ids=["default", "sidecar"])
def test_the_configmap_holds_a_config_driftgate_accepts(chart: Any, values: dict[str, Any]) -> None:
    objects = render(chart, values)
    settings = config_of(objects)
    driftgate = container(objects)
    assert settings.api.host == "0.0.0.0"
    assert settings.api.port == driftgate["ports"][0]["containerPort"] == 8080
    assert settings.deployments[0].name == "doc-classifier"
    mounts = {m["name"]: m["mountPath"] for m in driftgate["volumeMounts"]}
    assert str(settings.state.dir) == mounts["state"]  # checkpoints go to the writable volume
    assert mounts["config"] == "/etc/driftgate"


def test_the_config_from_values_is_carried_whole(chart: Any) -> None:
    config = {
        "kafka": {"bootstrap_servers": "kafka-0:9092,kafka-1:9092", "partition_assignment": "static"},
        "verdict_interval_s": 2,
        "deployments": [{"name": "ranker", "classes": ["a", "b"], "policy": {"min_samples": 1000}}],
    }
    settings = config_of(render(chart, {"config": config, "port": 9090}))
    assert settings.kafka.bootstrap_servers == "kafka-0:9092,kafka-1:9092"
    assert settings.kafka.partition_assignment == "static"
    assert settings.deployments[0].policy.min_samples == 1000
    assert settings.api.port == 9090


def test_secrets_reach_the_container_as_overrides_driftgate_accepts(chart: Any) -> None:
    objects = render(chart, SECRETS)
    secret = one(objects, "Secret")
    environ = secret["stringData"]
    assert container(objects)["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    settings = config_of(objects, environ)
    assert settings.api.token == "chart-token"
    (webhook,) = settings.webhooks
    assert webhook.url == "https://ci.example/hooks/driftgate"
    assert (webhook.secret, webhook.format) == ("hook-secret", "slack")
    assert settings.elasticsearch is not None
    assert settings.elasticsearch.hosts == ["https://driftgate:pw@es.example:9200"]
    assert settings.kafka.options["sasl.password"] == "kafka-pw"
    configmap = one(objects, "ConfigMap")["data"]["config.yaml"]
    assert "chart-token" not in configmap and "hook-secret" not in configmap


def test_an_existing_secret_is_used_instead_of_making_one(chart: Any) -> None:
    objects = render(chart, {**SECRETS, "secrets": {**SECRETS["secrets"], "existingSecret": "driftgate-prod"}})
    assert not [o for o in objects if o["kind"] == "Secret"]
    assert container(objects)["envFrom"] == [{"secretRef": {"name": "driftgate-prod"}}]


def test_a_token_in_the_config_is_refused(chart: Any) -> None:
    config = {"api": {"token": "oops"}, "deployments": [{"name": "d"}]}
    with pytest.raises(helm.HelmError, match=r"secrets\.apiToken"):
        render(chart, {"config": config})


@pytest.mark.parametrize("values", [{}, SIDECAR], ids=["default", "sidecar"])
def test_driftgate_runs_as_non_root_on_a_read_only_root(chart: Any, values: dict[str, Any]) -> None:
    objects = render(chart, values)
    context = container(objects)["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] > 0
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["state"] and "emptyDir" in volumes["tmp"]
    assert pod["automountServiceAccountToken"] is False


def test_monitoring_objects_follow_their_toggles(chart: Any) -> None:
    kinds = {o["kind"] for o in render(chart)}
    assert "ServiceMonitor" not in kinds and "PrometheusRule" not in kinds
    objects = render(chart, {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}})
    monitor = one(objects, "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in one(objects, "Service")["spec"]["ports"]}
    assert monitor["spec"]["selector"]["matchLabels"] == one(objects, "Service")["spec"]["selector"]
    (group,) = one(objects, "PrometheusRule")["spec"]["groups"]
    rule = next(r for r in group["rules"] if r["alert"] == "DriftgateNoGo")
    assert 'driftgate_verdict{verdict="no_go"}' in rule["expr"] and rule["expr"].endswith("== 1")
    assert "{{ $labels.deployment }}" in rule["annotations"]["summary"]  # left for Prometheus to fill
    only_rule = {o["kind"] for o in render(chart, {"prometheusRule": {"enabled": True}})}
    assert "PrometheusRule" in only_rule and "ServiceMonitor" not in only_rule


def test_the_prometheus_rule_is_the_shipped_rules_file(chart: Any) -> None:
    """The chart renders alerts/driftgate.rules.yml unchanged (with the default values)."""
    shipped = yaml.safe_load((CHART.parent.parent / "alerts" / "driftgate.rules.yml").read_text())
    objects = render(chart, {"prometheusRule": {"enabled": True}})
    assert one(objects, "PrometheusRule")["spec"]["groups"] == shipped["groups"]


def test_prometheus_rule_values_adjust_the_no_go_and_the_runbook_links(chart: Any) -> None:
    values = {"prometheusRule": {"enabled": True, "noGoFor": "5m", "severity": "page",
                                 "runbookBaseUrl": "https://git.example/driftgate/-/blob/v1/"}}
    (group,) = one(render(chart, values), "PrometheusRule")["spec"]["groups"]
    rules = {r["alert"]: r for r in group["rules"]}
    assert rules["DriftgateNoGo"]["for"] == "5m" and rules["DriftgateNoGo"]["labels"]["severity"] == "page"
    assert rules["DriftgateConsumerLag"]["labels"]["severity"] == "warning"  # the others as shipped
    assert rules["DriftgateNoGo"]["annotations"]["runbook_url"] == (
        "https://git.example/driftgate/-/blob/v1/docs/runbooks.md#driftgatenogo"
    )
    assert all(r["annotations"]["runbook_url"].startswith("https://git.example/") for r in rules.values())


def test_extra_rules_join_the_group(chart: Any) -> None:
    extra = {"alert": "DriftgateDeploymentAbsent", "expr": "absent(driftgate_verdict)", "for": "5m"}
    objects = render(chart, {"prometheusRule": {"enabled": True, "extraRules": [extra]}})
    (group,) = one(objects, "PrometheusRule")["spec"]["groups"]
    assert group["rules"][0]["alert"] == "DriftgateNoGo"
    assert group["rules"][-1] == extra
