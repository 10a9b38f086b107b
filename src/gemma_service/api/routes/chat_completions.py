"""POST /v1/chat/completions: the OpenAI body → a job; the run → a completion or its chunks."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from gemma_service.api.openai_bodies import chat_completion_body, extension_fields
from gemma_service.api.openai_jobs import chat_job
from gemma_service.api.openai_protocol import ChatCompletionRequest
from gemma_service.api.openai_writers import ChatChunkWriter
from gemma_service.api.run_stream import stream_run, unless_disconnected
from gemma_service.api.state import CallerDep, ChatDep, StateDep

router = APIRouter(tags=["openai"])


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, chat: ChatDep, state: StateDep, caller: CallerDep
) -> Response:
    run = await chat.start(chat_job(body, state.settings, caller))
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        writer = ChatChunkWriter(run.info, include_usage=include_usage, logprobs=body.logprobs)
        return stream_run(run, writer)
    result = await unless_disconnected(request, run.collect())
    response = chat_completion_body(run.info, result, logprobs=body.logprobs)
    response.update(
        extension_fields(run.info.context, memory_used=body.use_rag or bool(body.context))
    )
    return JSONResponse(response)
