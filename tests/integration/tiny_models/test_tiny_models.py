"""The generated test models are what tests rely on: real vocabularies, the real Gemma 4
template, a projector with the modalities each claims."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.tiny_models import TinyModel
from tests.tiny_models.gguf_convert import read_gguf_keys
from tests.tiny_models.sdist import GEMMA4_TEMPLATE, cache_root


def _keys(path: Path, prefix: str) -> dict[str, Any]:
    return {key: value for key, value, _, _ in read_gguf_keys(path, prefix)}


def test_gemma4_text_has_the_real_template_and_specials(tiny_gemma4_text: TinyModel) -> None:
    keys = _keys(tiny_gemma4_text.model_path, "")
    template_file = cache_root() / "test-models" / "llama.cpp-0.3.36" / GEMMA4_TEMPLATE
    assert keys["tokenizer.chat_template"] == template_file.read_text()
    assert keys["general.architecture"] == "gemma4"
    tokens = keys["tokenizer.ggml.tokens"]
    assert len(tokens) == 262_144
    specials = {b"<|turn>": 105, b"<turn|>": 106, b"<|channel>": 100, b"<|tool_call>": 48}
    assert {t: tokens.index(t) for t in specials} == specials
    assert tiny_gemma4_text.mmproj_path is None


def test_multimodal_models_carry_their_projectors(
    tiny_gemma3_vision: TinyModel, tiny_gemma4_multimodal: TinyModel
) -> None:
    g3 = _keys(tiny_gemma3_vision.mmproj_path or Path(), "clip.")
    assert g3["clip.has_vision_encoder"] and not g3.get("clip.has_audio_encoder")
    g4 = _keys(tiny_gemma4_multimodal.mmproj_path or Path(), "clip.")
    assert g4["clip.has_vision_encoder"] and g4["clip.has_audio_encoder"]
    assert _keys(tiny_gemma3_vision.model_path, "general.")["general.architecture"] == "gemma3"
