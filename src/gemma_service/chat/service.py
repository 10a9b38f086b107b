"""Chat orchestration: messages (+ memory, history) → prompt tokens → engine streams.

The HTTP layer turns its request models into a ``ChatJob`` or raw text and gets back one token
stream per choice; everything about prompts and context limits is decided here.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace

from gemma_service.chat.context import AssembledChat, ChatContextBuilder, ContextRequest
from gemma_service.chat.prompt import ChatPrompter, Message, Prompt
from gemma_service.engine.protocol import (
    EngineClient,
    GenerationRequest,
    SamplingParams,
    TokenEvent,
    TokenLogprob,
    Usage,
)
from gemma_service.errors import ContextLengthExceededError, InvalidRequestError
from gemma_service.gpu.residency import GpuResidency
from gemma_service.memory.conversations import ConversationStore
from gemma_service.memory.service import MemoryService

SUMMARY_MAX_TOKENS = 160


@dataclass(slots=True)
class ChatJob:
    """A chat request as the chat layer sees it."""

    messages: list[Message]
    sampling: SamplingParams
    n: int = 1
    priority: int = 0
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(slots=True)
class PreparedPrompt:
    """Tokens ready for the engine, plus what the response reports about how they were made."""

    tokens: list[int]
    text: str
    prepare_time_s: float = 0.0
    # Filled in as the request runs: seconds waited for the model to be placed on the GPU.
    gpu_wait_s: float = 0.0


@dataclass(slots=True)
class Completion:
    """One choice, collected."""

    text: str
    finish_reason: str
    usage: Usage
    logprobs: list[TokenLogprob] = field(default_factory=list)
    error: str | None = None


class ChatService:
    """Builds prompts, enforces the context limit, starts one engine stream per choice."""

    def __init__(
        self,
        engine: EngineClient,
        *,
        request_timeout_s: float | None = None,
        residency: GpuResidency | None = None,
        memory: MemoryService | None = None,
        conversations: ConversationStore | None = None,
        on_retrieval: Callable[[float], None] | None = None,
    ) -> None:
        self._engine = engine
        self._residency = residency
        info = engine.model_info
        self._prompter = ChatPrompter(info.chat_template, info.bos_token, info.eos_token)
        self._add_bos = info.add_bos
        self._timeout = request_timeout_s
        self.context = ChatContextBuilder(
            memory,
            conversations,
            lambda text: len(engine.tokenize(text, add_special=False, parse_special=False)),
            info.n_ctx,
            on_retrieval,
        )

    @property
    def engine(self) -> EngineClient:
        return self._engine

    async def assemble(
        self, messages: list[Message], req: ContextRequest, max_tokens: int
    ) -> AssembledChat:
        """The request's messages with its conversation history and numbered sources added."""
        return await self.context.assemble(messages, req, max_tokens, self.summarize)

    async def summarize(self, turns: list[Message]) -> str:
        """A few sentences standing in for older turns of a long conversation."""
        transcript = "\n".join(f"{m.role}: {m.content}" for m in turns)
        # About half the context for the transcript (~3 characters a token); newest kept.
        transcript = transcript[-self._engine.model_info.n_ctx * 3 // 2 :]
        ask = [
            Message(
                "user",
                "Summarize this conversation in a few sentences, keeping names, "
                f"facts and decisions:\n\n{transcript}",
            )
        ]
        prepared = self.prepare_chat(ask, SUMMARY_MAX_TOKENS)
        sampling = SamplingParams(max_tokens=SUMMARY_MAX_TOKENS, temperature=0.0)
        [stream] = self.streams(prepared, sampling)
        return (await collect(stream)).text

    def prepare_chat(self, messages: list[Message], max_tokens: int) -> PreparedPrompt:
        started = time.perf_counter()
        prompt = self._prompter.build(messages)
        tokens = self.tokenize_prompt(prompt)
        self.check_fits(tokens, max_tokens)
        return PreparedPrompt(tokens, prompt.render(), time.perf_counter() - started)

    def prepare_text(self, text: str, max_tokens: int) -> PreparedPrompt:
        started = time.perf_counter()
        tokens = self._engine.tokenize(text, add_special=True, parse_special=True)
        self.check_fits(tokens, max_tokens)
        return PreparedPrompt(tokens, text, time.perf_counter() - started)

    def prepare_tokens(self, tokens: list[int], max_tokens: int) -> PreparedPrompt:
        n_vocab = self._engine.model_info.n_vocab
        bad = [t for t in tokens if not 0 <= t < n_vocab]
        if bad:
            raise InvalidRequestError(
                f"token id {bad[0]} is outside the vocabulary", param="prompt"
            )
        self.check_fits(tokens, max_tokens)
        return PreparedPrompt(list(tokens), self._engine.detokenize(tokens))

    def tokenize_prompt(self, prompt: Prompt) -> list[int]:
        tokens: list[int] = []
        bos = self._engine.tokenize("", add_special=True, parse_special=False)
        if prompt.add_bos and self._add_bos:
            tokens.extend(bos)
        for text, special in prompt.segments:
            tokens.extend(self._engine.tokenize(text, add_special=False, parse_special=special))
        return tokens

    def check_fits(self, tokens: list[int], max_tokens: int) -> None:
        """A prompt that leaves no room to generate is a 400, before anything is streamed."""
        n_ctx = self._engine.model_info.n_ctx
        if not tokens:
            raise InvalidRequestError("the prompt is empty", param="messages")
        if len(tokens) >= n_ctx:
            raise ContextLengthExceededError(
                f"This model's maximum context length is {n_ctx} tokens. However, your messages "
                f"resulted in {len(tokens)} tokens. Please reduce the length of the messages.",
                param="messages",
            )

    def streams(
        self,
        prepared: PreparedPrompt,
        sampling: SamplingParams,
        *,
        n: int = 1,
        request_id: str | None = None,
        priority: int = 0,
    ) -> list[AsyncIterator[TokenEvent]]:
        """One engine stream per choice; choice i uses seed + i so choices differ."""
        rid = request_id or uuid.uuid4().hex
        out: list[AsyncIterator[TokenEvent]] = []
        for i in range(n):
            seed = None if sampling.seed is None else sampling.seed + i
            req = GenerationRequest(
                request_id=f"{rid}-{i}",
                prompt_tokens=prepared.tokens,
                sampling=replace(
                    sampling,
                    seed=seed,
                    stop=list(sampling.stop),
                    logit_bias=dict(sampling.logit_bias),
                ),
                priority=priority,
                timeout_s=self._timeout,
            )
            out.append(self._on_device(prepared, self._engine.generate(req)))
        return out

    async def _on_device(
        self, prepared: PreparedPrompt, stream: AsyncIterator[TokenEvent]
    ) -> AsyncIterator[TokenEvent]:
        """Hold the model's placement (GPU lease) while the stream runs."""
        residency = self._residency
        try:
            if residency is not None:
                waited = await residency.request_started()
                prepared.gpu_wait_s = max(prepared.gpu_wait_s, waited)
            try:
                async for event in stream:
                    yield event
            finally:
                if residency is not None:
                    residency.request_finished()
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()


async def remembering(
    context: ChatContextBuilder, assembled: AssembledChat, stream: AsyncIterator[TokenEvent]
) -> AsyncIterator[TokenEvent]:
    """Pass a choice's events through; store the finished turn in its conversation."""
    parts: list[str] = []
    async for event in stream:
        parts.append(event.text)
        if event.finish_reason in ("stop", "length"):
            await context.remember(assembled, "".join(parts))
        yield event


async def collect(stream: AsyncIterator[TokenEvent]) -> Completion:
    """Drain one choice's stream into a Completion, closing the stream before returning (its
    wrappers settle accounting, such as token rate limits, when they close)."""
    parts: list[str] = []
    logprobs: list[TokenLogprob] = []
    try:
        async for event in stream:
            parts.append(event.text)
            if event.logprobs:
                logprobs.extend(event.logprobs)
            if event.finish_reason is not None:
                assert event.usage is not None
                return Completion(
                    "".join(parts), event.finish_reason, event.usage, logprobs, event.error
                )
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
    raise RuntimeError("the engine stream ended without a finish event")


async def collect_all(streams: list[AsyncIterator[TokenEvent]]) -> list[Completion]:
    return list(await asyncio.gather(*(collect(s) for s in streams)))


async def merge_streams(
    streams: list[AsyncIterator[TokenEvent]],
) -> AsyncIterator[tuple[int, TokenEvent]]:
    """Interleave several choices' streams as (choice index, event), in arrival order."""
    if len(streams) == 1:
        async for event in streams[0]:
            yield 0, event
        return
    queue: asyncio.Queue[tuple[int, TokenEvent | None]] = asyncio.Queue()

    async def pump(i: int, s: AsyncIterator[TokenEvent]) -> None:
        try:
            async for event in s:
                await queue.put((i, event))
        finally:
            await queue.put((i, None))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        remaining = len(tasks)
        while remaining:
            i, maybe_event = await queue.get()
            if maybe_event is None:
                remaining -= 1
            else:
                yield i, maybe_event
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
