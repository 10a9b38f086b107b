"""``ChatService.start(job) -> ChatRun``: the one way a request becomes a generation.

``start`` does, in order: check the job against the model (vocabulary), apply tools, the
output format and thinking in the model family's way (chat_format.py), assemble the
conversation (history, retrieved memories, documents), render and tokenize the prompt, fit it
to the context, and have the engine admit one sequence per choice.
Every refusal (400, 404, 413, 429, 503) is raised here, so it reaches the client before any
byte of the answer. What happens while the run generates is the hooks' (GPU placement,
metering, remembering the turn).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from gemma_service.chat.chat_format import ChatFormat, detect_chat_format
from gemma_service.chat.chat_template import RESERVED_TEMPLATE_NAMES, ChatPrompter
from gemma_service.chat.context import AssembledChat, ChatContextBuilder
from gemma_service.chat.events import RunInfo
from gemma_service.chat.hooks import ConversationMemory, GpuPlacement, RunHook, RunObserver
from gemma_service.chat.job import Caller, ChatJob
from gemma_service.chat.media import MediaLoader, split_at_markers
from gemma_service.chat.messages import ChatMessage
from gemma_service.chat.prompt import Message, Prompt
from gemma_service.chat.reply import ReplyReader
from gemma_service.chat.run import ChatRun
from gemma_service.chat.special_text import SpecialTextGuard
from gemma_service.chat.structured import messages_to_turns
from gemma_service.chat.structured_chat import StructuredChat, output_grammar, structure_chat
from gemma_service.chat.thinking import (
    ThinkingOptions,
    ThinkingPlan,
    plan_thinking,
    thought_budget_grammar,
)
from gemma_service.chat.thought_channel import CHANNEL_CLOSE, CHANNEL_OPEN
from gemma_service.engine.protocol import (
    MEDIA_TOKEN,
    EngineClient,
    GenerationRequest,
    GenerationStream,
    MediaInput,
    ModelInfo,
    SamplingParams,
    check_prompt_fits,
)
from gemma_service.errors import InvalidRequestError
from gemma_service.gpu.residency import GpuResidency
from gemma_service.memory.conversations import ConversationHistory
from gemma_service.memory.service import MemoryService

log = logging.getLogger(__name__)

SUMMARY_MAX_TOKENS = 160


@dataclass(slots=True)
class _Prepared:
    """A job made ready for the engine."""

    tokens: list[int]
    text: str
    plan: StructuredChat | None = None  # chat requests: tools and output format applied
    context: AssembledChat | None = None
    media: list[MediaInput] = field(default_factory=list)  # one per MEDIA_TOKEN, in order
    thinking: ThinkingPlan = field(default_factory=lambda: ThinkingPlan(False))


class ChatService:
    """Turns a ``ChatJob`` into an admitted ``ChatRun``."""

    def __init__(
        self,
        engine: EngineClient,
        *,
        request_timeout_s: float | None = None,
        residency: GpuResidency | None = None,
        memory: MemoryService | None = None,
        conversations: ConversationHistory | None = None,
        on_retrieval: Callable[[float], None] | None = None,
        hooks: Sequence[RunHook] = (),
        system_prompt: str | None = None,
        media: MediaLoader | None = None,
    ) -> None:
        self._engine = engine
        self._media = media or MediaLoader()
        info = engine.model_info
        self.chat_format: ChatFormat = detect_chat_format(info.architecture, info.chat_template)
        self._guard = SpecialTextGuard(
            lambda text, special: engine.tokenize(text, add_special=False, parse_special=special)
        )
        self._prompter = ChatPrompter(
            info.chat_template, info.bos_token, info.eos_token, self._guard
        )
        self._channel_tokens: tuple[int, int] | None = None
        self._timeout = request_timeout_s
        self._system_prompt = system_prompt
        self.context = ChatContextBuilder(
            memory,
            conversations,
            lambda text: len(engine.tokenize(text, add_special=False, parse_special=False)),
            info.n_ctx,
            on_retrieval,
        )
        placement: list[RunHook] = [GpuPlacement(residency)] if residency is not None else []
        # Placement first (the others see its GPU wait), remembering last.
        self._hooks: list[RunHook] = [*placement, *hooks, ConversationMemory(self.context)]

    @property
    def engine(self) -> EngineClient:
        """The engine this service answers with (tokenizing endpoints use it directly)."""
        return self._engine

    @property
    def model_info(self) -> ModelInfo:
        """The model this service answers with."""
        return self._engine.model_info

    async def start(self, job: ChatJob, *, observers: Sequence[RunObserver] = ()) -> ChatRun:
        """Admit ``job``: every refusal is raised here; the answer comes from the run.
        ``observers`` take part in this run only, after the service's own hooks."""
        info = self._engine.model_info
        _check_vocabulary(job, info.n_vocab)
        prepared = await self._prepare(job)
        check_prompt_fits(len(prepared.tokens), info.n_ctx, param=job.prompt_param)
        sampling = job.sampling
        if prepared.plan is not None:
            sampling = prepared.plan.constrain(sampling)
        else:
            sampling = replace(sampling, grammar=output_grammar(job.output) or sampling.grammar)
        sampling = self._bound_thought(sampling, prepared.thinking)
        run_info = RunInfo(
            request_id=job.request_id,
            model=info.model_id,
            n=job.n,
            prompt_tokens=len(prepared.tokens),
            prompt_text=prepared.text,
            caller=job.caller,
            context=prepared.context,
            reads_tool_calls=prepared.plan is not None and prepared.plan.reads_tool_calls,
            forces_tool_call=prepared.plan is not None and prepared.plan.forces_tool_call,
            thought_channel=prepared.plan is not None and prepared.plan.thought_channel,
        )
        streams = await self._submit(job, prepared, sampling)
        readers = [ReplyReader(i, prepared.plan) for i in range(job.n)]
        hooked = [o for hook in self._hooks if (o := hook.observe(run_info)) is not None]
        return ChatRun(run_info, streams, readers, [*hooked, *observers])

    async def count_prompt_tokens(self, job: ChatJob) -> int:
        """The tokens of the prompt ``job`` would be answered from (tools, history and
        memories included), without generating anything: for token-counting endpoints."""
        _check_vocabulary(job, self._engine.model_info.n_vocab)
        return len((await self._prepare(job)).tokens)

    async def summarize(self, turns: list[Message], *, caller: Caller | None = None) -> str:
        """A few sentences standing in for older turns of a long conversation (a run of its
        own, billed to ``caller``)."""
        transcript = "\n".join(f"{m.role}: {m.content}" for m in turns)
        # About half the context for the transcript (~3 characters a token); newest kept.
        transcript = transcript[-self._engine.model_info.n_ctx * 3 // 2 :]
        ask = (
            "Summarize this conversation in a few sentences, keeping names, "
            f"facts and decisions:\n\n{transcript}"
        )
        job = ChatJob(
            messages=[ChatMessage.of("user", ask)],
            sampling=SamplingParams(max_tokens=SUMMARY_MAX_TOKENS, temperature=0.0),
            caller=caller,
        )
        result = await (await self.start(job)).collect()
        return result.choices[0].content or ""

    async def _prepare(self, job: ChatJob) -> _Prepared:
        if job.prompt is not None:
            return self._prepare_raw(job.prompt)
        assert job.messages is not None
        loaded = await self._media.load(job.messages, self._engine.model_info.modalities)
        fmt = self.chat_format
        turns = messages_to_turns(loaded.messages, native=fmt.native_tools)
        plan = structure_chat(
            self._with_default_system(turns),
            tools=job.tools,
            tool_choice=job.tool_choice,
            parallel=job.parallel_tool_calls,
            output=job.output,
            syntax=fmt.call_syntax,
            native_tools=fmt.native_tools,
            thought_channel=fmt.thinking,
        )
        options = _thinking_options(job)
        thinking = plan_thinking(
            options, supported=fmt.thinking, max_tokens=job.sampling.max_tokens
        )

        async def summarize(turns: list[Message]) -> str:
            return await self.summarize(turns, caller=job.caller)

        context = await self.context.assemble(
            plan.messages,
            job.memory,
            job.sampling.max_tokens,
            summarize,
            scope=job.caller.scope if job.caller is not None else None,
        )
        if options.enabled and not fmt.thinking:
            context.warnings.append("this model has no thinking mode; it answers directly")
        extra = dict(job.template_kwargs)
        if fmt.thinking:
            extra["enable_thinking"] = thinking.enabled
        prompt = self._prompter.build(context.messages, tools=plan.template_tools, extra=extra)
        tokens, order = self._tokenize(prompt, loaded.nonce)
        media = [loaded.media[i] for i in order]
        return _Prepared(tokens, prompt.render(), plan, context, media=media, thinking=thinking)

    def _prepare_raw(self, prompt: str | list[int]) -> _Prepared:
        if isinstance(prompt, str):
            tokens = self._engine.tokenize(prompt, add_special=True, parse_special=True)
            return _Prepared(tokens, prompt)
        return _Prepared(list(prompt), self._engine.detokenize(prompt))

    def _tokenize(self, prompt: Prompt, nonce: str = "") -> tuple[list[int], list[int]]:
        """The prompt's tokens, a ``MEDIA_TOKEN`` at each media marker, and which media item
        each of those is."""
        tokens: list[int] = []
        media: list[int] = []
        if prompt.add_bos and self._engine.model_info.add_bos:
            tokens.extend(self._engine.tokenize("", add_special=True, parse_special=False))
        for text, special in prompt.segments:
            for piece in split_at_markers(text, nonce) if nonce else [text]:
                if isinstance(piece, int):
                    tokens.append(MEDIA_TOKEN)
                    media.append(piece)
                elif special:
                    tokens.extend(
                        self._engine.tokenize(piece, add_special=False, parse_special=True)
                    )
                else:  # caller text: no special tokens, not even user-defined markers
                    tokens.extend(self._guard.tokenize_text(piece))
        return tokens, media

    def _bound_thought(self, sampling: SamplingParams, thinking: ThinkingPlan) -> SamplingParams:
        """``sampling`` with the grammar that ends a thought at its budget."""
        if thinking.budget_tokens is None:
            return sampling
        marks = self._channel_marks()
        if marks is None:
            return sampling
        grammar = thought_budget_grammar(sampling.grammar, thinking.budget_tokens, *marks)
        return replace(sampling, grammar=grammar)

    def _channel_marks(self) -> tuple[int, int] | None:
        """The token ids that open and close the thinking channel (None: no single tokens)."""
        if self._channel_tokens is None:
            ids = [
                self._engine.tokenize(mark, add_special=False, parse_special=True)
                for mark in (CHANNEL_OPEN, CHANNEL_CLOSE)
            ]
            if all(len(i) == 1 for i in ids):
                self._channel_tokens = (ids[0][0], ids[1][0])
            else:
                log.warning("the thinking channel markers are not single tokens; no budget")
                return None
        return self._channel_tokens

    def _with_default_system(self, turns: list[Message]) -> list[Message]:
        """GEMMA_SYSTEM_PROMPT opens a chat that brings no system message of its own."""
        if self._system_prompt and not any(t.role == "system" for t in turns):
            return [Message("system", self._system_prompt), *turns]
        return turns

    async def _submit(
        self, job: ChatJob, prepared: _Prepared, sampling: SamplingParams
    ) -> list[GenerationStream]:
        """One admitted engine request per choice (choice i samples with seed + i)."""
        streams: list[GenerationStream] = []
        try:
            for i in range(job.n):
                seed = None if sampling.seed is None else sampling.seed + i
                request = GenerationRequest(
                    request_id=f"{job.request_id}-{i}",
                    prompt_tokens=prepared.tokens,
                    sampling=replace(sampling, seed=seed),
                    priority=job.priority,
                    timeout_s=self._timeout,
                    media=prepared.media,
                    affinity_key=_affinity_key(job),
                )
                streams.append(await self._engine.submit(request))
        except BaseException:
            for stream in streams:  # one choice refused: the request is refused whole
                await stream.aclose()
            raise
        return streams


def _affinity_key(job: ChatJob) -> str | None:
    """What keeps a caller's related requests on one upstream: the conversation, else the
    owner (a remote engine adds the prompt's opening tokens)."""
    owner = job.caller.owner if job.caller is not None else None
    if job.memory.conversation_id is not None:
        return f"conversation:{owner}:{job.memory.conversation_id}"
    if job.caller is not None:
        return f"caller:{job.caller.owner or job.caller.id}"
    return None


def _check_vocabulary(job: ChatJob, n_vocab: int) -> None:
    """Token ids the request names must exist in this model's vocabulary."""
    for token in job.sampling.logit_bias:
        if not 0 <= token < n_vocab:
            raise InvalidRequestError(
                f"logit_bias token id {token} is outside the vocabulary (size {n_vocab})",
                param="logit_bias",
            )
    if isinstance(job.prompt, list):
        bad = [t for t in job.prompt if not 0 <= t < n_vocab]
        if bad:
            raise InvalidRequestError(
                f"token id {bad[0]} is outside the vocabulary", param="prompt"
            )


def _thinking_options(job: ChatJob) -> ThinkingOptions:
    """The request's thinking, ``chat_template_kwargs.enable_thinking`` winning over the
    protocol's own switch (``reasoning_effort``)."""
    reserved = RESERVED_TEMPLATE_NAMES & job.template_kwargs.keys()
    if reserved:
        name = sorted(reserved)[0]
        raise InvalidRequestError(
            f"chat_template_kwargs may not set {name!r}", param=f"chat_template_kwargs.{name}"
        )
    if "enable_thinking" in job.template_kwargs:
        return replace(job.thinking, enabled=bool(job.template_kwargs["enable_thinking"]))
    return job.thinking
