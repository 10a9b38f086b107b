"""OpenAI-shaped response bodies (chat and text completions), built from a run's result."""

from __future__ import annotations

import uuid
from typing import Any

from gemma_service.chat.context import AssembledChat
from gemma_service.chat.events import ChoiceResult, RunInfo, RunResult
from gemma_service.chat.structured import ToolCall
from gemma_service.engine.protocol import TokenLogprob, Usage


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage_body(usages: list[Usage]) -> dict[str, Any]:
    """Usage over all choices: the prompt counted once, completions summed."""
    prompt = usages[0].prompt_tokens if usages else 0
    completion = sum(u.completion_tokens for u in usages)
    cached = usages[0].cached_tokens if usages else 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def chat_logprobs(lps: list[TokenLogprob]) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": lp.token,
                "logprob": lp.logprob,
                "bytes": lp.bytes,
                "top_logprobs": [
                    {"token": t.token, "logprob": t.logprob, "bytes": t.bytes}
                    for t in lp.top_logprobs
                ],
            }
            for lp in lps
        ]
    }


def completion_logprobs(lps: list[TokenLogprob], start_offset: int = 0) -> dict[str, Any]:
    offsets: list[int] = []
    pos = start_offset
    for lp in lps:
        offsets.append(pos)
        pos += len(lp.token)
    return {
        "tokens": [lp.token for lp in lps],
        "token_logprobs": [lp.logprob for lp in lps],
        "top_logprobs": [{t.token: t.logprob for t in lp.top_logprobs} for lp in lps],
        "text_offset": offsets,
    }


def openai_finish_reason(reason: str) -> str:
    return reason if reason in ("stop", "length", "tool_calls") else "stop"


def tool_call_body(call: ToolCall) -> dict[str, Any]:
    """``message.tool_calls[i]`` of a chat completion."""
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def message_body(choice: ChoiceResult) -> dict[str, Any]:
    """``choices[i].message`` of a chat completion."""
    message: dict[str, Any] = {"role": "assistant", "content": choice.content}
    if choice.reasoning is not None:
        message["reasoning_content"] = choice.reasoning
    if choice.tool_calls:
        message["tool_calls"] = [tool_call_body(call) for call in choice.tool_calls]
    return message


def chat_completion_body(info: RunInfo, result: RunResult, *, logprobs: bool) -> dict[str, Any]:
    return {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": info.created,
        "model": info.model,
        "choices": [
            {
                "index": c.index,
                "message": message_body(c),
                "logprobs": chat_logprobs(c.logprobs) if logprobs else None,
                "finish_reason": openai_finish_reason(c.finish_reason),
            }
            for c in result.choices
        ],
        "usage": usage_body(result.usages),
    }


def text_completion_body(
    info: RunInfo, result: RunResult, *, logprobs: bool, echo: bool = False
) -> dict[str, Any]:
    prefix = info.prompt_text if echo else ""
    return {
        "id": new_id("cmpl"),
        "object": "text_completion",
        "created": info.created,
        "model": info.model,
        "choices": [
            {
                "index": c.index,
                "text": prefix + (c.content or ""),
                "logprobs": completion_logprobs(c.logprobs, len(prefix)) if logprobs else None,
                "finish_reason": openai_finish_reason(c.finish_reason),
            }
            for c in result.choices
        ],
        "usage": usage_body(result.usages),
    }


def extension_fields(context: AssembledChat | None, *, memory_used: bool) -> dict[str, Any]:
    """gemma-service's additions to a chat completion, present only when the request used
    them: sources (``use_rag`` or ``context``), the conversation, warnings."""
    fields: dict[str, Any] = {}
    if context is None:
        return fields
    if memory_used:
        fields.update(
            sources=context.sources,
            rag_context_used=context.rag_context_used,
            retrieval_time=round(context.retrieval_time_s, 4),
        )
    if context.conversation_id:
        fields.update(conversation_id=context.conversation_id, history=context.history)
    if context.warnings:
        fields["warning"] = "; ".join(context.warnings)
    return fields
