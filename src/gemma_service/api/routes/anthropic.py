"""Anthropic Messages API: POST /v1/messages and POST /v1/messages/count_tokens.

Errors on these paths, refusals before the route included, are in Anthropic's shape
(``api/protocols.py``); ``x-api-key`` is accepted as the credential, as the SDK sends it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from gemma_service.api.anthropic_jobs import anthropic_job, count_tokens_job
from gemma_service.api.anthropic_protocol import CountTokensRequest, MessagesRequest
from gemma_service.api.anthropic_writers import AnthropicStreamWriter, message_body
from gemma_service.api.openai_bodies import extension_fields
from gemma_service.api.run_stream import stream_run, unless_disconnected
from gemma_service.api.state import CallerDep, ChatDep, StateDep

router = APIRouter(tags=["anthropic"])


@router.post("/v1/messages", response_model=None)
async def create_message(
    body: MessagesRequest, request: Request, chat: ChatDep, state: StateDep, caller: CallerDep
) -> Response:
    run = await chat.start(anthropic_job(body, state.settings, caller))
    stops = list(body.stop_sequences or [])
    extras = extension_fields(run.info.context, memory_used=body.use_rag)
    if body.stream:
        return stream_run(run, AnthropicStreamWriter(run.info, stops, extras))
    [choice] = (await unless_disconnected(request, run.collect())).choices
    return JSONResponse(message_body(run.info, choice, stops, extras))


@router.post("/v1/messages/count_tokens")
async def count_tokens(
    body: CountTokensRequest, chat: ChatDep, caller: CallerDep
) -> dict[str, Any]:
    """The prompt tokens the messages, system and tools would take."""
    return {"input_tokens": await chat.count_prompt_tokens(count_tokens_job(body, caller))}
