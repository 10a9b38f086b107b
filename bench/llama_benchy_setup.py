"""Prepare llama-benchy (an independent benchmark for OpenAI-compatible servers) to run offline.

llama-benchy sizes its prompts with the model's tokenizer and cuts them from a book it downloads.
Neither can come from a hub here, so this script

1. builds a Gemma 3 tokenizer folder (``tokenizer.json``) from the vocabulary inside the packaged
   GGUF: the GGUF's pieces and scores become a SentencePiece model, which transformers converts;
2. seeds llama-benchy's corpus cache (``~/.cache/llama-benchy/<md5 of the book URL>.txt``) with the
   same real text our own bench uses (Python's reference documentation, bench/corpus.py).

Run it with the venv that holds llama-benchy (not the project's):

    python3 -m venv .benchy
    .benchy/bin/pip install llama-benchy==0.4.0 gguf sentencepiece protobuf
    .benchy/bin/python bench/llama_benchy_setup.py --tokenizer-dir .bench/gemma3-tokenizer

It prints the ``--tokenizer`` and ``--book-url`` arguments to pass to llama-benchy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

BOOK_URL = "offline://python-reference-docs"
DEFAULT_GGUF = Path("~/.cache/gemma-service/models/gemma-3-270m-q4_k_m.gguf").expanduser()


def sentencepiece_model(gguf_path: Path) -> tuple[bytes, list[str], list[int]]:
    """A SentencePiece BPE model with the GGUF's pieces, scores and piece types."""
    from gguf import GGUFReader
    from sentencepiece import sentencepiece_model_pb2 as spm

    fields = GGUFReader(str(gguf_path)).fields

    def column(name: str) -> list[object]:
        field = fields[name]
        return [field.parts[i] for i in field.data]

    pieces = [bytes(p).decode("utf-8") for p in column("tokenizer.ggml.tokens")]  # type: ignore[call-overload]
    scores = [float(p[0]) for p in column("tokenizer.ggml.scores")]  # type: ignore[index]
    types = [int(p[0]) for p in column("tokenizer.ggml.token_type")]  # type: ignore[index]
    model = spm.ModelProto()
    trainer = model.trainer_spec
    trainer.model_type = spm.TrainerSpec.BPE
    trainer.vocab_size = len(pieces)
    trainer.byte_fallback = True
    trainer.split_digits = True
    trainer.allow_whitespace_only_pieces = True
    trainer.pad_id, trainer.eos_id, trainer.bos_id, trainer.unk_id = 0, 1, 2, 3
    normalizer = model.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = False
    normalizer.remove_extra_whitespaces = False
    normalizer.escape_whitespaces = True
    for i, (piece, score, kind) in enumerate(zip(pieces, scores, types, strict=True)):
        entry = model.pieces.add()
        entry.piece, entry.score = piece, score
        # GGUF token types are SentencePiece's piece types (1 normal ... 6 byte); id 3 is <unk>.
        entry.type = 2 if i == 3 else kind
    return model.SerializeToString(), pieces, types


def build_tokenizer(gguf_path: Path, out_dir: Path) -> None:
    """Write ``tokenizer.json`` (and its config) for the GGUF's vocabulary into ``out_dir``."""
    from transformers import AutoTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    proto, pieces, types = sentencepiece_model(gguf_path)
    (out_dir / "tokenizer.model").write_bytes(proto)
    # Control and user-defined pieces must be whole tokens, as llama.cpp treats them.
    added = {
        str(i): {"content": pieces[i], "special": kind == 3, "lstrip": False, "rstrip": False,
                 "normalized": False, "single_word": False}
        for i, kind in enumerate(types)
        if kind in (3, 4)
    }  # fmt: skip
    config = {
        "tokenizer_class": "GemmaTokenizer",
        "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
        "add_bos_token": True, "add_eos_token": False,
        "added_tokens_decoder": added,
        "model_max_length": 32768,
    }  # fmt: skip
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=1))
    AutoTokenizer.from_pretrained(str(out_dir)).save_pretrained(str(out_dir))


def seed_corpus(text: str, book_url: str = BOOK_URL) -> Path:
    """Put ``text`` where llama-benchy looks for the downloaded book of ``book_url``."""
    cache = Path(os.path.expanduser("~")) / ".cache" / "llama-benchy"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{hashlib.md5(book_url.encode()).hexdigest()}.txt"
    path.write_text(text, encoding="utf-8")
    return path


def corpus_text() -> str:
    """The text of bench/corpus.py, read without importing the project (another venv runs this)."""
    import pydoc_data.topics as topics

    return "\n\n".join(topics.topics[key] for key in sorted(topics.topics))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--gguf", type=Path, default=DEFAULT_GGUF)
    parser.add_argument("--tokenizer-dir", type=Path, default=Path(".bench/gemma3-tokenizer"))
    args = parser.parse_args()
    if not args.gguf.exists():
        sys.exit(f"{args.gguf} is missing: run `make model` first")
    build_tokenizer(args.gguf, args.tokenizer_dir)
    from tokenizers import Tokenizer

    check = Tokenizer.from_file(str(args.tokenizer_dir / "tokenizer.json"))
    sample = check.encode("Hello world, <start_of_turn>user", add_special_tokens=False)
    print(f"tokenizer: {args.tokenizer_dir / 'tokenizer.json'} ({sample.tokens})")
    print(f"corpus:    {seed_corpus(corpus_text())}")
    print(f"llama-benchy arguments: --tokenizer {args.tokenizer_dir} --book-url {BOOK_URL}")


if __name__ == "__main__":
    main()
