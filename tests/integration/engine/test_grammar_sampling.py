"""Grammar-constrained sampling in the real llama.cpp backend (grammar checked after the chain)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gemma_service.chat.structured import schema_to_gbnf, validate_instance
from gemma_service.config import ServiceSettings
from gemma_service.engine.async_engine import Engine, EngineConfig
from gemma_service.engine.llama_backend import LlamaBackend, LlamaConfig
from gemma_service.engine.protocol import GenerationRequest, SamplingParams
from gemma_service.errors import InvalidRequestError
from gemma_service.model_files import prepare_default_model

pytestmark = pytest.mark.integration

POINT = {
    "type": "object",
    "properties": {
        "x": {"type": "integer", "minimum": -50, "maximum": 50},
        "label": {"enum": ["start", "end"]},
    },
    "required": ["x", "label"],
}


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    model_file: Path = prepare_default_model(ServiceSettings().model_cache_dir, progress=False)
    config = LlamaConfig(
        model_file, "gemma", n_ctx=2048, batch_size=256, n_seq_max=4, threads=2, gpu_layers=0
    )
    eng = Engine(lambda: LlamaBackend(config), EngineConfig(256, 2, 2, 8))
    await eng.start()
    yield eng
    await eng.shutdown()


async def test_greedy_grammar_output_validates_across_a_relocation(engine: Engine) -> None:
    """Greedy sampling takes the grammar's fallback path too; a reload mid-reply keeps the
    grammar's progress, so the text still completes into a valid value."""
    prompt = engine.tokenize(
        "<start_of_turn>user\nA point as JSON.<end_of_turn>\n<start_of_turn>model\n"
    )
    sampling = SamplingParams(max_tokens=48, temperature=0.0, grammar=schema_to_gbnf(POINT))
    text, reason, relocated = "", None, False
    async for event in await engine.submit(GenerationRequest("point", prompt, sampling)):
        text += event.text
        reason = event.finish_reason or reason
        if len(text) >= 3 and not relocated:
            await engine.relocate(0)
            relocated = True
    assert relocated and reason == "stop"
    assert validate_instance(POINT, json.loads(text)) == []


async def test_a_grammar_llama_cpp_cannot_parse_is_refused_at_submit(engine: Engine) -> None:
    """A per-request failure: the request gets a 400 before anything runs, the engine serves
    on (readiness stays green)."""
    prompt = engine.tokenize("<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n")
    broken = SamplingParams(max_tokens=8, grammar='root ::= "unterminated')
    with pytest.raises(InvalidRequestError) as refused:
        await engine.submit(GenerationRequest("bad", prompt, broken))
    assert refused.value.status_code == 400 and "grammar" in refused.value.message
    assert engine.health().state == "ready"
    text = ""
    async for event in await engine.submit(
        GenerationRequest("good", prompt, SamplingParams(max_tokens=8, temperature=0.0))
    ):
        text += event.text
    assert text
