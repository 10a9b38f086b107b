"""Which requests the remote engine keeps together: a conversation whatever its prompt, else
the same caller with the same prompt opening (a client re-sending its growing history)."""

from __future__ import annotations

from pathlib import Path

from gemma_service.engine.protocol import GenerationRequest, SamplingParams
from gemma_service.engine.remote.remote_engine import (
    AFFINITY_PREFIX_TOKENS,
    RemoteConfig,
    RemoteEngine,
)


def _engine() -> RemoteEngine:
    return RemoteEngine(RemoteConfig(["http://a:1", "http://b:1"], Path("m.gguf"), "m"))


def _request(tokens: list[int], key: str | None) -> GenerationRequest:
    return GenerationRequest("r", tokens, SamplingParams(), affinity_key=key)


def test_a_conversation_keeps_its_key_whatever_the_prompt() -> None:
    engine = _engine()
    key = "conversation:alice:trip"
    assert engine._affinity(_request([1, 2, 3], key)) == engine._affinity(_request([9], key))


def test_a_callers_growing_history_keeps_its_key_but_another_opening_does_not() -> None:
    engine = _engine()
    opening = list(range(AFFINITY_PREFIX_TOKENS))
    first = engine._affinity(_request([*opening, 1, 2], "caller:alice"))
    assert engine._affinity(_request([*opening, 1, 2, 3, 4, 5], "caller:alice")) == first
    assert engine._affinity(_request([*opening, 7], "caller:bob")) != first
    assert engine._affinity(_request([5, *opening], "caller:alice")) != first


def test_a_prompt_shorter_than_the_opening_goes_to_the_least_busy_upstream() -> None:
    engine = _engine()
    assert engine._affinity(_request(list(range(AFFINITY_PREFIX_TOKENS - 1)), "caller:a")) is None
    assert engine._affinity(_request([1, 2], None)) is None
