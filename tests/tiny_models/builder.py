"""Build one tiny model into a folder: ``python -m tests.tiny_models.builder NAME OUT_DIR SRC_DIR``.

Runs as its own process so torch, transformers and the converter never load into the test
process. ``SRC_DIR`` holds the llama.cpp sources taken from the sdist (see ``sdist.py``);
``OUT_DIR`` receives ``model.gguf`` and, for the multimodal models, ``mmproj.gguf``.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

from tests.tiny_models import recipes
from tests.tiny_models.catalogue import SPECS, packaged_gemma3_gguf
from tests.tiny_models.gguf_convert import convert
from tests.tiny_models.sdist import GEMMA4_TEMPLATE, GEMMA4_VOCAB

# Gemma 3's chat template (the one its instruction-tuned checkpoints ship, images included).
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

_RECIPES = {
    "gemma3-vision": recipes.build_gemma3_vision,
    "gemma4-multimodal": recipes.build_gemma4_multimodal,
    "gemma4-text": recipes.build_gemma4_text,
}


def build(name: str, out: Path, llama_cpp_dir: Path) -> None:
    """Build the HF checkpoint in a scratch folder, then convert it into ``out``."""
    spec = SPECS[name]
    if name.startswith("gemma3"):
        vocab, template = packaged_gemma3_gguf(), GEMMA3_CHAT_TEMPLATE
    else:
        vocab, template = (
            llama_cpp_dir / GEMMA4_VOCAB,
            (llama_cpp_dir / GEMMA4_TEMPLATE).read_text(),
        )
    with tempfile.TemporaryDirectory(prefix=f"tiny-{name}-") as scratch:
        hf_dir = Path(scratch)
        started = time.monotonic()
        _RECIPES[name](hf_dir)
        _step(name, "random weights built", started)
        for mmproj, filename in ((False, "model.gguf"), (True, "mmproj.gguf")):
            if mmproj and not spec.multimodal:
                continue
            started = time.monotonic()
            convert(
                hf_dir,
                out / filename,
                llama_cpp_dir=llama_cpp_dir,
                vocab_gguf=vocab,
                chat_template=template,
                mmproj=mmproj,
            )
            _step(name, f"{filename} written", started)


def _step(name: str, what: str, started: float) -> None:
    print(f"[tiny models] {name}: {what} ({time.monotonic() - started:.1f} s)", flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)  # the converter logs every tensor at INFO
    build(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
