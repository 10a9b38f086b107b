"""The FastAPI app factory. Resources live in the lifespan; nothing happens at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

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
    models,
    native,
    ollama,
    ollama_models,
    responses,
    tokenize,
    ui,
)
from gemma_service.api.security.rate_limit import RateLimiter
from gemma_service.api.state import ServiceState
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

log = logging.getLogger(__name__)


def create_app(
    settings: ServiceSettings,
    engine: EngineClient,
    *,
    on_fatal: Callable[[str], None] | None = None,
) -> FastAPI:
    """Build the app around ``engine``; the model loads in the background after start-up."""
    metrics, limiter = ServiceMetrics(), RateLimiter.from_settings(settings)
    metering = Metering(metrics, limiter)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServiceState(settings=settings, engine=engine)
        app.state.service = state
        loader = asyncio.create_task(_load(state, on_fatal, metering, metrics))
        try:
            yield
        finally:
            state.draining = True
            loader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await loader
            if state.residency is not None:
                # The engine frees the model's GPU memory itself right after: no reload to CPU.
                await state.residency.stop(offload=False)
            await engine.shutdown()
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
        models,
        native,
        tokenize,
        memories,
        embeddings,
        ui,
    ):
        app.include_router(module.router)
    return app


async def _load(
    state: ServiceState,
    on_fatal: Callable[[str], None] | None,
    metering: Metering,
    metrics: ServiceMetrics,
) -> None:
    memory = asyncio.create_task(asyncio.to_thread(_open_memory, state.settings))
    try:
        await state.engine.start()
        state.memory, state.conversations, state.responses = await memory
    except Exception as exc:
        memory.cancel()
        state.load_error = f"{exc}"
        log.error("model failed to load: %s", exc)
        if on_fatal is not None:
            on_fatal(state.load_error)
        return
    state.residency = await _start_residency(state)
    state.chat = ChatService(
        state.engine,
        request_timeout_s=state.settings.request_timeout,
        residency=state.residency,
        memory=state.memory,
        conversations=state.conversations,
        on_retrieval=metrics.memory_retrieval.observe,
        hooks=[metering],
        system_prompt=state.settings.system_prompt,
        media=media_loader(state.settings),
    )
    info = state.engine.model_info
    log.info(
        "ready: serving %s (n_ctx=%d) on %s",
        info.model_id,
        info.n_ctx,
        state.engine.health().device,
    )


async def _start_residency(state: ServiceState) -> GpuResidency:
    """GPU placement: held for life without a coordinator, leased on demand with one."""
    s = state.settings
    health = state.engine.health()
    residency = GpuResidency(
        state.engine,
        coordinator_url=s.gpu_coordinator_url,
        gpu_layers=s.gpu_layers,
        keep_s=s.gpu_keep_s,
        holder=s.gpu_holder,
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
