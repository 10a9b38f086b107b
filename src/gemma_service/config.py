"""Settings: one pydantic-settings tree; env vars and CLI flags come from the same fields.

Each field names its environment variable (``env``) and, optionally, its CLI flag (``flag``);
``settings_args.py`` builds argparse options from these fields, so a setting is declared once.
``ServiceSettings`` is the root: the service's own settings, and each layer's settings class as
a branch (``memory``, ``upstream``). A branch's fields are still set flat, by env var, flag or
keyword.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gemma_service.engine.remote.settings import UpstreamSettings
from gemma_service.memory.settings import MemorySettings
from gemma_service.settings_fields import default_cache_dir, field_env, field_flag, setting

__all__ = [
    "MemorySettings",
    "ServiceSettings",
    "UpstreamSettings",
    "field_env",
    "field_flag",
    "setting",
]


def _flat_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Every name a field of ``cls`` may be given by (its name, its env var) → its name."""
    names: dict[str, str] = {}
    for name, info in cls.model_fields.items():
        names[name] = name
        env = field_env(info)
        if env:
            names[env] = names[env.lower()] = name
    return names


# Each branch of the tree: its field in ServiceSettings, its class, the names it is set by.
_BRANCHES: dict[str, tuple[type[BaseSettings], dict[str, str]]] = {
    "memory": (MemorySettings, _flat_names(MemorySettings)),
    "upstream": (UpstreamSettings, _flat_names(UpstreamSettings)),
}


class ServiceSettings(BaseSettings):
    """Everything `gemma-service serve` can be told, from env vars or flags."""

    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", populate_by_name=True, protected_namespaces=()
    )

    # --- branches: each layer's own settings --------------------------------------------------
    memory: MemorySettings = Field(
        default_factory=MemorySettings, description="the memory layer's settings"
    )
    upstream: UpstreamSettings = Field(
        default_factory=UpstreamSettings, description="the remote engine's upstream servers"
    )

    # --- model and engine -------------------------------------------------------------------
    model_path: Path | None = setting(
        None,
        "GEMMA_MODEL_PATH",
        "GGUF file to serve (default: the packaged Gemma 3 270M)",
        flag="--model",
    )
    mmproj_path: Path | None = setting(
        None,
        "GEMMA_MMPROJ_PATH",
        "projector GGUF (mmproj) for images/audio, beside the model (unset: text only)",
        flag="--mmproj",
    )
    model_alias: str | None = setting(
        None,
        "GEMMA_MODEL_ALIAS",
        "model id shown by /v1/models (default: the file's stem)",
        flag="--model-alias",
    )
    model_cache_dir: Path = setting(
        default_cache_dir() / "models",
        "GEMMA_MODEL_CACHE_DIR",
        "where the packaged default model is assembled",
        flag="--model-cache-dir",
    )
    models_dir: Path | None = setting(
        None,
        "GEMMA_MODELS_DIR",
        "folder whose *.gguf files are all servable, each by its file's stem (mmproj files "
        "pair with the model beside them)",
        flag="--models-dir",
    )
    models_config: Path | None = setting(
        None,
        "GEMMA_MODELS_CONFIG",
        "TOML file of models: paths, aliases, per-model settings, the default (docs/models.md)",
        flag="--models-config",
    )
    max_loaded_models: int = setting(
        3,
        "GEMMA_MAX_LOADED_MODELS",
        "models loaded at once; loading one more first unloads the least recently used idle "
        "one (0: no limit)",
        flag="--max-loaded-models",
        ge=0,
    )
    max_loaded_bytes: int = setting(
        0,
        "GEMMA_MAX_LOADED_BYTES",
        "bytes of model files loaded at once, the same way (0: no limit)",
        flag="--max-loaded-bytes",
        ge=0,
    )
    model_idle_s: float = setting(
        0.0,
        "GEMMA_MODEL_IDLE_S",
        "seconds a model may sit idle before it is unloaded (0: never; the default model too)",
        flag="--model-idle",
        ge=0,
    )
    model_load_wait_s: float = setting(
        120.0,
        "GEMMA_MODEL_LOAD_WAIT_S",
        "longest a request waits for its model to load before a 503 with Retry-After",
        flag="--model-load-wait",
        gt=0,
    )
    gpu_layers: int = setting(
        25,
        "GEMMA_GPU_LAYERS",
        "layers offloaded when the model holds the GPU",
        flag="--gpu-layers",
        ge=-1,
    )
    context_size: int = setting(
        65536,
        "GEMMA_CONTEXT_SIZE",
        "KV context in tokens, all sequences together: with the per-sequence KV layout each of "
        "the --parallel sequences gets an equal share (capped at the model's trained context)",
        flag="--ctx-size",
        ge=256,
    )
    batch_size: int = setting(
        512,
        "GEMMA_BATCH_SIZE",
        "tokens per decode step (prefill chunk budget)",
        flag="--batch-size",
        ge=16,
    )
    parallel: int = setting(
        8,
        "GEMMA_PARALLEL",
        "sequences decoded together (continuous batching)",
        flag="--parallel",
        ge=1,
        le=256,
    )
    threads: int = setting(
        0, "GEMMA_THREADS", "CPU threads for llama.cpp (0: all cores)", flag="--threads", ge=0
    )
    flash_attn: Literal["auto", "on", "off"] = setting(
        "auto", "GEMMA_FLASH_ATTN", "llama.cpp flash attention", flag="--flash-attn"
    )
    kv_cache_type: Literal["f16", "q8_0", "q4_0"] = setting(
        "f16", "GEMMA_KV_CACHE_TYPE", "KV cache precision", flag="--kv-cache-type"
    )
    cpu_repack: Literal["auto", "on", "off"] = setting(
        "auto",
        "GEMMA_CPU_REPACK",
        "repack weights for the CPU's matrix kernels: auto (proven by a start-up self-check), "
        "on, off",
        flag="--cpu-repack",
    )
    cpu_variant: str | None = setting(
        None,
        "GEMMA_CPU_VARIANT",
        "llama.cpp CPU kernel variant to load (e.g. haswell; default: the best this CPU runs)",
        flag="--cpu-variant",
    )
    cohort_window_s: float = setting(
        0.0,
        "GEMMA_COHORT_WINDOW_S",
        "requests arriving within this many seconds of each other start answering together "
        "(higher decode throughput across a burst, later first tokens for its early requests); "
        "0: each answers as soon as its prompt is in",
        flag="--cohort-window",
        ge=0.0,
    )
    kv_layout: Literal["per-sequence", "unified"] = setting(
        "per-sequence",
        "GEMMA_KV_LAYOUT",
        "per-sequence: one KV stream per sequence, attention over its own cells only; unified: "
        "one pool all sequences draw from (longer single prompts, slower with many)",
        flag="--kv-layout",
    )
    prefix_cache_slots: int = setting(
        8,
        "GEMMA_PREFIX_CACHE_SLOTS",
        "finished sequences whose KV stays cached for prefix reuse (0: off); with the "
        "per-sequence layout they stay in idle sequence slots, at most --parallel of them",
        flag="--prefix-cache-slots",
        ge=0,
        le=128,
    )
    max_queue: int = setting(
        64,
        "GEMMA_MAX_QUEUE",
        "waiting requests before new ones get 429",
        flag="--max-queue",
        ge=0,
    )
    request_timeout: float = setting(
        600.0,
        "GEMMA_REQUEST_TIMEOUT",
        "seconds a request may run before it is ended",
        flag="--request-timeout",
        gt=0,
    )
    default_max_tokens: int = setting(
        1024,
        "GEMMA_DEFAULT_MAX_TOKENS",
        "max_tokens when a request sets none",
        flag="--default-max-tokens",
        ge=1,
    )
    max_tokens_cap: int = setting(
        8192,
        "GEMMA_MAX_TOKENS_CAP",
        "largest max_tokens a request may ask for",
        flag="--max-tokens-cap",
        ge=1,
    )
    max_n: int = setting(8, "GEMMA_MAX_N", "largest n (choices per request)", flag="--max-n", ge=1)
    system_prompt: str | None = setting(
        None,
        "GEMMA_SYSTEM_PROMPT",
        "system prompt used when a chat has none",
        flag="--system-prompt",
    )

    # --- remote engine (GEMMA_ENGINE=remote) --------------------------------------------------
    engine: Literal["llama", "remote"] = setting(
        "llama",
        "GEMMA_ENGINE",
        "llama: serve the GGUF here; remote: stream from the OpenAI-compatible servers of "
        "GEMMA_UPSTREAM_URLS (GEMMA_MODEL_PATH then only supplies the tokenizer)",
        flag="--engine",
    )
    # --- HTTP --------------------------------------------------------------------------------
    host: str = setting("127.0.0.1", "HOST", "bind address", flag="--host")
    port: int = setting(8080, "PORT", "bind port", flag="--port", ge=0, le=65535)
    api_keys: str | None = setting(
        None,
        "GEMMA_API_KEYS",
        "comma-separated static API keys, each KEY or NAME:KEY, optionally followed by ' admin'",
        flag="--api-keys",
    )
    jwt_only: bool = setting(
        False, "JWT_ONLY", "accept only JWTs, not static API keys", flag="--jwt-only"
    )

    # --- GPU sharing -------------------------------------------------------------------------
    gpu_coordinator_url: str | None = setting(
        None,
        "GPU_COORDINATOR_URL",
        "GPU lease coordinator (unset: the GPU is held for the process lifetime)",
        flag="--gpu-coordinator-url",
    )

    gpu_keep_s: float = setting(
        30.0,
        "GEMMA_GPU_KEEP_S",
        "seconds the model stays on the GPU after the last request (with a coordinator)",
        flag="--gpu-keep",
        ge=0,
    )
    gpu_priority: int = setting(
        10,
        "GEMMA_GPU_PRIORITY",
        "GPU lease priority (higher preempts lower)",
        flag="--gpu-priority",
        ge=-1000,
        le=1000,
    )
    gpu_lease_ttl_s: float = setting(
        10.0,
        "GEMMA_GPU_LEASE_TTL_S",
        "GPU lease TTL; must exceed the time to move the model back to CPU",
        flag="--gpu-lease-ttl",
        gt=0,
    )
    gpu_max_wait_s: float = setting(
        10.0,
        "GEMMA_GPU_MAX_WAIT_S",
        "longest a request waits for the GPU before it runs on CPU",
        flag="--gpu-max-wait",
        ge=0,
    )
    gpu_holder: str = setting(
        "gemma-service",
        "GEMMA_GPU_HOLDER",
        "name this service holds the GPU lease under",
        flag="--gpu-holder",
    )

    # --- security and limits ----------------------------------------------------------------
    api_keys_file: Path | None = setting(
        None,
        "GEMMA_API_KEYS_FILE",
        "file of static API keys, one per line as KEY or NAME:KEY [admin] ('#' starts a comment)",
        flag="--api-keys-file",
    )
    jwt_secret: SecretStr | None = setting(
        None, "GEMMA_JWT_SECRET", "HS256 secret that signs accepted JWTs", flag="--jwt-secret"
    )
    jwt_public_key_file: Path | None = setting(
        None,
        "GEMMA_JWT_PUBLIC_KEY_FILE",
        "PEM public key (RSA or EC) that verifies RS256/ES256 JWTs",
        flag="--jwt-public-key-file",
    )
    jwt_jwks_file: Path | None = setting(
        None, "GEMMA_JWT_JWKS_FILE", "JWKS file of keys that verify JWTs", flag="--jwt-jwks-file"
    )
    jwt_audience: str | None = setting(
        None,
        "GEMMA_JWT_AUDIENCE",
        "required JWT 'aud' (unset: no audience check)",
        flag="--jwt-audience",
    )
    jwt_issuer: str | None = setting(
        None,
        "GEMMA_JWT_ISSUER",
        "required JWT 'iss' (unset: no issuer check)",
        flag="--jwt-issuer",
    )
    jwt_leeway_s: float = setting(
        30.0,
        "GEMMA_JWT_LEEWAY_S",
        "clock skew allowed on JWT exp/nbf",
        flag="--jwt-leeway",
        ge=0,
    )
    jwt_tenant_claim: str | None = setting(
        None,
        "GEMMA_JWT_TENANT_CLAIM",
        "JWT claim naming a tenant whose members share one data space (unset: each 'sub' its own)",
        flag="--jwt-tenant-claim",
    )
    jwt_admin_claim: str | None = setting(
        None,
        "GEMMA_JWT_ADMIN_CLAIM",
        "JWT claim that marks an admin (one who may act for other owners); unset: none",
        flag="--jwt-admin-claim",
    )
    jwt_admin_value: str = setting(
        "admin",
        "GEMMA_JWT_ADMIN_VALUE",
        "value of GEMMA_JWT_ADMIN_CLAIM that marks an admin (equal, listed, or a word of it)",
        flag="--jwt-admin-value",
        min_length=1,
    )
    allow_unauthenticated: bool = setting(
        False,
        "GEMMA_ALLOW_UNAUTHENTICATED",
        "serve without auth on a non-loopback bind (refused otherwise)",
        flag="--allow-unauthenticated",
    )
    cors_origins: str | None = setting(
        None,
        "GEMMA_CORS_ORIGINS",
        "comma-separated origins allowed by CORS (unset: none)",
        flag="--cors-origins",
    )
    max_body_bytes: int = setting(
        10 * 1024 * 1024,
        "GEMMA_MAX_BODY_BYTES",
        "largest request body (413 beyond)",
        flag="--max-body-bytes",
        ge=1024,
    )
    max_header_bytes: int = setting(
        32 * 1024,
        "GEMMA_MAX_HEADER_BYTES",
        "largest request head (request line + headers)",
        flag="--max-header-bytes",
        ge=1024,
    )
    max_messages: int = setting(
        1000,
        "GEMMA_MAX_MESSAGES",
        "most messages in one chat request",
        flag="--max-messages",
        ge=1,
    )
    max_message_chars: int = setting(
        400_000,
        "GEMMA_MAX_MESSAGE_CHARS",
        "longest message or prompt, in characters",
        flag="--max-message-chars",
        ge=1,
    )
    rate_limit_rpm: int = setting(
        0,
        "GEMMA_RATE_LIMIT_RPM",
        "requests per minute per caller (0: unlimited)",
        flag="--rate-limit-rpm",
        ge=0,
    )
    rate_limit_tpm: int = setting(
        0,
        "GEMMA_RATE_LIMIT_TPM",
        "prompt + generated tokens per minute per caller (0: unlimited)",
        flag="--rate-limit-tpm",
        ge=0,
    )
    drain_s: float = setting(
        25.0,
        "GEMMA_DRAIN_S",
        "seconds in-flight requests may finish after SIGTERM",
        flag="--drain",
        ge=0,
    )
    wedged_after_s: float = setting(
        60.0,
        "GEMMA_WEDGED_AFTER_S",
        "work pending with no engine step this long: not ready",
        flag="--wedged-after",
        gt=0,
    )
    image_url_allowlist: str | None = setting(
        None,
        "GEMMA_IMAGE_URL_ALLOWLIST",
        "hosts remote image URLs may come from, comma-separated ('*.example.com'; unset: none)",
        flag="--image-url-allowlist",
    )
    image_url_allow_private: bool = setting(
        False,
        "GEMMA_IMAGE_URL_ALLOW_PRIVATE",
        "also fetch from allowlisted hosts on private/loopback addresses (an internal server)",
        flag="--image-url-allow-private",
    )
    image_max_bytes: int = setting(
        5 * 1024 * 1024,
        "GEMMA_IMAGE_MAX_BYTES",
        "largest image (data URL or fetched)",
        flag="--image-max-bytes",
        ge=1,
    )
    max_images_per_request: int = setting(
        8,
        "GEMMA_MAX_IMAGES",
        "most images one request may carry",
        flag="--max-images",
        ge=0,
    )
    image_max_pixels: int = setting(
        16_000_000,
        "GEMMA_IMAGE_MAX_PIXELS",
        "largest image, in pixels (width x height)",
        flag="--image-max-pixels",
        ge=1,
    )
    audio_max_bytes: int = setting(
        10 * 1024 * 1024,
        "GEMMA_AUDIO_MAX_BYTES",
        "largest audio clip (decoded base64)",
        flag="--audio-max-bytes",
        ge=1,
    )
    audio_max_seconds: float = setting(
        30.0,
        "GEMMA_AUDIO_MAX_SECONDS",
        "longest audio clip, in seconds",
        flag="--audio-max-seconds",
        gt=0,
    )
    media_cache_mb: int = setting(
        64,
        "GEMMA_MEDIA_CACHE_MB",
        "encoded images/audio kept by content, so a repeated one is not encoded again",
        flag="--media-cache-mb",
        ge=0,
    )
    image_fetch_timeout_s: float = setting(
        10.0,
        "GEMMA_IMAGE_FETCH_TIMEOUT_S",
        "time allowed to fetch one remote image",
        flag="--image-fetch-timeout",
        gt=0,
    )

    # --- logging -----------------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = setting(
        "info", "GEMMA_LOG_LEVEL", "log level", flag="--log-level"
    )

    @model_validator(mode="before")
    @classmethod
    def _branch_fields_flat(cls, data: Any) -> Any:
        """Branch settings given flat (flags, keywords) go to their branch (``memory``,
        ``upstream``)."""
        if not isinstance(data, dict):
            return data
        for branch, (branch_cls, names) in _BRANCHES.items():
            flat = {names[k]: v for k, v in data.items() if k in names}
            if not flat:
                continue
            data = {k: v for k, v in data.items() if k not in names}
            given = data.get(branch)
            base = given.model_dump() if isinstance(given, branch_cls) else dict(given or {})
            data[branch] = branch_cls(**{**base, **flat})
        return data

    @field_validator("jwt_tenant_claim", "jwt_admin_claim", mode="before")
    @classmethod
    def _empty_claim_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("model_path", "mmproj_path", "models_dir", "models_config", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @property
    def api_key_list(self) -> list[str]:
        return [k.strip() for k in (self.api_keys or "").split(",") if k.strip()]

    @property
    def effective_threads(self) -> int:
        return self.threads or (os.cpu_count() or 1)
