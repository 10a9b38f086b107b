"""``ChatService.start(job) -> ChatRun``: the one way a request becomes a generation.

``start`` does, in order: check the job against the model (vocabulary), apply tools and the
output format, assemble the conversation (history, retrieved memories, documents), render and
tokenize the prompt, fit it to the context, and have the engine admit one sequence per choice.
Every refusal (400, 404, 413, 429, 503) is raised here, so it reaches the client before any
byte of the answer. What happens while the run generates is the hooks' (GPU placement,
metering, remembering the turn).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from gemma_service.chat.context import AssembledChat, ChatContextBuilder
from gemma_service.chat.events import RunInfo
from gemma_service.chat.hooks import ConversationMemory, GpuPlacement, RunHook
from gemma_service.chat.job import Caller, ChatJob
from gemma_service.chat.messages import ChatMessage, ImagePart
from gemma_service.chat.prompt import ChatPrompter, Message, Prompt
from gemma_service.chat.reply import ReplyReader
from gemma_service.chat.run import ChatRun
from gemma_service.chat.structured import messages_to_turns
from gemma_service.chat.structured_chat import StructuredChat, output_grammar, structure_chat
from gemma_service.engine.protocol import (
    EngineClient,
    GenerationRequest,
    GenerationStream,
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
    ) -> None:
        self._engine = engine
        info = engine.model_info
        self._prompter = ChatPrompter(info.chat_template, info.bos_token, info.eos_token)
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
    def model_info(self) -> ModelInfo:
        """The model this service answers with."""
        return self._engine.model_info

    async def start(self, job: ChatJob) -> ChatRun:
        """Admit ``job``: every refusal is raised here; the answer comes from the run."""
        info = self._engine.model_info
        _check_vocabulary(job, info.n_vocab)
        prepared = await self._prepare(job)
        check_prompt_fits(len(prepared.tokens), info.n_ctx, param=job.prompt_param)
        sampling = job.sampling
        if prepared.plan is not None:
            sampling = prepared.plan.constrain(sampling)
        else:
            sampling = replace(sampling, grammar=output_grammar(job.output) or sampling.grammar)
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
        )
        streams = await self._submit(job, prepared.tokens, sampling)
        readers = [ReplyReader(i, prepared.plan) for i in range(job.n)]
        observers = [o for hook in self._hooks if (o := hook.observe(run_info)) is not None]
        return ChatRun(run_info, streams, readers, observers)

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
        _refuse_media(job.messages)
        turns = self._with_default_system(messages_to_turns(job.messages))
        plan = structure_chat(
            turns,
            tools=job.tools,
            tool_choice=job.tool_choice,
            parallel=job.parallel_tool_calls,
            output=job.output,
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
        prompt = self._prompter.build(context.messages)
        return _Prepared(self._tokenize(prompt), prompt.render(), plan, context)

    def _prepare_raw(self, prompt: str | list[int]) -> _Prepared:
        if isinstance(prompt, str):
            tokens = self._engine.tokenize(prompt, add_special=True, parse_special=True)
            return _Prepared(tokens, prompt)
        return _Prepared(list(prompt), self._engine.detokenize(prompt))

    def _tokenize(self, prompt: Prompt) -> list[int]:
        tokens: list[int] = []
        if prompt.add_bos and self._engine.model_info.add_bos:
            tokens.extend(self._engine.tokenize("", add_special=True, parse_special=False))
        for text, special in prompt.segments:
            tokens.extend(self._engine.tokenize(text, add_special=False, parse_special=special))
        return tokens

    def _with_default_system(self, turns: list[Message]) -> list[Message]:
        """GEMMA_SYSTEM_PROMPT opens a chat that brings no system message of its own."""
        if self._system_prompt and not any(t.role == "system" for t in turns):
            return [Message("system", self._system_prompt), *turns]
        return turns

    async def _submit(
        self, job: ChatJob, tokens: list[int], sampling: SamplingParams
    ) -> list[GenerationStream]:
        """One admitted engine request per choice (choice i samples with seed + i)."""
        streams: list[GenerationStream] = []
        try:
            for i in range(job.n):
                seed = None if sampling.seed is None else sampling.seed + i
                request = GenerationRequest(
                    request_id=f"{job.request_id}-{i}",
                    prompt_tokens=tokens,
                    sampling=replace(sampling, seed=seed),
                    priority=job.priority,
                    timeout_s=self._timeout,
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


def _refuse_media(messages: Sequence[ChatMessage]) -> None:
    """The served model reads text only: an image or audio part is a 400 naming the part."""
    for message in messages:
        for part in message.media:
            kind = "images" if isinstance(part, ImagePart) else "audio"
            raise InvalidRequestError(
                f"this model takes text only; it cannot take {kind}",
                param=part.param,
                code="unsupported_content",
            )
