"""Settings of the remote engine (``GEMMA_ENGINE=remote``): its upstream servers."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from gemma_service.settings_fields import setting


class UpstreamSettings(BaseSettings):
    """Where the upstreams are and how they are treated; a branch of ``ServiceSettings``."""

    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", populate_by_name=True, protected_namespaces=()
    )

    upstream_urls: str | None = setting(
        None,
        "GEMMA_UPSTREAM_URLS",
        "comma-separated base URLs of the upstream servers (remote engine)",
        flag="--upstream-urls",
    )
    upstream_api_key: SecretStr | None = setting(
        None,
        "GEMMA_UPSTREAM_API_KEY",
        "bearer token sent to the upstream servers",
        flag="--upstream-api-key",
    )
    upstream_kind: Literal["llama-server", "vllm", "sglang", "gemma-service", "openai"] = setting(
        "llama-server",
        "GEMMA_UPSTREAM_KIND",
        "what the upstreams are, which decides how sampling and grammars are sent",
        flag="--upstream-kind",
    )
    upstream_model: str | None = setting(
        None,
        "GEMMA_UPSTREAM_MODEL",
        "model name sent to the upstreams (unset: none; vLLM and SGLang need theirs)",
        flag="--upstream-model",
    )
    upstream_context_size: int = setting(
        0,
        "GEMMA_UPSTREAM_CONTEXT_SIZE",
        "context of one upstream sequence (0: ask the upstreams at start)",
        flag="--upstream-ctx-size",
        ge=0,
    )
    upstream_max_in_flight: int = setting(
        64,
        "GEMMA_UPSTREAM_MAX_IN_FLIGHT",
        "requests one upstream is sent at once; with all at this, new requests get 429",
        flag="--upstream-max-in-flight",
        ge=1,
    )
    upstream_health_interval_s: float = setting(
        5.0,
        "GEMMA_UPSTREAM_HEALTH_INTERVAL_S",
        "seconds between health checks of each upstream (ejects and readmits)",
        flag="--upstream-health-interval",
        gt=0,
    )
    upstream_read_timeout_s: float = setting(
        300.0,
        "GEMMA_UPSTREAM_READ_TIMEOUT_S",
        "longest wait for an upstream's next chunk before the request fails",
        flag="--upstream-read-timeout",
        gt=0,
    )

    @property
    def url_list(self) -> list[str]:
        return [u.strip() for u in (self.upstream_urls or "").split(",") if u.strip()]
