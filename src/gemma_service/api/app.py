"""The FastAPI app factory. Resources live in the lifespan; nothing happens at import time."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from gemma_service import __version__
from gemma_service.api.error_handlers import install_error_handlers
from gemma_service.api.media_loading import media_loader
from gemma_service.api.metering import Metering
from gemma_service.api.metrics import ServiceMetrics
from gemma_service.api.middleware import install_middleware
from gemma_service.api.routes import (
    anthropic,
    chat_completions,
    completions,
    embeddings,
    health,
    memories,
    model_admin,
    native,
    ollama,
    ollama_models,
    responses,
    tokenize,
    ui,
)
from gemma_service.api.routes import models as model_routes
from gemma_service.api.security.rate_limit import RateLimiter
from gemma_service.api.state import ServiceState
from gemma_service.chat.router import ChatRouter
from gemma_service.chat.service import ChatService
from gemma_service.config import ServiceSettings
from gemma_service.engine.protocol import EngineClient
from gemma_service.gpu.residency import GpuResidency
from gemma_service.memory.conversations import ConversationHistory
from gemma_service.memory.service import (
    MemoryService,
    open_conversation_store,
    open_response_store,
)
from gemma_service.memory.stored_responses import ResponseStore
from gemma_service.models.catalogue import CatalogueEntry, ModelCatalogue
from gemma_service.models.pool import ModelBudget, ModelPool

log = logging.getLogger(__name__)


def create_app(
    settings: ServiceSettings,
    engine: EngineClient | None = None,
    *,
    models: ModelPool | None = None,
    on_fatal: Callable[[str], None] | None = None,
) -> FastAPI:
    """Build the app around a model pool (or one ``engine``, served under every model name);
    the default model loads in the background after start-up."""
    if models is None:
        if engine is None:
            raise ValueError("create_app needs an engine or a model pool")
        models = single_model_pool(settings, engine)
    pool = models
    metrics, limiter = ServiceMetrics(), RateLimiter.from_settings(settings)
    metering = Metering(metrics, limiter)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServiceState(settings=settings, models=pool)
        if pool.placement is None:
            pool.placement = functools.partial(_start_residency, settings, len(pool.catalogue.ids))
        app.state.service = state
        loader = asyncio.create_task(_load(state, on_fatal, metering, metrics))
        try:
            yield
        finally:
            state.draining = True
            loader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await loader
            await pool.close()
            _close_memory(state)

    app = FastAPI(title="gemma-service", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    install_middleware(app, settings, metrics=metrics, limiter=limiter)
    for module in (
        health,
        chat_completions,
        completions,
        responses,
        anthropic,
        ollama,
        ollama_models,
        model_routes,
        model_admin,
        native,
        tokenize,
        memories,
        embeddings,
        ui,
    ):
        app.include_router(module.router)
    return app


def single_model_pool(settings: ServiceSettings, engine: EngineClient) -> ModelPool:
    """A pool of one ready-built engine, which answers to any model name."""
    model_id = settings.model_alias or "default"
    path = settings.model_path or Path(model_id)
    catalogue = ModelCatalogue([CatalogueEntry(model_id, path)], model_id)
    return ModelPool(catalogue, lambda _entry: engine, model_budget(settings))


def model_budget(settings: ServiceSettings) -> ModelBudget:
    """The model pool's budget from the settings."""
    return ModelBudget(
        max_loaded=settings.max_loaded_models,
        max_bytes=settings.max_loaded_bytes,
        idle_s=settings.model_idle_s,
        load_wait_s=settings.model_load_wait_s,
    )


async def _load(
    state: ServiceState,
    on_fatal: Callable[[str], None] | None,
    metering: Metering,
    metrics: ServiceMetrics,
) -> None:
    memory = asyncio.create_task(asyncio.to_thread(_open_memory, state.settings))
    try:
        await state.models.start()  # the default model; the others load when asked for
        state.memory, state.conversations, state.responses = await memory
    except Exception as exc:
        memory.cancel()
        state.load_error = f"{exc}"
        log.error("model failed to load: %s", exc)
        if on_fatal is not None:
            on_fatal(state.load_error)
        return

    def chat_service(engine: EngineClient, residency: GpuResidency | None) -> ChatService:
        return ChatService(
            engine,
            request_timeout_s=state.settings.request_timeout,
            residency=residency,
            memory=state.memory,
            conversations=state.conversations,
            on_retrieval=metrics.memory_retrieval.observe,
            hooks=[metering],
            system_prompt=state.settings.system_prompt,
            media=media_loader(state.settings),
        )

    state.chat = ChatRouter(state.models, chat_service)
    info = state.engine.model_info
    log.info(
        "ready: serving %s (n_ctx=%d) on %s",
        info.model_id,
        info.n_ctx,
        state.engine.health().device,
    )


async def _start_residency(
    s: ServiceSettings, n_models: int, entry: CatalogueEntry, engine: EngineClient
) -> GpuResidency:
    """A loaded model's GPU placement: held for life without a coordinator, leased on demand
    with one (each model under its own holder name when there are several)."""
    health = engine.health()
    residency = GpuResidency(
        engine,
        coordinator_url=s.gpu_coordinator_url,
        gpu_layers=entry.overrides.get("gpu_layers", s.gpu_layers),
        keep_s=s.gpu_keep_s,
        holder=s.gpu_holder if n_models == 1 else f"{s.gpu_holder}/{entry.id}",
        priority=s.gpu_priority,
        ttl_s=s.gpu_lease_ttl_s,
        gpu_available=health.gpu_available,
        max_gpu_wait_s=s.gpu_max_wait_s,
        loaded_gpu_layers=health.gpu_layers,
    )
    await residency.start()
    return residency


def _open_memory(
    settings: ServiceSettings,
) -> tuple[MemoryService, ConversationHistory, ResponseStore]:
    """The memory store, embedders, conversation history and stored responses (blocking:
    loads models). With GEMMA_MEMORY_URL on PostgreSQL all of them live there, shared by
    every replica."""
    memory_settings = settings.memory
    memory_settings.data_dir.mkdir(parents=True, exist_ok=True)
    memory = MemoryService.from_settings(
        memory_settings,
        data_dir=memory_settings.data_dir,
        rag_service_url=memory_settings.rag_service_url,
    )
    data_dir = memory_settings.data_dir
    conversations = open_conversation_store(
        memory_settings.memory_url, data_dir, legacy_owner=memory_settings.legacy_owner
    )
    responses = open_response_store(memory_settings.memory_url, data_dir)
    return memory, conversations, responses


def _close_memory(state: ServiceState) -> None:
    if state.memory is not None:
        state.memory.close()
    if state.conversations is not None:
        state.conversations.close()
    if state.responses is not None:
        state.responses.close()
