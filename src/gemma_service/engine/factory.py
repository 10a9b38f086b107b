"""Builds the llama.cpp engine from settings (the model path is already resolved)."""

from __future__ import annotations

from pathlib import Path

from gemma_service.config import ServiceSettings
from gemma_service.engine.async_engine import Engine, EngineConfig
from gemma_service.engine.backend import ModelBackend
from gemma_service.engine.scheduler import Scheduler


def engine_config(settings: ServiceSettings) -> EngineConfig:
    return EngineConfig(
        batch_size=settings.batch_size,
        parallel=settings.parallel,
        cache_slots=settings.prefix_cache_slots,
        max_queue=settings.max_queue,
        shared_slots=settings.kv_layout == "per-sequence",
    )


def build_llama_engine(settings: ServiceSettings, model_path: Path, model_id: str) -> Engine:
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
            )
        )

    return Engine(load, engine_config(settings))
