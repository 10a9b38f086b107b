"""POST /v1/completions (raw prompt, no chat format): the body → a job; the run → its answer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from gemma_service.api.openai_bodies import text_completion_body
from gemma_service.api.openai_jobs import completion_job
from gemma_service.api.openai_protocol import CompletionRequest
from gemma_service.api.openai_writers import TextChunkWriter
from gemma_service.api.run_stream import stream_run, unless_disconnected
from gemma_service.api.state import CallerDep, ChatDep, StateDep

router = APIRouter(tags=["openai"])


@router.post("/v1/completions", response_model=None)
async def completions(
    body: CompletionRequest, request: Request, chat: ChatDep, state: StateDep, caller: CallerDep
) -> Response:
    run = await chat.start(completion_job(body, state.settings, caller))
    logprobs = body.logprobs is not None
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        writer = TextChunkWriter(
            run.info, include_usage=include_usage, logprobs=logprobs, echo=body.echo
        )
        return stream_run(run, writer)
    result = await unless_disconnected(request, run.collect())
    return JSONResponse(text_completion_body(run.info, result, logprobs=logprobs, echo=body.echo))
