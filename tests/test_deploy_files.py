"""Dockerfile (hadolint + structure), Compose file (vendored compose-spec schema + structure), collector
config, and the Kubernetes manifests (kubernetes-validate, offline schemas). No Docker engine needed."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support import BIN, ROOT

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
GRACEFUL_TIMEOUT_S = 30


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--failure-threshold", "info", "Dockerfile"], cwd=ROOT, capture_output=True
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_dockerfile_structure() -> None:
    instructions = dockerfile_instructions()
    stages = [args for op, args in instructions if op == "FROM"]
    assert len(stages) >= 3 and stages[-1].startswith("python:3.11-slim")
    runtime = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :]
    runs = " ".join(args for op, args in instructions if op == "RUN")
    assert "uv sync --frozen --no-dev" in runs
    users = [args for op, args in runtime if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    [cmd] = [args for op, args in runtime if op == "CMD"]
    argv = json.loads(cmd)  # exec form
    assert argv[0] == "gunicorn" and "-c" in argv and argv[argv.index("-c") + 1].endswith("gunicorn.conf.py")
    assert argv[-1] == "llm_api.main:app"
    [healthcheck] = [args for op, args in runtime if op == "HEALTHCHECK"]
    probe = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    assert probe[:2] == ["python", "-c"] and "urllib.request" in probe[2] and "/healthz" in probe[2]
    assert "curl" not in healthcheck


def test_healthcheck_one_liner_runs(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The HEALTHCHECK command itself, against the real gateway: 0 when healthy, non-zero when not."""
    [healthcheck] = [args for op, args in dockerfile_instructions() if op == "HEALTHCHECK"]
    probe = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    port = gateway.base_url.rsplit(":", 1)[1]
    ok = subprocess.run([str(BIN / "python"), *probe[1:]], env={"BIND": f"0.0.0.0:{port}"}, timeout=30)
    assert ok.returncode == 0
    down = subprocess.run([str(BIN / "python"), *probe[1:]], env={"BIND": "0.0.0.0:1"}, capture_output=True)
    assert down.returncode != 0


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "tests", "bench", ".env"} <= ignored
    copies = [
        args.split()[:-1] for op, args in dockerfile_instructions() if op == "COPY" and "--from" not in args
    ]
    copied = {source for sources in copies for source in sources}
    assert copied == {"pyproject.toml", "uv.lock", "README.md", "llm_api", "gunicorn.conf.py"}
    assert not copied & ignored


def test_compose_file_matches_the_compose_spec() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"],
        cwd=DEPLOY,
        capture_output=True,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_compose_stack_structure() -> None:
    compose = load_yaml(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    assert {"app", "nginx", "redis", "postgres", "otel-collector", "jaeger"} <= set(services)
    app = services["app"]
    assert "ports" not in app and "container_name" not in app  # scalable: nginx publishes
    assert services["nginx"]["ports"]
    assert app["build"]["context"] == ".." and (DEPLOY / app["build"]["context"] / "Dockerfile").exists()
    env = app["environment"]
    assert env["REDIS_URL"].startswith("redis://redis:")
    assert (
        env["DATABASE_URL"].startswith("postgresql+asyncpg://") and "@postgres:5432/" in env["DATABASE_URL"]
    )
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"
    assert any(volume.startswith("pgdata:") for volume in services["postgres"]["volumes"])
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert env["FORWARDED_ALLOW_IPS"] == services["nginx"]["networks"]["backend"]["ipv4_address"]
    assert int(app["stop_grace_period"].rstrip("s")) > GRACEFUL_TIMEOUT_S
    for service in ("nginx", "otel-collector"):
        for volume in services[service]["volumes"]:
            assert (DEPLOY / volume.split(":")[0]).exists(), volume


def test_collector_sends_traces_to_jaeger() -> None:
    config = load_yaml(DEPLOY / "otel-collector.yaml")
    pipelines = config["service"]["pipelines"]
    assert pipelines["traces"]["receivers"] == ["otlp"] and pipelines["metrics"]["receivers"] == ["otlp"]
    [exporter] = pipelines["traces"]["exporters"]
    assert config["exporters"][exporter]["endpoint"] == "jaeger:4317"
    for pipeline in pipelines.values():
        assert set(pipeline["processors"]) <= set(config["processors"])
        assert set(pipeline["exporters"]) <= set(config["exporters"])


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_kubernetes(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, "1.33", strict=True)


def manifests(name: str = "llm-api") -> dict[str, dict[str, Any]]:
    """The documents of one application (label app.kubernetes.io/name), by kind."""
    return {
        doc["kind"]: doc
        for path in MANIFESTS
        for doc in yaml.safe_load_all(path.read_text())
        if doc["metadata"]["labels"]["app.kubernetes.io/name"] == name
    }


def test_kustomization_lists_every_manifest() -> None:
    assert sorted(load_yaml(K8S / "kustomization.yaml")["resources"]) == [p.name for p in MANIFESTS]


def test_deployment_is_wired_for_graceful_and_safe_operation() -> None:
    docs = manifests()
    deployment = docs["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert pod["terminationGracePeriodSeconds"] > GRACEFUL_TIMEOUT_S + 5  # preStop sleep + graceful timeout
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    assert secrets == {"llm-api-keys"}
    assert {"API_KEYS", "DATABASE_URL", "ADMIN_API_KEY"} <= {e["name"] for e in container["env"]}
    [config_ref] = [source["configMapRef"]["name"] for source in container["envFrom"]]
    assert config_ref == docs["ConfigMap"]["metadata"]["name"]
    assert docs["Service"]["spec"]["selector"].items() <= labels.items()
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    port_names = {p["name"] for p in container["ports"]}
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] in port_names


def test_postgres_is_wired_for_the_replicas() -> None:
    """Every replica shares one PostgreSQL: its Service answers on 5432, its data on a volume claim."""
    docs = manifests("llm-api-postgres")
    service, statefulset = docs["Service"], docs["StatefulSet"]
    pod = statefulset["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["port"] == 5432
    [container] = pod["spec"]["containers"]
    assert container["readinessProbe"]["exec"]["command"][0] == "pg_isready"
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] in {m["name"] for m in container["volumeMounts"]}
    password = next(e for e in container["env"] if e["name"] == "POSTGRES_PASSWORD")
    assert "secretKeyRef" in password["valueFrom"]
