"""The three tiny models as transformers configurations, randomly initialised and saved in HF form.

Sizes are the smallest that llama.cpp and its mtmd projectors accept: a 64-dim, 2-layer text
decoder over the real 262,144-token Gemma vocabulary (most of each GGUF is that embedding), a
2-layer SigLIP (Gemma 3) or Gemma 4 vision tower, and for Gemma 4 a 2-layer audio conformer.
Imported only by the builder subprocess (torch and transformers are heavy).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

VOCAB_SIZE = 262_144  # the real Gemma 3 / Gemma 4 vocabularies, transplanted at conversion
GEMMA3_IMAGE_SIZE, GEMMA3_PATCH, GEMMA3_IMAGE_TOKENS = 64, 8, 16  # 8x8 patches pooled to 4x4

_TEXT = {
    "vocab_size": VOCAB_SIZE,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "sliding_window": 32,
    "max_position_embeddings": 8192,
}
_GEMMA4_TEXT = {
    **_TEXT,
    "layer_types": ["sliding_attention", "full_attention"],
    "global_head_dim": 64,
    "hidden_size_per_layer_input": 0,  # no per-layer embeddings (E2B/E4B have them; not needed)
    "num_kv_shared_layers": 0,
}


def _perturb_constant_parameters(model: torch.nn.Module) -> None:
    """Give every constant tensor random values.

    transformers initialises norms and biases to constants and Gemma 3's projector weight
    (``mm_input_projection_weight``) to zeros: images would then not change the logits at all.
    """
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.numel() > 1 and float(param.float().std()) == 0.0:
                param.add_(torch.randn_like(param) * (0.5 if "projection" in name else 0.1))


def _save(model: torch.nn.Module, out: Path, preprocessor: dict[str, Any] | None) -> None:
    _perturb_constant_parameters(model)
    model.save_pretrained(out, safe_serialization=True)  # type: ignore[operator]
    if preprocessor is not None:  # the mmproj converter reads the image normalisation from it
        (out / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=1))


def build_gemma3_vision(out: Path) -> None:
    """Gemma3ForConditionalGeneration: SigLIP tower (64 px, 16 image tokens) + text decoder."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    torch.manual_seed(0)
    text = {
        **_TEXT,
        "query_pre_attn_scalar": 32,
        "rope_parameters": {
            "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
            "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
        },
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": GEMMA3_IMAGE_SIZE,
        "patch_size": GEMMA3_PATCH,
        "vision_use_head": False,
    }
    config = Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=GEMMA3_IMAGE_TOKENS,
        boi_token_index=255_999,
        eoi_token_index=256_000,
        image_token_index=VOCAB_SIZE,  # past the vocabulary, as transformers allows
        initializer_range=0.2,  # wider than the default, so random logits are not flat
    )
    config.architectures = ["Gemma3ForConditionalGeneration"]
    preprocessor = {
        "image_processor_type": "Gemma3ImageProcessor",
        "processor_class": "Gemma3Processor",
        "size": {"height": GEMMA3_IMAGE_SIZE, "width": GEMMA3_IMAGE_SIZE},
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "image_seq_length": GEMMA3_IMAGE_TOKENS,
    }
    _save(Gemma3ForConditionalGeneration(config).eval(), out, preprocessor)


def build_gemma4_multimodal(out: Path) -> None:
    """Gemma4ForConditionalGeneration: vision tower (gemma4v) + audio conformer (gemma4a)."""
    from transformers import Gemma4Config, Gemma4ForConditionalGeneration

    torch.manual_seed(0)
    config = Gemma4Config(
        text_config={**_GEMMA4_TEXT, "use_bidirectional_attention": "vision"},
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "patch_size": 4,
            "pooling_kernel_size": 3,
            "position_embedding_size": 256,
        },
        audio_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            # [0] must be 128 (the mel bins): mtmd asserts in ggml_can_mul_mat otherwise
            "subsampling_conv_channels": [128, 8],
            "output_proj_dims": 48,
        },
        initializer_range=0.2,
    )
    config.architectures = ["Gemma4ForConditionalGeneration"]
    preprocessor = {
        "image_processor_type": "Gemma4ImageProcessor",
        "processor_class": "Gemma4Processor",
        "image_mean": [0.0, 0.0, 0.0],
        "image_std": [1.0, 1.0, 1.0],
        "patch_size": 4,
        "pooling_kernel_size": 3,
        "max_soft_tokens": 70,
    }
    model = Gemma4ForConditionalGeneration(config).eval()
    with torch.no_grad():
        # The projections into the text space start at std 0.02, so media barely move the
        # answer. Even x8, two images change the logits by ~0.06 and the greedy answer from
        # about its fourth token on (measured): tests compare a few tokens, not the first.
        for name, param in model.named_parameters():
            if "embedding_projection" in name:
                param.mul_(8.0)
    _save(model, out, preprocessor)


def build_gemma4_text(out: Path) -> None:
    """Gemma4ForCausalLM: the Gemma 4 text decoder alone (no projector)."""
    from transformers import Gemma4ForCausalLM, Gemma4TextConfig

    torch.manual_seed(0)
    config = Gemma4TextConfig(**_GEMMA4_TEXT, initializer_range=0.2)
    config.architectures = ["Gemma4ForCausalLM"]
    _save(Gemma4ForCausalLM(config).eval(), out, None)
