"""The deployment files agree with the agent and with each other.

deploy/kubernetes, deploy/Dockerfile and the Grafana dashboard repeat facts the agent owns
(ports, routes, config paths, token variables, metric names); these tests fail when one side
changes without the other. Nothing here needs a cluster or Docker.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
import yaml

from aims_agent.config import Config, parse_config
from aims_agent.errors import ConfigError
from aims_agent.metrics import Metrics
from tests.conftest import binary

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DASHBOARD = ROOT / "configs" / "grafana" / "aims-agent.json"
AGENT_CONTAINER = "aims-agent"
CONFIG_KEY = "agent.yaml"


# --- the manifests ---------------------------------------------------------------------------


def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def one(kind: str) -> dict[str, Any]:
    found = [d for d in manifests() if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = one("Deployment")["spec"]["template"]["spec"]
    return spec


def container(name: str) -> dict[str, Any]:
    (found,) = [c for c in pod_spec()["containers"] if c["name"] == name]
    return found


def model_container() -> dict[str, Any]:
    (found,) = [c for c in pod_spec()["containers"] if c["name"] != AGENT_CONTAINER]
    return found


def config_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(one("ConfigMap")["data"][CONFIG_KEY])
    return data


def config_volume() -> str:
    cm_name = one("ConfigMap")["metadata"]["name"]
    (volume,) = [
        v["name"] for v in pod_spec()["volumes"] if v.get("configMap", {}).get("name") == cm_name
    ]
    return str(volume)


def config_mount() -> PurePosixPath:
    """Where the sidecar sees the ConfigMap's files."""
    (mount,) = [
        m for m in container(AGENT_CONTAINER)["volumeMounts"] if m["name"] == config_volume()
    ]
    return PurePosixPath(mount["mountPath"])


def mount_of(path: str | Path) -> dict[str, Any]:
    """The sidecar's volume mount holding `path` (the deepest one)."""
    p = PurePosixPath(path)
    mounts = [
        m
        for m in container(AGENT_CONTAINER)["volumeMounts"]
        if p.is_relative_to(PurePosixPath(m["mountPath"]))
    ]
    assert mounts, f"{path} is on no volume of the {AGENT_CONTAINER} container"
    return max(mounts, key=lambda m: len(m["mountPath"]))


def container_ports(c: dict[str, Any]) -> dict[str, int]:
    return {p.get("name", str(p["containerPort"])): p["containerPort"] for p in c["ports"]}


def write_reference(path: Path, cfg: dict[str, Any]) -> None:
    """A small Parquet file with the schema's columns, standing in for the mounted reference."""
    import pyarrow as pa
    from pyarrow import parquet

    schema = cfg["schema"]
    rng = np.random.default_rng(0)
    n = 200
    cols: dict[str, Any] = {c: rng.normal(size=n) for c in schema.get("numeric", [])}
    cols |= {c: rng.choice(["a", "b", "c"], n).tolist() for c in schema.get("categorical", [])}
    cols[schema.get("prediction", "prediction")] = rng.integers(0, 2, n).astype(str).tolist()
    if schema.get("score"):
        cols[schema["score"]] = rng.random(n)
    path.parent.mkdir(parents=True, exist_ok=True)
    parquet.write_table(pa.table(cols), path)


def local_config(tmp_path: Path) -> Config:
    """The ConfigMap's config, validated, with its pod paths moved under tmp_path."""
    data = config_data()
    data["agent"]["evidence_dir"] = str(tmp_path / "evidence")
    for model in data["models"]:
        stand_in = tmp_path / "reference" / model["name"] / Path(model["reference"]["path"]).name
        write_reference(stand_in, model)
        model["reference"]["path"] = str(stand_in)
    return parse_config(data, base_dir=tmp_path)


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return local_config(tmp_path)


def test_every_manifest_parses_and_is_listed_in_the_kustomization():
    docs = manifests()
    assert {d["kind"] for d in docs} >= {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "ServiceMonitor",
        "Kustomization",
    }
    for d in docs:
        assert d.get("apiVersion") and d.get("kind"), d
        if d["kind"] != "Kustomization":
            assert d["metadata"]["name"], d
    listed = set(one("Kustomization")["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_configmap_config_validates_with_the_agents_loader(tmp_path):
    cfg = local_config(tmp_path)
    assert cfg.agent.host == "0.0.0.0", "the probes and Prometheus reach the pod IP"
    assert all(m.proxy is not None and m.proxy.host == "0.0.0.0" for m in cfg.models)
    # the loader checks that reference files exist: without the stand-ins it must refuse
    with pytest.raises(ConfigError, match=r"models\[0\]\.reference\.path: file not found"):
        parse_config(config_data(), base_dir=tmp_path)


def test_config_paths_are_on_the_right_volumes():
    data = config_data()
    evidence = data["agent"]["evidence_dir"]
    assert PurePosixPath(evidence).is_absolute()
    assert not mount_of(evidence).get("readOnly"), "the evidence volume must be writable"
    assert mount_of(evidence)["mountPath"] == evidence
    for model in data["models"]:
        ref = model["reference"]["path"]
        assert PurePosixPath(ref).is_absolute(), "relative paths would land in the ConfigMap"
        assert mount_of(ref)["name"] != config_volume()


def test_pod_is_non_root_with_a_read_only_root_and_writable_scratch():
    spec = pod_spec()
    assert spec["securityContext"]["runAsNonRoot"] is True
    sc = container(AGENT_CONTAINER)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert not mount_of("/tmp").get("readOnly"), "tempfile needs a writable /tmp"
    emptydirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    assert mount_of("/tmp")["name"] in emptydirs


def test_sidecar_listens_where_the_config_says_and_proxies_to_the_model(cfg):
    ports = set(container_ports(container(AGENT_CONTAINER)).values())
    assert cfg.agent.port in ports
    for m in cfg.models:
        assert m.proxy is not None
        assert m.proxy.port in ports
        upstream = urlsplit(m.proxy.upstream)
        assert upstream.hostname in {"127.0.0.1", "localhost"}, "the model is in the same pod"
        assert upstream.port in container_ports(model_container()).values()
    # the model server must not listen on the tap's port
    assert not ports & set(container_ports(model_container()).values())


def test_service_targets_container_ports_and_exposes_the_tap_and_metrics(cfg):
    svc = one("Service")
    by_name = {n: p for c in pod_spec()["containers"] for n, p in container_ports(c).items()}
    targets = {}
    for port in svc["spec"]["ports"]:
        target = port["targetPort"]
        assert target in by_name or target in by_name.values(), f"no container port {target}"
        targets[port["name"]] = by_name.get(target, target)
    assert targets["metrics"] == cfg.agent.port
    assert {m.proxy.port for m in cfg.models if m.proxy} <= set(targets.values())
    model_only = set(container_ports(model_container()).values())
    assert not model_only & set(targets.values()), "clients must not bypass the proxy tap"
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()


def test_probes_are_routes_of_the_agent(cfg):
    import asyncio

    import httpx

    from aims_agent.agent.api import create_app
    from aims_agent.agent.runtime import Runtime

    async def answering(app: Any, paths: list[str]) -> set[str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
            # /readyz is 503 here: the configmap's model server is not running beside the test
            return {p for p in paths if (await client.get(p)).status_code in (200, 503)}

    runtime = Runtime(cfg)
    try:
        app = create_app(runtime, {})
        routes = asyncio.run(answering(app, ["/healthz", "/readyz", "/metrics"]))
    finally:
        runtime.close()
    agent = container(AGENT_CONTAINER)
    ports = container_ports(agent)
    assert agent["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert agent["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = agent.get(kind)
        if probe is None:
            continue
        assert probe["httpGet"]["path"] in routes
        port = probe["httpGet"]["port"]
        assert ports.get(port, port) == cfg.agent.port, f"{kind} must hit the API port"
    assert "/metrics" in routes


def test_prometheus_scrapes_the_metrics_route(cfg):
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == cfg.agent.port
    assert annotations["prometheus.io/path"] == "/metrics"
    monitor, svc = one("ServiceMonitor"), one("Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    svc_ports = {p["name"] for p in svc["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in svc_ports
        assert endpoint["path"] == "/metrics"


def test_tokens_come_from_the_secret_under_the_configs_names(cfg):
    secret = one("Secret")
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    wanted = {t.env for t in cfg.agent.tokens}
    assert keys == wanted
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container(AGENT_CONTAINER)["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert set(refs) == wanted
    for env, ref in refs.items():
        assert ref == {"name": secret["metadata"]["name"], "key": env}


# --- the Dockerfile --------------------------------------------------------------------------


def dockerfile() -> dict[str, list[str]]:
    """Instructions of the final stage, continuation lines joined: {"EXPOSE": ["8000 8080"]}."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            out = {}
        out.setdefault(word.upper(), []).append(rest.strip())
    return out


def test_dockerfile_matches_the_config_and_the_deployment(cfg):
    d = dockerfile()
    exposed = {int(p.split("/")[0]) for line in d["EXPOSE"] for p in line.split()}
    assert {cfg.agent.port, *(m.proxy.port for m in cfg.models if m.proxy)} <= exposed
    assert json.loads(d["ENTRYPOINT"][-1]) == ["aims-agent"]
    cmd = json.loads(d["CMD"][-1])
    assert cmd[:1] == ["run"]
    config_path = cmd[cmd.index("--config") + 1]
    assert config_path == str(config_mount() / CONFIG_KEY)
    assert container(AGENT_CONTAINER).get("args", cmd) == cmd
    uid = d["USER"][-1].split(":")[0]
    assert uid.isdigit() and uid != "0", "a numeric non-root uid, for runAsNonRoot"
    assert int(uid) == container(AGENT_CONTAINER)["securityContext"]["runAsUser"]
    (health,) = d["HEALTHCHECK"]
    assert f"127.0.0.1:{cfg.agent.port}/healthz" in health and "urllib" in health


def test_the_cli_takes_the_arguments_the_image_passes():
    from aims_agent.agent.cli import parser

    args = parser().parse_args(json.loads(dockerfile()["CMD"][-1]))
    assert args.command == "run"
    assert args.config == str(config_mount() / CONFIG_KEY)


# --- the Grafana dashboard -------------------------------------------------------------------

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
}
# a metric name, not a label matcher (`aims_check_verdict="breach"` names a label)
_METRIC = re.compile(r"\b(aims_[a-z0-9_]+)\b(?!\s*(?:=~|!~|!=|=(?!=)))")


def exported_names() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        names |= {family.name + s for s in _SUFFIXES[family.type]}
    return names


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in panels:
        out += [p, *all_panels(p.get("panels", []))]
    return out


def queries() -> list[str]:
    d = dashboard()
    exprs = [t["expr"] for p in all_panels(d["panels"]) for t in p.get("targets", [])]
    for var in d["templating"]["list"]:
        if var["type"] == "query":
            q = var["query"]
            exprs.append(q["query"] if isinstance(q, dict) else q)
    return exprs


def test_dashboard_parses_with_unique_panel_ids_and_its_variables():
    d = dashboard()
    panels = all_panels(d["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert d["uid"] and d["schemaVersion"] >= 36
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("model", "check"):
        assert variables[name]["type"] == "query"
        assert "label_values(" in variables[name]["definition"]
    for p in panels:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
            assert p["targets"], p["title"]


def test_dashboard_uses_only_metrics_the_agent_exports():
    used = {name for q in queries() for name in _METRIC.findall(q)}
    assert len(used) >= 15, used
    unknown = used - exported_names()
    assert not unknown, f"not exported by the agent: {sorted(unknown)}"


def test_dashboard_metric_label_values_are_real_check_metrics():
    from aims_agent.checks.kinds import (
        estimated_performance,
        estimates,
        fairness,
        intended_use,
        oversight,
        performance,
    )

    sources = " ".join(p.read_text() for p in (ROOT / "aims_agent" / "checks").rglob("*.py"))
    known = set(re.findall(r'metric="(\w+)"', sources))  # drift and data quality
    known |= {m for task in performance.METRICS.values() for m in task}
    known |= set(fairness.METRICS) | set(fairness.RATES) | {"group_size"}
    known |= set(intended_use.METRICS)
    known |= {estimates.PREFIX + m for m in [*estimated_performance.ESTIMATORS, "mae", "rmse"]}
    known |= set(oversight.METRICS)
    used = set()
    for q in queries():
        for value in re.findall(r'metric=~?"([^"]+)"', q):
            if re.fullmatch(r"\w+(\|\w+)*", value):  # literal names, not patterns
                used |= set(value.split("|"))
            else:
                assert any(re.fullmatch(value, k) for k in known), value
    assert used and not used - known, sorted(used - known)


def test_dashboard_queries_are_valid_promql(tmp_path):
    promtool = binary("promtool", install="scripts/servers.sh")
    rules = [
        {"record": f"dashboard:query_{i}", "expr": re.sub(r"\$\w+", ".*", q)}
        for i, q in enumerate(queries())
        if not q.startswith("label_values(")
    ]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
