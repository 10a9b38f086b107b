"""The original gemma-service API: POST /chat, /chat/stream, /generate."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gemma_service.api.native_protocol import GenerateRequest, NativeChatRequest
from gemma_service.api.openai_responses import error_for_finish
from gemma_service.api.sampling import resolve_max_tokens
from gemma_service.api.state import ChatDep, StateDep
from gemma_service.api.streaming import prime_all, sse, sse_response, unless_disconnected
from gemma_service.api.structured_fields import grammar_for
from gemma_service.chat.context import AssembledChat, ContextRequest
from gemma_service.chat.prompt import Message
from gemma_service.chat.service import ChatService, Completion, PreparedPrompt, collect
from gemma_service.engine.protocol import SamplingParams, TokenEvent, Usage

router = APIRouter(tags=["native"])


def usage_dict(u: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    }


async def _prepare_chat(
    chat: ChatService, body: NativeChatRequest, max_tokens: int
) -> tuple[AssembledChat, PreparedPrompt]:
    messages = [Message(m.role, m.content) for m in body.messages]
    req = ContextRequest(
        use_rag=body.use_rag,
        rag_top_k=body.rag_top_k,
        context_documents=list(body.context),
        conversation_id=body.conversation_id,
    )
    assembled = await chat.assemble(messages, req, max_tokens)
    return assembled, chat.prepare_chat(assembled.messages, max_tokens)


def context_fields(assembled: AssembledChat, prepared: PreparedPrompt) -> dict[str, Any]:
    """What a response says about memory, history and the GPU (seed-000 fields and ours)."""
    fields: dict[str, Any] = {
        "rag_context_used": assembled.rag_context_used,
        "sources": assembled.sources,
        "retrieval_time": round(assembled.retrieval_time_s, 4),
        "gpu_wait_time": round(prepared.gpu_wait_s, 4),
    }
    if assembled.warnings:
        fields["warning"] = "; ".join(assembled.warnings)
    if assembled.conversation_id:
        fields["conversation_id"] = assembled.conversation_id
        fields["history"] = assembled.history
    return fields


def _sampling(body: NativeChatRequest | GenerateRequest, max_tokens: int) -> SamplingParams:
    stop = getattr(body, "stop", None) or []
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        seed=body.seed,
        stop=list(stop),
    )


@router.post("/chat")
async def native_chat(
    body: NativeChatRequest, request: Request, chat: ChatDep, state: StateDep
) -> dict[str, Any]:
    max_tokens = resolve_max_tokens(body.max_tokens, state.settings, "max_tokens")
    assembled, prepared = await _prepare_chat(chat, body, max_tokens)
    started = time.perf_counter()
    [stream] = chat.streams(prepared, _sampling(body, max_tokens))
    result = await unless_disconnected(request, collect(stream))
    _raise_for_finish(result)
    await chat.context.remember(assembled, result.text)
    return {
        "response": result.text,
        "model": chat.engine.model_info.model_id,
        "usage": usage_dict(result.usage),
        "finish_reason": result.finish_reason,
        **context_fields(assembled, prepared),
        "inference_time": round(time.perf_counter() - started - prepared.gpu_wait_s, 4),
    }


@router.post("/chat/stream", response_model=None)
async def native_chat_stream(body: NativeChatRequest, chat: ChatDep, state: StateDep) -> Response:
    max_tokens = resolve_max_tokens(body.max_tokens, state.settings, "max_tokens")
    assembled, prepared = await _prepare_chat(chat, body, max_tokens)
    started = time.perf_counter()
    [stream] = await prime_all(chat.streams(prepared, _sampling(body, max_tokens)))
    return sse_response(_native_stream(chat, stream, started, assembled, prepared))


async def _native_stream(
    chat: ChatService,
    stream: AsyncIterator[TokenEvent],
    started: float,
    assembled: AssembledChat,
    prepared: PreparedPrompt,
) -> AsyncIterator[bytes]:
    parts: list[str] = []
    async for event in stream:
        parts.append(event.text)
        if event.text:
            yield sse({"token": event.text, "done": False})
        if event.finish_reason is None:
            continue
        assert event.usage is not None
        err = error_for_finish(Completion("", event.finish_reason, event.usage, error=event.error))
        final: dict[str, Any] = {
            "token": "",
            "done": True,
            "usage": usage_dict(event.usage),
            "finish_reason": event.finish_reason,
            **context_fields(assembled, prepared),
            "inference_time": round(time.perf_counter() - started - prepared.gpu_wait_s, 4),
        }
        if err is not None:
            final["error"] = err.to_body()["error"]
        else:
            await chat.context.remember(assembled, "".join(parts))
        yield sse(final)


@router.post("/generate")
async def generate(
    body: GenerateRequest, request: Request, chat: ChatDep, state: StateDep
) -> dict[str, Any]:
    max_tokens = resolve_max_tokens(body.max_tokens, state.settings, "max_tokens")
    sampling = _sampling(body, max_tokens)
    sampling.grammar = grammar_for(body.response_format)
    prepared = chat.prepare_text(body.prompt, max_tokens)
    started = time.perf_counter()
    [stream] = chat.streams(prepared, sampling)
    result = await unless_disconnected(request, collect(stream))
    _raise_for_finish(result)
    return {
        "text": result.text,
        "model": chat.engine.model_info.model_id,
        "usage": usage_dict(result.usage),
        "finish_reason": result.finish_reason,
        "inference_time": round(time.perf_counter() - started, 4),
    }


def _raise_for_finish(result: Completion) -> None:
    err = error_for_finish(result)
    if err is not None:
        raise err
