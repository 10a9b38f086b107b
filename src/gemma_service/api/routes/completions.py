"""POST /v1/completions (raw prompt, no chat format)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from gemma_service.api.openai_protocol import CompletionRequest
from gemma_service.api.openai_responses import (
    completion_logprobs,
    error_for_finish,
    openai_finish_reason,
    text_completion_body,
)
from gemma_service.api.openai_stream import ChunkWriter, failure_event
from gemma_service.api.sampling import resolve_max_tokens, sampling_from
from gemma_service.api.state import ChatDep, StateDep
from gemma_service.api.streaming import SSE_DONE, prime_all, sse_response, unless_disconnected
from gemma_service.api.structured_fields import grammar_for
from gemma_service.chat.service import ChatService, PreparedPrompt, collect_all
from gemma_service.chat.service import merge_streams as merge
from gemma_service.engine.protocol import TokenEvent, Usage
from gemma_service.errors import InvalidRequestError

router = APIRouter(tags=["openai"])


def prepare(chat: ChatService, body: CompletionRequest, max_tokens: int) -> PreparedPrompt:
    if body.suffix:
        raise InvalidRequestError("'suffix' (fill-in-the-middle) is not supported", param="suffix")
    prompt = body.prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
        return chat.prepare_tokens([int(t) for t in prompt], max_tokens)
    text = prompt if isinstance(prompt, str) else str(prompt[0])
    return chat.prepare_text(text, max_tokens)


@router.post("/v1/completions", response_model=None)
async def completions(
    body: CompletionRequest, request: Request, chat: ChatDep, state: StateDep
) -> Response:
    max_tokens = resolve_max_tokens(body.max_tokens, state.settings, "max_tokens")
    want_lp = body.logprobs is not None
    sampling = sampling_from(
        body,
        state.settings,
        max_tokens=max_tokens,
        n_vocab=chat.engine.model_info.n_vocab,
        logprobs=want_lp,
        top_logprobs=body.logprobs or 0,
    )
    sampling.grammar = grammar_for(body.response_format)
    prepared = prepare(chat, body, max_tokens)
    streams = chat.streams(prepared, sampling, n=body.n, priority=body.priority)
    model = chat.engine.model_info.model_id
    prefix = prepared.text if body.echo else ""
    if body.stream:
        primed = await prime_all(streams)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return sse_response(_stream(primed, model, include_usage, want_lp, prefix))
    results = await unless_disconnected(request, collect_all(streams))
    for c in results:
        err = error_for_finish(c)
        if err is not None:
            raise err
    return JSONResponse(text_completion_body(model, results, logprobs=want_lp, prefix=prefix))


async def _stream(
    streams: list[AsyncIterator[TokenEvent]],
    model: str,
    include_usage: bool,
    logprobs: bool,
    prefix: str,
) -> AsyncIterator[bytes]:
    out = ChunkWriter("text_completion", model, include_usage)
    usages: dict[int, Usage] = {}
    if prefix:
        for i in range(len(streams)):
            yield out.text(i, prefix)
    async for i, event in merge(streams):
        if (failure := failure_event(event)) is not None:
            yield failure
            return
        lp = completion_logprobs(event.logprobs) if logprobs and event.logprobs else None
        finish = openai_finish_reason(event.finish_reason) if event.finish_reason else None
        if event.text or lp or finish:
            yield out.text(i, event.text, finish, lp)
        if event.usage is not None and event.finish_reason is not None:
            usages[i] = event.usage
    if include_usage:
        yield out.usage(usages)
    yield SSE_DONE
