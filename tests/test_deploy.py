"""deploy/: the Kubernetes manifests, the Grafana dashboard and the Prometheus alerts hold together with the worker.

The manifests are checked against the Kubernetes API schemas offline with kubernetes-validate
(it ships them; strict: an unknown field is an error), then against what the worker needs:
probes on /healthz and /readyz at HTTP_PORT, env names that are settings, secrets only from a
Secret, a config file and rules the worker accepts. Every metric the dashboard and the alert
rules query must be one /metrics serves (scraped from a real Worker on fake Kafka).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kafka import TopicPartition
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, wait_for
from tests.harness import FEED, Harness
from worker.config import ENV_NAMES, SECRET_SETTINGS, Settings, load_settings
from worker.delivery import Call
from worker.loop.startup import load_checked, make_router
from worker.observability import HttpServer

DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
K8S_VERSION = "1.29.0"  # the oldest Kubernetes the manifests promise to work on
#: Not in the Kubernetes API schemas (the Prometheus Operator's CRD, kustomize's own file): checked by their tests below.
NOT_IN_KUBERNETES_SCHEMAS = {("monitoring.coreos.com/v1", "PodMonitor"), ("kustomize.config.k8s.io/v1beta1", "Kustomization")}
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
#: Series Prometheus makes itself, or that come from its scrape (not from our /metrics).
PROMETHEUS_OWN = {"up"}
ADDED_BY_SCRAPE = {"instance", "job", "pod", "namespace", "container", "le"}


def documents(path: Path) -> list[Any]:
    if path.suffix == ".json":
        return [json.loads(path.read_text())]
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifests() -> list[dict[str, Any]]:
    return [doc for path in sorted(KUBERNETES.glob("*.yaml")) for doc in documents(path)]


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in manifests() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container() -> dict[str, Any]:
    containers = one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def plain_env() -> dict[str, str]:
    return {e["name"]: e["value"] for e in container()["env"] if "value" in e}


# -- every file loads ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml", ".json")), ids=lambda p: str(p.relative_to(DEPLOY))
)
def test_every_deploy_file_loads(path: Path) -> None:
    docs = documents(path)
    assert docs and all(isinstance(doc, dict) for doc in docs)


@pytest.mark.parametrize(
    "doc",
    [d for d in manifests() if (d.get("apiVersion"), d.get("kind")) not in NOT_IN_KUBERNETES_SCHEMAS],
    ids=lambda d: f"{d['kind']}/{d['metadata'].get('name', '')}" if "metadata" in d else d["kind"],
)
def test_kubernetes_manifests_are_valid_against_the_kubernetes_schemas(doc: dict[str, Any]) -> None:
    assert {"apiVersion", "kind"} <= doc.keys() and doc["metadata"]["name"]
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises with the path of the bad field


def test_the_schema_check_catches_a_misspelt_field() -> None:
    broken = json.loads(json.dumps(one("Deployment")))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError, match="paht"):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


# -- the Deployment runs the worker as it expects ----------------------------------------------------------


def test_the_deployment_selects_its_pods_and_runs_an_image_with_resources() -> None:
    deployment = one("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] >= 1
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    worker = container()
    assert worker["image"]
    assert {"cpu", "memory"} <= worker["resources"]["requests"].keys() and "memory" in worker["resources"]["limits"]


def test_env_names_are_settings_and_secrets_come_only_from_a_secret() -> None:
    env = container()["env"]
    names = [e["name"] for e in env]
    assert sorted(set(names) - set(ENV_NAMES)) == [], "not a setting of worker/config.py"
    assert len(names) == len(set(names))
    secrets = {name.upper() for name in SECRET_SETTINGS}
    for entry in env:
        if entry["name"] in secrets:
            assert set(entry) == {"name", "valueFrom"} and set(entry["valueFrom"]) == {"secretKeyRef"}, entry
        else:
            assert "secretKeyRef" not in entry.get("valueFrom", {}), f"{entry['name']} is no secret"
    assert "SLACK_BOT_TOKEN" in names
    assert not any(re.search(r"xox[abp]-|password", str(entry.get("value", "")), re.I) for entry in env)


def test_probes_ask_healthz_and_readyz_on_http_port() -> None:
    worker = container()
    port = int(plain_env().get("HTTP_PORT", Settings.model_fields["http_port"].default))
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = worker[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == port, f"{probe} asks port {get['port']}, the worker serves {port}"
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/path"] == "/metrics"


def test_the_config_file_and_rules_mounted_from_configmaps_are_accepted_by_the_worker(tmp_path: Path) -> None:
    worker = container()
    mounts = {m["name"]: m for m in worker["volumeMounts"]}
    volumes = {v["name"]: v["configMap"]["name"] for v in one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    args = worker["args"]
    config_path = args[args.index("--config") + 1]
    config_mount = next(m for m in mounts.values() if m["mountPath"] == config_path)
    rules_mount = next(m for m in mounts.values() if m["mountPath"] == plain_env()["RULES_PATH"])
    config = one("ConfigMap", volumes[config_mount["name"]])["data"]
    rules = one("ConfigMap", volumes[rules_mount["name"]])["data"]

    (tmp_path / "worker.yaml").write_text(config[config_mount["subPath"]])
    (tmp_path / "rules").mkdir()
    for name, text in rules.items():
        (tmp_path / "rules" / name).write_text(text)
    environ = plain_env() | {"RULES_PATH": str(tmp_path / "rules"), "SLACK_BOT_TOKEN": "xoxb-test"}
    settings = load_settings(tmp_path / "worker.yaml", environ=environ)  # raises ConfigError naming what is wrong
    rule_set, _ = load_checked(settings)  # raises RulesError with file:line
    assert len(rule_set) >= 1
    make_router(settings)


def test_the_service_and_the_podmonitor_reach_the_pods_http_port() -> None:
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    service = one("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    monitor = one("PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert [(e["port"], e["path"]) for e in monitor["spec"]["podMetricsEndpoints"]] == [("http", "/metrics")]
    assert "http" in {p["name"] for p in container()["ports"]}


def test_the_kustomization_lists_files_that_exist() -> None:
    kustomization = one("Kustomization")
    assert kustomization["resources"] and all((KUBERNETES / name).is_file() for name in kustomization["resources"])


# -- the Prometheus rules and the dashboard ------------------------------------------------------------------


def alert_rules() -> list[dict[str, Any]]:
    document = documents(DEPLOY / "prometheus" / "alerts.yml")[0]
    assert set(document) == {"groups"}
    rules = []
    for group in document["groups"]:
        assert isinstance(group["name"], str) and group["rules"]
        rules.extend(group["rules"])
    return rules


def test_the_alert_rules_are_well_formed() -> None:
    rules = alert_rules()
    assert len({r["alert"] for r in rules}) == len(rules), "alert names repeat"
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule["alert"]
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
        assert DURATION.match(rule["for"]), f"{rule['alert']}: for: {rule['for']!r}"
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]
        balanced(rule["expr"], rule["alert"])


def dashboard_queries() -> list[str]:
    dashboard = documents(DEPLOY / "grafana" / "feedback-worker.json")[0]
    assert dashboard["title"] and dashboard["uid"]
    queries = []
    for panel in dashboard["panels"]:
        assert {"type", "title", "gridPos"} <= panel.keys()
        for target in panel.get("targets", []):
            balanced(target["expr"], panel["title"])
            queries.append(target["expr"])
    return queries


def test_the_dashboard_has_panels_for_throughput_lag_alerts_slack_and_tasks() -> None:
    queries = "\n".join(dashboard_queries())
    for metric in (
        "events_consumed_total",
        "consumer_lag_records",
        "alerts_posted_total",
        "alerts_failed_total",
        "slack_request_duration_seconds_bucket",
        "tasks",
    ):
        assert f"feedback_worker_{metric}" in queries


@pytest.mark.parametrize("where", ["dashboard", "alerts"])
def test_every_metric_queried_is_served_by_metrics_with_those_labels(where: str) -> None:
    queries = dashboard_queries() if where == "dashboard" else [r["expr"] for r in alert_rules()]
    assert [problem for query in queries for problem in unserved(query, served_metrics())] == []


def test_the_metric_check_names_an_unknown_metric_and_an_unknown_label() -> None:
    served: dict[str, set[str] | None] = {"feedback_worker_tasks": {"status"}, "feedback_worker_x_total": None}
    assert unserved('max by (status) (feedback_worker_tasks{status="open"}) + rate(feedback_worker_x_total[5m])', served) == []
    assert unserved("sum(rate(feedback_worker_typo_total[5m]))", served) == ["feedback_worker_typo_total is not served"]
    assert unserved('feedback_worker_tasks{state="open"}', served) == ["feedback_worker_tasks has no label ['state']"]
    assert unserved("max by (stauts) (feedback_worker_tasks)", served) == ["by (stauts): no such label on feedback_worker_tasks"]


def unserved(query: str, served: dict[str, set[str] | None]) -> list[str]:
    problems = []
    found = selectors(query)
    labels: set[str] = set(ADDED_BY_SCRAPE)
    unknown = False  # a metric served without samples: its labels cannot be told
    for name, matchers in found:
        if name in PROMETHEUS_OWN:
            continue
        if name not in served:
            problems.append(f"{name} is not served")
            continue
        known = served[name]
        if known is None:
            unknown = True
            continue
        labels |= known
        if not set(matchers) <= known | ADDED_BY_SCRAPE:
            problems.append(f"{name} has no label {sorted(set(matchers) - known - ADDED_BY_SCRAPE)}")
    if not unknown:
        for grouping in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", query):
            missing = [label.strip() for label in grouping.split(",") if label.strip() and label.strip() not in labels]
            if missing:
                problems.append(f"by ({', '.join(missing)}): no such label on {', '.join(n for n, _ in found)}")
    return problems


# -- helpers -------------------------------------------------------------------------------------------------


FUNCTIONS = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "rate",
    "increase",
    "deriv",
    "absent",
    "histogram_quantile",
    "by",
    "on",
    "without",
    "and",
    "or",
    "unless",
    "ignoring",
    "group_left",
    "group_right",
    "humanizeDuration",
    "bool",
}


def selectors(query: str) -> list[tuple[str, list[str]]]:
    """(metric name, label names matched) of every series selector in a PromQL expression."""
    found = []
    for match in re.finditer(r"(?<![\w\"'])([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?", query):
        name, braces = match.group(1), match.group(2)
        before = query[: match.start()].rstrip()
        if name in FUNCTIONS or before.endswith(("by (", "by(", "on (", "on(")) or re.fullmatch(r"\d+\w*", name):
            continue
        if query[match.end() :].lstrip().startswith("(") and braces is None:
            continue  # a function call
        if before.endswith(("(", ",")) and _in_grouping(query, match.start()):
            continue
        labels = re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", braces or "")
        found.append((name, labels))
    return found


def _in_grouping(query: str, at: int) -> bool:
    """Inside `by (...)`, `on (...)`, `without (...)`: label names, not metrics."""
    depth, i = 0, at - 1
    while i >= 0:
        if query[i] == ")":
            depth += 1
        elif query[i] == "(":
            if depth == 0:
                return bool(re.search(r"\b(by|on|without|ignoring|group_left|group_right)\s*$", query[:i]))
            depth -= 1
        i -= 1
    return False


def balanced(expr: str, where: str) -> None:
    stack = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in re.sub(r'"[^"]*"', '""', expr):
        if char in "([{":
            stack.append(char)
        elif char in pairs:
            assert stack and stack.pop() == pairs[char], f"{where}: unbalanced {char!r} in {expr!r}"
    assert not stack, f"{where}: unclosed {stack} in {expr!r}"
    for duration in re.findall(r"\[([^\]]+)\]", expr):
        assert DURATION.match(duration), f"{where}: range [{duration}] in {expr!r}"


@cache
def served_metrics() -> dict[str, set[str] | None]:
    """Sample name -> its label names (None: served, but no sample to tell its labels), from a real worker's /metrics."""
    harness = Harness()
    for partition, values in FEED.items():
        for v in values:
            harness.consumer.append("fb", None, v, partition)
    harness.start([TopicPartition("fb", p) for p in FEED] + [TopicPartition("actions", 0)])
    wait_for(lambda: len(harness.worker.cases.by_id) == 5 and not harness.worker.checkpoint.waiting, 10, "the feed handled")
    harness.finish()
    for method, call in (("chat.postMessage", Call("ok")), ("auth.test", Call("unavailable", "HTTP 503"))):
        harness.observability.observe(method, 0.1, call)
    served: dict[str, set[str] | None] = {}
    for family in text_string_to_metric_families(generate_latest(harness.observability.registry).decode()):
        for suffix in {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [""]):
            served[family.name + suffix] = None
        for sample in family.samples:
            served[sample.name] = (served.get(sample.name) or set()) | set(sample.labels)
    return served


# -- the container ---------------------------------------------------------------------------------------------


def healthcheck_command() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])\s*$", text, re.M)
    assert match, "the Dockerfile has no HEALTHCHECK CMD [...]"
    return json.loads(match.group(1))


@pytest.mark.parametrize("alive, code", [(True, 0), (False, 1)])
def test_the_image_healthcheck_asks_healthz_on_http_port(alive: bool, code: int) -> None:
    server = HttpServer(0, CollectorRegistry(), lambda: (alive, {}), lambda: (True, {}), host="127.0.0.1").start()
    try:
        command = [sys.executable if part == "python" else part for part in healthcheck_command()]
        done = subprocess.run(command, env={"HTTP_PORT": str(server.port)}, capture_output=True, timeout=30)
        assert done.returncode == code, done.stderr
    finally:
        server.close()
    assert f"EXPOSE {Settings.model_fields['http_port'].default}" in (ROOT / "Dockerfile").read_text()


def test_compose_publishes_http_port_and_sets_only_settings() -> None:
    worker = documents(ROOT / "docker-compose.yml")[0]["services"]["worker"]
    assert set(worker["environment"]) <= set(ENV_NAMES)
    port = str(worker["environment"]["HTTP_PORT"])
    assert f"{port}:{port}" in worker["ports"]
