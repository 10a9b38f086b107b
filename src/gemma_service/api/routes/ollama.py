"""Ollama's generation API: POST /api/chat and /api/generate (NDJSON streams by default).

Errors on /api/* are Ollama's ``{"error": "..."}`` (``api/protocols.py``). A request with no
messages (or an empty prompt) only asks that the model be loaded, as Ollama clients do before
the first question: it is answered once the model is loaded, with ``done_reason: "load"``;
with ``keep_alive: 0`` it unloads the model instead (``done_reason: "unload"``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from gemma_service.api.ollama_jobs import chat_job, generate_job
from gemma_service.api.ollama_protocol import OllamaChatRequest, OllamaGenerateRequest
from gemma_service.api.ollama_writers import (
    Endpoint,
    OllamaStreamWriter,
    collect_timed,
    created_at,
    whole_body,
)
from gemma_service.api.openai_bodies import extension_fields
from gemma_service.api.routes.model_admin import require_model_admin
from gemma_service.api.run_stream import stream_run, unless_disconnected
from gemma_service.api.security.principal import Principal
from gemma_service.api.state import CallerDep, ChatDep, CurrentPrincipal, ServiceState, StateDep
from gemma_service.chat.job import ChatJob
from gemma_service.chat.router import ChatRouter

router = APIRouter(tags=["ollama"])


@router.post("/api/chat", response_model=None)
async def ollama_chat(
    body: OllamaChatRequest,
    request: Request,
    chat: ChatDep,
    state: StateDep,
    caller: CallerDep,
    principal: CurrentPrincipal,
) -> Response:
    if not body.messages:
        return await _load_or_unload("chat", body.model, body.keep_alive, state, principal)
    n_ctx = (await chat.model_info_for(body.model)).n_ctx
    job = chat_job(body, state.settings, caller, n_ctx)
    return await _answer("chat", body.model, job, body.stream, body.use_rag, request, chat)


@router.post("/api/generate", response_model=None)
async def ollama_generate(
    body: OllamaGenerateRequest,
    request: Request,
    chat: ChatDep,
    state: StateDep,
    caller: CallerDep,
    principal: CurrentPrincipal,
) -> Response:
    if not body.prompt and not body.images:
        return await _load_or_unload("generate", body.model, body.keep_alive, state, principal)
    n_ctx = (await chat.model_info_for(body.model)).n_ctx
    job = generate_job(body, state.settings, caller, n_ctx)
    return await _answer("generate", body.model, job, body.stream, body.use_rag, request, chat)


async def _answer(
    endpoint: Endpoint,
    model: str,
    job: ChatJob,
    stream: bool,
    use_rag: bool,
    request: Request,
    chat: ChatRouter,
) -> Response:
    run = await chat.start(job)
    extras = extension_fields(run.info.context, memory_used=use_rag)
    if stream:
        return stream_run(run, OllamaStreamWriter(endpoint, model, run.info, extras))
    result, clock = await unless_disconnected(request, collect_timed(run))
    [choice] = result.choices
    return JSONResponse(whole_body(endpoint, model, choice, clock, extras))


async def _load_or_unload(
    endpoint: Endpoint,
    model: str,
    keep_alive: float | str | None,
    state: ServiceState,
    principal: Principal,
) -> JSONResponse:
    """Ollama's "load the model" (no messages), or with ``keep_alive: 0`` "unload it" (an
    admin's, on a server with auth; it waits for the model's running requests)."""
    unload = keep_alive in (0, "0", "0s", "0m")
    # One model answers to any name (as a request would); among several the name must match.
    model_id = state.models.catalogue.resolve(model).id
    if unload:
        require_model_admin(principal)
        await state.models.unload(model_id)
    else:
        await state.models.load(model_id)
    body: dict[str, Any] = {"model": model, "created_at": created_at()}
    if endpoint == "chat":
        body["message"] = {"role": "assistant", "content": ""}
    else:
        body["response"] = ""
    body.update(done=True, done_reason="unload" if unload else "load")
    return JSONResponse(body)
