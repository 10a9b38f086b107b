"""deploy/kubernetes: the front over a vLLM fleet and PostgreSQL, as kustomize renders it.

Rendered with `kubectl kustomize` where kubectl exists (offline), else assembled from the
kustomization files; checked against the settings that exist and against itself (selectors,
probes, one upstream URL per vLLM replica). Where the `kubernetes-validate` package is
installed, every object is also validated against the Kubernetes schemas."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gemma_service.config import ServiceSettings, field_env
from gemma_service.engine.remote.settings import UpstreamSettings
from gemma_service.memory.settings import MemorySettings

ROOT = Path(__file__).resolve().parents[3]
KUBE = ROOT / "deploy" / "kubernetes"
OVERLAY = KUBE / "overlays" / "vllm-fleet"
KNOWN_ENV = {
    env
    for settings in (ServiceSettings, MemorySettings, UpstreamSettings)
    for info in settings.model_fields.values()
    if (env := field_env(info))
}


def _assemble(folder: Path) -> list[dict[str, Any]]:
    """The objects a kustomization lists (resources and components), without kubectl."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    objects: list[dict[str, Any]] = []
    for entry in [*spec.get("resources", []), *spec.get("components", [])]:
        path = (folder / entry).resolve()
        if path.is_dir():
            objects.extend(_assemble(path))
        else:
            objects.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return objects


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return _assemble(OVERLAY)
    done = subprocess.run(
        [kubectl, "kustomize", str(OVERLAY)], capture_output=True, text=True, check=True
    )
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def test_the_picture_is_complete(objects: list[dict[str, Any]]) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {
        ("Deployment", "gemma-front"),
        ("Service", "gemma-front"),
        ("HorizontalPodAutoscaler", "gemma-front"),
        ("PodDisruptionBudget", "gemma-front"),
        ("Secret", "gemma-front-keys"),
        ("StatefulSet", "vllm"),
        ("Service", "vllm"),
        ("StatefulSet", "postgres"),
        ("Service", "postgres"),
    } <= kinds


def test_the_front_is_configured_with_settings_that_exist(objects: list[dict[str, Any]]) -> None:
    config = _one(objects, "ConfigMap", "gemma-front")["data"]
    keys = _one(objects, "Secret", "gemma-front-keys")["stringData"]
    unknown = (set(config) | set(keys)) - KNOWN_ENV
    assert not unknown, f"not gemma-service settings: {unknown}"
    assert config["GEMMA_ENGINE"] == "remote" and config["GEMMA_UPSTREAM_KIND"] == "vllm"
    assert keys["GEMMA_MEMORY_URL"].startswith("postgresql://")
    ServiceSettings(**{**config, **keys})  # the values parse as the settings they name


def test_one_upstream_url_per_vllm_replica(objects: list[dict[str, Any]]) -> None:
    vllm = _one(objects, "StatefulSet", "vllm")
    service = _one(objects, "Service", "vllm")
    assert service["spec"]["clusterIP"] == "None"  # per-replica DNS names
    port = service["spec"]["ports"][0]["port"]
    urls = _one(objects, "ConfigMap", "gemma-front")["data"]["GEMMA_UPSTREAM_URLS"].split(",")
    expected = [f"http://vllm-{i}.vllm:{port}" for i in range(vllm["spec"]["replicas"])]
    assert urls == expected
    [container] = vllm["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "--enable-prefix-caching" in container["args"]


def test_probes_selectors_and_scaling_fit_together(objects: list[dict[str, Any]]) -> None:
    front = _one(objects, "Deployment", "gemma-front")
    labels = front["spec"]["template"]["metadata"]["labels"]
    [container] = front["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for kind in ("Service", "PodDisruptionBudget"):
        spec = _one(objects, kind, "gemma-front")["spec"]
        selector = spec["selector"].get("matchLabels", spec["selector"])
        assert selector.items() <= labels.items()
    hpa = _one(objects, "HorizontalPodAutoscaler", "gemma-front")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gemma-front",
    }
    assert any(m["type"] == "Pods" for m in hpa["metrics"])  # scaled on request rate
    assert _one(objects, "PodDisruptionBudget", "gemma-front")["spec"]["minAvailable"] >= 1


def test_every_object_passes_the_kubernetes_schemas(objects: list[dict[str, Any]]) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for obj in objects:
        kubernetes_validate.validate(obj, "1.32.0", strict=True)
