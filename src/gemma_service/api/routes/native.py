"""The original gemma-service API: POST /chat, /chat/stream, /generate."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gemma_service.api.native_jobs import generate_job, native_chat_job
from gemma_service.api.native_protocol import GenerateRequest, NativeChatRequest
from gemma_service.api.native_writers import NativeStreamWriter, chat_body, generate_body
from gemma_service.api.run_stream import stream_run, unless_disconnected
from gemma_service.api.state import CallerDep, ChatDep, StateDep

router = APIRouter(tags=["native"])


@router.post("/chat")
async def native_chat(
    body: NativeChatRequest, request: Request, chat: ChatDep, state: StateDep, caller: CallerDep
) -> dict[str, Any]:
    run = await chat.start(native_chat_job(body, state.settings, caller))
    return chat_body(run.info, await unless_disconnected(request, run.collect()))


@router.post("/chat/stream", response_model=None)
async def native_chat_stream(
    body: NativeChatRequest, chat: ChatDep, state: StateDep, caller: CallerDep
) -> Response:
    run = await chat.start(native_chat_job(body, state.settings, caller))
    return stream_run(run, NativeStreamWriter(run.info))


@router.post("/generate")
async def generate(
    body: GenerateRequest, request: Request, chat: ChatDep, state: StateDep, caller: CallerDep
) -> dict[str, Any]:
    run = await chat.start(generate_job(body, state.settings, caller))
    return generate_body(run.info, await unless_disconnected(request, run.collect()))
