"""ChatService.start and ChatRun over the engine loop and the fake backend: what a protocol
writer can rely on (one pass of typed events, hooks in order, clean-up exactly once)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gemma_service.chat.events import ChoiceEnd, RunInfo, TextDelta
from gemma_service.chat.hooks import RunObserver
from gemma_service.chat.job import Caller, ChatJob
from gemma_service.chat.messages import ChatMessage, ImagePart, TextPart
from gemma_service.chat.service import ChatService
from gemma_service.engine.async_engine import Engine, EngineConfig
from gemma_service.engine.fake_backend import FakeBackend
from gemma_service.engine.protocol import SamplingParams, TokenEvent
from gemma_service.errors import ContextLengthExceededError, InvalidRequestError
from gemma_service.memory.owners import OwnerScope


class Recorder:
    """A run hook that writes down what it was told, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.runs: list[RunInfo] = []

    def observe(self, run: RunInfo) -> RunObserver:
        self.runs.append(run)
        calls = self.calls

        class Observer(RunObserver):
            async def before_generate(self) -> None:
                calls.append("before")

            def on_engine_event(self, choice: int, event: TokenEvent) -> None:
                if not calls or calls[-1] != "event":
                    calls.append("event")

            async def on_choice_end(self, end: ChoiceEnd, raw_text: str) -> None:
                calls.append(f"end:{end.finish_reason}")

            def on_close(self) -> None:
                calls.append("close")

        return Observer()


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    eng = Engine(lambda: FakeBackend(n_ctx=256), EngineConfig(64, 4, 2, 8))
    await eng.start()
    yield eng
    await eng.shutdown()


def ask(text: str, **sampling: object) -> ChatJob:
    return ChatJob(
        messages=[ChatMessage.of("user", text)],
        sampling=SamplingParams(**sampling),  # type: ignore[arg-type]
        caller=Caller("alice", OwnerScope("alice")),
    )


async def test_a_run_reports_its_prompt_then_streams_typed_events(engine: Engine) -> None:
    recorder = Recorder()
    chat = ChatService(engine, hooks=[recorder])
    run = await chat.start(ask("hello", max_tokens=8))
    assert run.info.prompt_tokens > 0 and run.info.model == "gemma-fake"
    assert (
        run.info.caller == Caller("alice", OwnerScope("alice")) and recorder.calls == []
    )  # nothing ran yet
    events = [event async for event in run]
    assert isinstance(events[-1], ChoiceEnd) and events[-1].finish_reason == "length"
    assert all(isinstance(e, TextDelta) for e in events[:-1])
    assert recorder.calls == ["before", "event", "end:length", "close"]
    await run.aclose()  # closing again changes nothing
    assert recorder.calls.count("close") == 1
    with pytest.raises(RuntimeError, match="once"):
        [e async for e in run]


async def test_closing_a_run_nobody_read_frees_the_engine(engine: Engine) -> None:
    recorder = Recorder()
    run = await ChatService(engine, hooks=[recorder]).start(ask("never read"))
    assert engine.health().waiting == 1  # admitted and held
    await run.aclose()
    assert recorder.calls == ["close"]  # no generation, no metering of one
    for _ in range(500):  # the engine's worker thread takes the abort from its inbox
        if engine.health().waiting == 0:
            break
        await asyncio.sleep(0.01)
    assert engine.health().waiting == 0


async def test_choices_are_collected_and_differ_by_seed(engine: Engine) -> None:
    job = ask("two please", max_tokens=30, seed=7)
    job.n = 2
    result = await (await ChatService(engine).start(job)).collect()
    assert [c.index for c in result.choices] == [0, 1]
    assert result.choices[0].content != result.choices[1].content
    assert all(c.usage.completion_tokens == 30 for c in result.choices)


async def test_refusals_are_raised_by_start(engine: Engine) -> None:
    chat = ChatService(engine)
    with pytest.raises(ContextLengthExceededError) as too_long:
        await chat.start(ask("x" * 300))
    assert too_long.value.param == "messages"
    image = ChatMessage("user", [TextPart("what is it?"), ImagePart("data:,", "messages[0].x")])
    with pytest.raises(InvalidRequestError, match="cannot take images") as media:
        await chat.start(ChatJob(messages=[image]))
    assert media.value.param == "messages[0].x"
    with pytest.raises(InvalidRequestError, match="vocabulary"):
        await chat.start(ChatJob(prompt=[999_999]))
    assert engine.health().waiting == 0  # nothing was left admitted


async def test_the_default_system_prompt_opens_a_chat_without_one(engine: Engine) -> None:
    chat = ChatService(engine, system_prompt="Answer in French.")
    run = await chat.start(ask("hello", max_tokens=1))
    assert "Answer in French." in run.info.prompt_text
    await run.aclose()
    own = ChatJob(messages=[ChatMessage.of("system", "Be brief."), ChatMessage.of("user", "hi")])
    run = await chat.start(own)
    assert "French" not in run.info.prompt_text
    await run.aclose()
