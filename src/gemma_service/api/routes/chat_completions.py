"""POST /v1/chat/completions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from gemma_service.api.image_fetch import text_model_image_error
from gemma_service.api.openai_protocol import ChatCompletionRequest, ChatMessage
from gemma_service.api.openai_responses import (
    chat_completion_body,
    chat_logprobs,
    error_for_finish,
    openai_finish_reason,
)
from gemma_service.api.openai_stream import ChunkWriter, failure_event
from gemma_service.api.routes.chat_tool_stream import tool_call_stream
from gemma_service.api.sampling import resolve_max_tokens, sampling_from
from gemma_service.api.state import ChatDep, StateDep
from gemma_service.api.streaming import SSE_DONE, prime_all, sse_response, unless_disconnected
from gemma_service.api.structured_fields import structured_chat, with_tool_calls
from gemma_service.chat.context import AssembledChat, ContextRequest
from gemma_service.chat.prompt import Message
from gemma_service.chat.service import collect_all, merge_streams, remembering
from gemma_service.chat.structured import messages_to_turns
from gemma_service.engine.protocol import TokenEvent, Usage
from gemma_service.errors import InvalidRequestError

router = APIRouter(tags=["openai"])


def to_messages(messages: list[ChatMessage]) -> list[Message]:
    """OpenAI messages → plain text turns (tool calls and results written as the model sees
    them); refuses what this text model cannot take."""
    if any(m.role == "tool" or m.tool_calls for m in messages):
        for i, m in enumerate(messages):
            message_text(m, i)  # non-text content is refused as below
        return messages_to_turns([m.model_dump(exclude_none=True) for m in messages])
    out: list[Message] = []
    for i, m in enumerate(messages):
        role = "system" if m.role == "developer" else m.role
        out.append(Message(role, message_text(m, i)))
    return out


def message_text(m: ChatMessage, index: int) -> str:
    if m.content is None:
        return ""
    if isinstance(m.content, str):
        return m.content
    texts: list[str] = []
    for j, part in enumerate(m.content):
        if part.type == "image_url":
            url = part.image_url.url if part.image_url else None
            raise text_model_image_error(url, f"messages[{index}].content[{j}]")
        if part.type != "text":
            raise InvalidRequestError(
                f"this model takes text only; it cannot take '{part.type}' content",
                param=f"messages[{index}].content[{j}]",
                code="unsupported_content",
            )
        texts.append(part.text or "")
    return "\n".join(texts)


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, chat: ChatDep, state: StateDep
) -> Response:
    settings = state.settings
    max_tokens = resolve_max_tokens(
        body.max_completion_tokens or body.max_tokens,
        settings,
        "max_completion_tokens" if body.max_completion_tokens else "max_tokens",
    )
    sampling = sampling_from(
        body,
        settings,
        max_tokens=max_tokens,
        n_vocab=chat.engine.model_info.n_vocab,
        logprobs=body.logprobs,
        top_logprobs=body.top_logprobs or 0,
    )
    plan = structured_chat(body, to_messages(body.messages))
    plan.constrain(sampling)
    assembled = await chat.assemble(plan.messages, context_request(body), max_tokens)
    prepared = chat.prepare_chat(assembled.messages, max_tokens)
    streams = chat.streams(prepared, sampling, n=body.n, priority=body.priority)
    streams[0] = remembering(chat.context, assembled, streams[0])
    model = chat.engine.model_info.model_id
    if body.stream:
        primed = await prime_all(streams)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        if plan.reads_tool_calls:
            return sse_response(tool_call_stream(primed, model, include_usage, body.logprobs, plan))
        return sse_response(_stream(primed, model, include_usage, body.logprobs))
    completions = await unless_disconnected(request, collect_all(streams))
    for c in completions:
        err = error_for_finish(c)
        if err is not None:
            raise err
    response = chat_completion_body(model, completions, logprobs=body.logprobs)
    response.update(extension_fields(body, assembled))
    return JSONResponse(with_tool_calls(response, plan, completions))


def context_request(body: ChatCompletionRequest) -> ContextRequest:
    return ContextRequest(
        use_rag=body.use_rag,
        rag_top_k=body.rag_top_k,
        context_documents=list(body.context or []),
        conversation_id=body.conversation_id,
    )


def extension_fields(body: ChatCompletionRequest, assembled: AssembledChat) -> dict[str, Any]:
    """gemma-service's additions to the response, present only when the request used them."""
    fields: dict[str, Any] = {}
    if body.use_rag or body.context:
        fields.update(
            sources=assembled.sources,
            rag_context_used=assembled.rag_context_used,
            retrieval_time=round(assembled.retrieval_time_s, 4),
        )
    if assembled.conversation_id:
        fields.update(conversation_id=assembled.conversation_id, history=assembled.history)
    if assembled.warnings:
        fields["warning"] = "; ".join(assembled.warnings)
    return fields


async def _stream(
    streams: list[AsyncIterator[TokenEvent]], model: str, include_usage: bool, logprobs: bool
) -> AsyncIterator[bytes]:
    out = ChunkWriter("chat.completion.chunk", model, include_usage)
    usages: dict[int, Usage] = {}
    for i in range(len(streams)):
        yield out.chat(i, {"role": "assistant", "content": ""})
    async for i, event in merge_streams(streams):
        if (failure := failure_event(event)) is not None:
            yield failure
            return
        lp = chat_logprobs(event.logprobs) if logprobs and event.logprobs else None
        if event.text or lp:
            yield out.chat(i, {"content": event.text}, logprobs=lp)
        if event.finish_reason is not None:
            assert event.usage is not None
            usages[i] = event.usage
            yield out.chat(i, {}, openai_finish_reason(event.finish_reason))
    if include_usage:
        yield out.usage(usages)
    yield SSE_DONE
