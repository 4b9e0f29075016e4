"""deploy/: the container image, the compose file and the Kubernetes manifests. No container engine
runs on these machines, so they are checked as far as that goes offline: the compose file against
the Compose specification's schema (vendored by check-jsonschema), every Kubernetes object against
the Kubernetes API schemas (vendored by kubernetes-validate, strict: unknown fields fail), and
every file, command, port and probe they name against this repository."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.cli import build_parser
from tests.conftest import ROLES, ROOT

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
CONTAINERFILE = DEPLOY / "container" / "Containerfile"
KUBERNETES_VERSION = "1.34.0"


def worker_args_parse(args: list[str]) -> None:
    parsed = build_parser().parse_args(["worker", *args])
    assert parsed.stage in ROLES


def test_containerfile_copies_what_exists_and_runs_the_worker_command():
    text = CONTAINERFILE.read_text()
    for line in re.findall(r"^COPY (.+)$", text, flags=re.M):
        *sources, _target = line.split()
        for source in sources:
            assert (ROOT / source).exists(), source
    entry = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, flags=re.M).group(1))
    command = json.loads(re.search(r"^CMD (.+)$", text, flags=re.M).group(1))
    assert entry[:2] == ["pipeline", "worker"]
    assert 'pipeline = "pipeline.cli:main"' in (ROOT / "pyproject.toml").read_text()
    worker_args_parse(command)
    assert "9100" in command and "EXPOSE 9100" in text
    ignore = (CONTAINERFILE.parent / "Containerfile.dockerignore").read_text()
    for kept in ("pyproject.toml", "README.md", "pipeline/", "config/"):
        assert f"!{kept}" in ignore


def test_compose_file_follows_the_compose_specification_and_names_existing_files():
    import jsonschema

    # the file only: importing check_jsonschema would import its CLI, which needs a newer click than Faust's
    spec = importlib.util.find_spec("check_jsonschema")
    assert spec is not None and spec.submodule_search_locations, "pip install check-jsonschema"
    vendored = Path(spec.submodule_search_locations[0]) / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(vendored.read_text())
    compose = yaml.safe_load(COMPOSE.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
    here = COMPOSE.parent
    services = compose["services"]
    for name, service in services.items():
        build = service.get("build")
        if build:
            assert (here / build["context"] / build["dockerfile"]).resolve() == CONTAINERFILE.resolve()
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image ({image})"
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith((".", "/")):
                assert (here / host).exists(), f"{name}: {host}"
    for stage in ROLES:
        worker = services[stage]
        worker_args_parse(worker["command"])
        # scalable with --scale: no fixed name, no published port
        assert "container_name" not in worker and "ports" not in worker
        assert worker["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert services["topics"]["entrypoint"] == ["pipeline", "topics"]
    prometheus = yaml.safe_load((here / "prometheus.yml").read_text())
    assert set(prometheus["scrape_configs"][0]["dns_sd_configs"][0]["names"]) == set(ROLES)


def test_compose_prometheus_configuration_passes_promtool(tmp_path):
    import shutil

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("no promtool: install the Debian package prometheus (scripts/bootstrap does as root)")
    # as mounted in the container: the alert rules beside the configuration
    shutil.copy(COMPOSE.parent / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(DEPLOY / "monitoring" / "alerts.yml", tmp_path / "alerts.yml")
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def kubernetes_objects() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out.extend((path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return out


def test_every_kubernetes_object_is_valid_against_the_api_schemas():
    import kubernetes_validate

    objects = kubernetes_objects()
    assert {doc["kind"] for _, doc in objects} >= {"Namespace", "ConfigMap", "Deployment", "PodDisruptionBudget",
                                                  "HorizontalPodAutoscaler"}
    for name, doc in objects:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']} {doc['metadata']['name']}: {exc}")


def test_kubernetes_manifests_fit_together_and_fit_the_workers():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    objects = [doc for _, doc in kubernetes_objects()]
    deployments = {d["metadata"]["name"]: d for d in objects if d["kind"] == "Deployment"}
    assert set(deployments) == set(ROLES)
    for stage, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        container = pod["spec"]["containers"][0]
        worker_args_parse(container["args"])
        assert container["args"][0] == stage
        port = int(container["args"][container["args"].index("--metrics-port") + 1])
        assert container["ports"][0]["containerPort"] == port
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    for kind in ("PodDisruptionBudget", "HorizontalPodAutoscaler"):
        found = {d["metadata"]["name"]: d for d in objects if d["kind"] == kind}
        assert set(found) == set(ROLES), kind
    for stage, pdb in ((d["metadata"]["name"], d) for d in objects if d["kind"] == "PodDisruptionBudget"):
        labels = deployments[stage]["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for stage, hpa in ((d["metadata"]["name"], d) for d in objects if d["kind"] == "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": stage}
        assert hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchLabels"] == {"stage": stage}
    # the lag the autoscalers read is what the alert rules record from the workers' metrics
    assert "record: stage:news_pipeline_consumer_lag:sum" in (DEPLOY / "monitoring" / "alerts.yml").read_text()


def test_the_configmap_holds_the_configuration_file():
    import runpy

    current = (K8S / "pipeline-config.yaml").read_text()
    config_text = (ROOT / "config" / "pipeline.toml").read_text()
    assert yaml.safe_load(current)["data"]["pipeline.toml"] == config_text, \
        "config/pipeline.toml changed: run scripts/k8s-configmap"
    script = runpy.run_path(str(ROOT / "scripts" / "k8s-configmap"), run_name="k8s_configmap")
    assert script["configmap"](config_text) == current, "pipeline-config.yaml is stale: run scripts/k8s-configmap"
