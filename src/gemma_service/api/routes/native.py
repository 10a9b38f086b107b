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


def _prepare_chat(chat: ChatService, body: NativeChatRequest, max_tokens: int) -> PreparedPrompt:
    messages = [Message(m.role, m.content) for m in body.messages]
    if body.context:
        docs = "\n\n".join(f"[{i}] {d}" for i, d in enumerate(body.context, 1))
        messages.insert(0, Message("system", f"Use these documents where relevant:\n{docs}"))
    return chat.prepare_chat(messages, max_tokens)


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
    prepared = _prepare_chat(chat, body, max_tokens)
    started = time.perf_counter()
    [stream] = chat.streams(prepared, _sampling(body, max_tokens))
    result = await unless_disconnected(request, collect(stream))
    _raise_for_finish(result)
    return {
        "response": result.text,
        "model": chat.engine.model_info.model_id,
        "usage": usage_dict(result.usage),
        "finish_reason": result.finish_reason,
        "rag_context_used": 0,
        "sources": [],
        "gpu_wait_time": round(prepared.gpu_wait_s, 4),
        "inference_time": round(time.perf_counter() - started - prepared.gpu_wait_s, 4),
    }


@router.post("/chat/stream", response_model=None)
async def native_chat_stream(body: NativeChatRequest, chat: ChatDep, state: StateDep) -> Response:
    max_tokens = resolve_max_tokens(body.max_tokens, state.settings, "max_tokens")
    prepared = _prepare_chat(chat, body, max_tokens)
    started = time.perf_counter()
    [stream] = await prime_all(chat.streams(prepared, _sampling(body, max_tokens)))
    return sse_response(_native_stream(stream, started))


async def _native_stream(stream: AsyncIterator[TokenEvent], started: float) -> AsyncIterator[bytes]:
    async for event in stream:
        if event.finish_reason is None:
            if event.text:
                yield sse({"token": event.text, "done": False})
            continue
        assert event.usage is not None
        err = error_for_finish(Completion("", event.finish_reason, event.usage, error=event.error))
        if event.text:
            yield sse({"token": event.text, "done": False})
        final: dict[str, Any] = {
            "token": "",
            "done": True,
            "usage": usage_dict(event.usage),
            "finish_reason": event.finish_reason,
            "inference_time": round(time.perf_counter() - started, 4),
        }
        if err is not None:
            final["error"] = err.to_body()["error"]
        yield sse(final)


@router.post("/generate")
async def generate(
    body: GenerateRequest, request: Request, chat: ChatDep, state: StateDep
) -> dict[str, Any]:
    max_tokens = resolve_max_tokens(body.max_tokens, state.settings, "max_tokens")
    prepared = chat.prepare_text(body.prompt, max_tokens)
    started = time.perf_counter()
    [stream] = chat.streams(prepared, _sampling(body, max_tokens))
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
