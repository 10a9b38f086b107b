"""Builds the llama.cpp engine from settings (the model path is already resolved).

The engine declares what it reads (``EngineSettings``); ``ServiceSettings`` provides it, so the
engine never imports the settings tree above it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from gemma_service.engine.async_engine import Engine, EngineConfig
from gemma_service.engine.backend import ModelBackend
from gemma_service.engine.scheduler import Scheduler


class EngineSettings(Protocol):
    """The settings an engine is built from."""

    @property
    def batch_size(self) -> int: ...
    @property
    def parallel(self) -> int: ...
    @property
    def prefix_cache_slots(self) -> int: ...
    @property
    def max_queue(self) -> int: ...
    @property
    def context_size(self) -> int: ...
    @property
    def gpu_layers(self) -> int: ...
    @property
    def gpu_coordinator_url(self) -> str | None: ...
    @property
    def flash_attn(self) -> Literal["auto", "on", "off"]: ...
    @property
    def kv_cache_type(self) -> Literal["f16", "q8_0", "q4_0"]: ...
    @property
    def effective_threads(self) -> int: ...
    @property
    def kv_layout(self) -> Literal["per-sequence", "unified"]: ...
    @property
    def cohort_window_s(self) -> float: ...
    @property
    def cpu_repack(self) -> Literal["auto", "on", "off"]: ...
    @property
    def cpu_variant(self) -> str | None: ...
    @property
    def mmproj_path(self) -> Path | None: ...
    @property
    def media_cache_mb(self) -> int: ...


def engine_config(settings: EngineSettings) -> EngineConfig:
    return EngineConfig(
        batch_size=settings.batch_size,
        parallel=settings.parallel,
        cache_slots=settings.prefix_cache_slots,
        max_queue=settings.max_queue,
        shared_slots=settings.kv_layout == "per-sequence",
        cohort_window_s=settings.cohort_window_s,
    )


def build_llama_engine(settings: EngineSettings, model_path: Path, model_id: str) -> Engine:
    """An engine whose backend loads ``model_path`` in its start()."""

    def load() -> ModelBackend:
        from gemma_service.engine.llama_backend import LlamaBackend, LlamaConfig

        gpu_layers = 0 if settings.gpu_coordinator_url else settings.gpu_layers
        return LlamaBackend(
            LlamaConfig(
                model_path=model_path,
                model_id=model_id,
                n_ctx=settings.context_size,
                batch_size=settings.batch_size,
                n_seq_max=Scheduler.slot_count(
                    settings.parallel,
                    settings.prefix_cache_slots,
                    shared_slots=settings.kv_layout == "per-sequence",
                ),
                kv_unified=settings.kv_layout == "unified",
                threads=settings.effective_threads,
                gpu_layers=gpu_layers,
                flash_attn=settings.flash_attn,
                kv_cache_type=settings.kv_cache_type,
                cpu_repack=settings.cpu_repack,
                cpu_variant=settings.cpu_variant,
                mmproj_path=settings.mmproj_path.expanduser() if settings.mmproj_path else None,
                media_cache_bytes=settings.media_cache_mb << 20,
            )
        )

    return Engine(load, engine_config(settings))
