"""OpenAI-shaped response bodies and stream chunks, built from engine results."""

from __future__ import annotations

import time
import uuid
from typing import Any

from gemma_service.chat.service import Completion
from gemma_service.engine.protocol import TokenLogprob, Usage
from gemma_service.errors import (
    EngineDeadError,
    RequestTimeoutError,
    ServiceError,
)


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


def error_for_finish(c: Completion) -> ServiceError | None:
    """A choice that ended in a timeout or an engine failure becomes an error response."""
    if c.finish_reason == "timeout":
        return RequestTimeoutError(c.error or "the request ran past its deadline")
    if c.finish_reason == "error":
        return EngineDeadError(c.error or "generation failed")
    return None


def openai_finish_reason(reason: str) -> str:
    return reason if reason in ("stop", "length", "tool_calls") else "stop"


def chat_completion_body(
    model: str, completions: list[Completion], *, logprobs: bool
) -> dict[str, Any]:
    return {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": c.text},
                "logprobs": chat_logprobs(c.logprobs) if logprobs else None,
                "finish_reason": openai_finish_reason(c.finish_reason),
            }
            for i, c in enumerate(completions)
        ],
        "usage": usage_body([c.usage for c in completions]),
    }


def text_completion_body(
    model: str, completions: list[Completion], *, logprobs: bool, prefix: str = ""
) -> dict[str, Any]:
    return {
        "id": new_id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": i,
                "text": prefix + c.text,
                "logprobs": completion_logprobs(c.logprobs, len(prefix)) if logprobs else None,
                "finish_reason": openai_finish_reason(c.finish_reason),
            }
            for i, c in enumerate(completions)
        ],
        "usage": usage_body([c.usage for c in completions]),
    }
