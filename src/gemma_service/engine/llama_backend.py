"""The llama.cpp backend: with ``gemma_service.llama``, the only code that imports ``llama_cpp``.

It owns the model, one context with a unified KV cache shared by all sequences (so a prefix is
copied between sequences by reference, not recomputed), one reusable ``llama_batch`` and the
batched sampler that draws every sequence's token from llama.cpp's logits buffer in place
(``batch_sampler``; a request's grammar is checked last, ``llama_grammar``).
Every method is called from the engine's worker thread, except ``tokenize``/``token_bytes``,
which use a separate vocab-only model and are safe from any thread.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp as lc
import numpy as np

from gemma_service.engine.backend import KvCacheFullError, SampledToken
from gemma_service.engine.llama_projector import Projector
from gemma_service.engine.media import MediaLayout
from gemma_service.engine.protocol import GenerationRequest, ModelInfo, SamplingParams
from gemma_service.engine.sampling.batch_sampler import BatchSampler
from gemma_service.engine.sampling.llama_grammar import TOKEN_DATA as _TOKEN_DATA
from gemma_service.engine.sampling.llama_grammar import CandidateBuffer, LlamaGrammar
from gemma_service.engine.sampling.logprobs import token_logprobs
from gemma_service.engine.scheduler import StepPlan
from gemma_service.errors import InvalidRequestError, ModelFileError
from gemma_service.llama.kernel_check import RepackMode, default_kernel_cache_dir, start_checked
from gemma_service.llama.runtime import model_params
from gemma_service.llama.vocabulary import meta_text, token_piece, tokenize
from gemma_service.model_files import check_model_file

log = logging.getLogger(__name__)

_FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}
_KV_TYPES = {"f16": lc.GGML_TYPE_F16, "q8_0": lc.GGML_TYPE_Q8_0, "q4_0": lc.GGML_TYPE_Q4_0}
_init_lock = threading.Lock()
_initialized = False


@dataclass(frozen=True, slots=True)
class LlamaConfig:
    """How to load the model and size its context."""

    model_path: Path
    model_id: str
    n_ctx: int
    batch_size: int
    n_seq_max: int
    threads: int
    gpu_layers: int
    flash_attn: str = "auto"
    kv_cache_type: str = "f16"
    # KV layout: one stream per sequence (attention over its own cells only; n_ctx is split
    # evenly) or one pool shared by all. swa_full keeps every position in the sliding-window
    # layers too, so a cached prefix can be cut anywhere (measured: no slower at 2k tokens).
    kv_unified: bool = False
    swa_full: bool = True
    # The kernel self-check (kernel_check.py): auto|on|off, a CPU variant name, its cache.
    cpu_repack: RepackMode = "auto"
    cpu_variant: str | None = None
    kernel_cache_dir: Path = field(default_factory=default_kernel_cache_dir)
    # The projector (mmproj GGUF) for images and audio; None: text only.
    mmproj_path: Path | None = None
    # Encoded media kept by content hash, so a repeated picture is not encoded again.
    media_cache_bytes: int = 64 << 20


@lc.llama_log_callback  # type: ignore[untyped-decorator]
def _forward_llama_log(level: int, text: bytes, _user: Any) -> None:
    # llama.cpp logs a lot at load time; keep its warnings and errors, drop the chatter.
    if level in (3, 4) and text:  # GGML_LOG_LEVEL_WARN, GGML_LOG_LEVEL_ERROR
        log.log(
            logging.WARNING if level == 3 else logging.ERROR,
            "llama.cpp: %s",
            text.decode("utf-8", "replace").rstrip(),
        )


def _start_llama(config: LlamaConfig) -> None:
    """Route llama.cpp's log to ours and start it with kernels proven on this host (once)."""
    global _initialized
    with _init_lock:
        if not _initialized:
            lc.llama_log_set(_forward_llama_log, ctypes.c_void_p(0))
            _initialized = True
    start_checked(
        config.model_path,
        config.kernel_cache_dir,
        repack=config.cpu_repack,
        variant=config.cpu_variant,
    )


class LlamaBackend:
    """A llama.cpp model + context executing scheduler plans."""

    def __init__(self, config: LlamaConfig) -> None:
        check_model_file(config.model_path)
        _start_llama(config)
        self.config = config
        self._vocab_model = self._load_model(0, vocab_only=True)
        self._vocab = lc.llama_model_get_vocab(self._vocab_model)
        self._pieces: dict[int, bytes] = {}
        self._sampling = BatchSampler(
            int(lc.llama_vocab_n_tokens(self._vocab)),
            int(lc.llama_vocab_eos(self._vocab)),
            threads=config.threads,
        )
        self._model: Any = None
        self._ctx: Any = None
        self._batch: Any = None
        self._projector: Projector | None = None
        self.gpu_layers = 0
        self.device = "cpu"
        self.gpu_available = bool(lc.llama_supports_gpu_offload())
        self._open(config.gpu_layers)
        self.info = self._read_info()

    # --- loading --------------------------------------------------------------------------
    def _load_model(self, gpu_layers: int, *, vocab_only: bool = False) -> Any:
        params = model_params(gpu_layers, vocab_only=vocab_only)
        model = lc.llama_model_load_from_file(str(self.config.model_path).encode(), params)
        if not model:
            raise ModelFileError(
                f"llama.cpp could not load the model file: {self.config.model_path}"
            )
        return model

    def _open(self, gpu_layers: int) -> None:
        started = time.perf_counter()
        offload = gpu_layers if lc.llama_supports_gpu_offload() else 0
        self._model = self._load_model(offload)
        cfg = self.config
        n_ctx_train = lc.llama_model_n_ctx_train(self._model)
        # Per-sequence streams share n_ctx evenly; none needs more than the trained context.
        n_ctx = min(cfg.n_ctx, n_ctx_train * (1 if cfg.kv_unified else cfg.n_seq_max))
        params = lc.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = cfg.batch_size
        params.n_seq_max = cfg.n_seq_max
        params.n_threads = params.n_threads_batch = cfg.threads
        params.flash_attn_type = _FLASH_ATTN[cfg.flash_attn]
        params.type_k = params.type_v = _KV_TYPES[cfg.kv_cache_type]
        # Gemma 3 uses sliding-window attention: copying a prefix between sequences only
        # works with the full-size SWA cache. A unified cache lets sequences share cells.
        params.swa_full = cfg.swa_full
        params.kv_unified = cfg.kv_unified
        params.no_perf = True
        self._ctx = lc.llama_init_from_model(self._model, params)
        if not self._ctx:
            lc.llama_model_free(self._model)
            raise ModelFileError(
                f"llama.cpp could not create a context (n_ctx={n_ctx}) for {cfg.model_path}"
            )
        self._batch = lc.llama_batch_init(cfg.batch_size, 0, 1)
        n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(self._model))
        self._candidates = np.zeros(n_vocab, dtype=_TOKEN_DATA)  # reused by grammar sampling
        self._token_ids = np.arange(n_vocab, dtype=np.int32)
        self.gpu_layers = offload
        self.device = "cuda" if offload != 0 else "cpu"
        if cfg.mmproj_path is not None:
            self._open_projector(cfg.mmproj_path, use_gpu=offload != 0)
        log.info(
            "model loaded on %s (%d GPU layers, n_ctx=%d) in %.2fs",
            self.device,
            offload,
            n_ctx,
            time.perf_counter() - started,
        )

    def _open_projector(self, path: Path, *, use_gpu: bool) -> None:
        if self._projector is not None:  # reloaded: laid-out media stays valid
            self._projector.reopen(self._model, use_gpu=use_gpu)
            return
        check_model_file(path)
        cfg = self.config
        self._projector = Projector(
            path, self._model, threads=cfg.threads, use_gpu=use_gpu, batch_size=cfg.batch_size,
            cache_bytes=cfg.media_cache_bytes,
        )  # fmt: skip

    def _read_info(self) -> ModelInfo:
        m = self._model
        vocab = lc.llama_model_get_vocab(m)
        template = lc.llama_model_chat_template(m, None)
        path = self.config.model_path
        return ModelInfo(
            model_id=self.config.model_id,
            path=str(path),
            n_ctx=int(lc.llama_n_ctx_seq(self._ctx)),
            n_ctx_train=int(lc.llama_model_n_ctx_train(m)),
            n_vocab=int(lc.llama_vocab_n_tokens(vocab)),
            chat_template=template.decode("utf-8", "replace") if template else None,
            bos_token=self.token_bytes(lc.llama_vocab_bos(vocab), special=True).decode(),
            eos_token=self.token_bytes(lc.llama_vocab_eos(vocab), special=True).decode(),
            add_bos=bool(lc.llama_vocab_get_add_bos(vocab)),
            size_bytes=int(lc.llama_model_size(m)),
            n_params=int(lc.llama_model_n_params(m)),
            created=int(os.path.getmtime(path)),
            kv_cells=int(lc.llama_n_ctx(self._ctx)),
            modalities=self._projector.modalities if self._projector else ("text",),
            mmproj_path=str(self._projector.path) if self._projector else None,
            architecture=meta_text(m, b"general.architecture"),
        )

    def reload(self, gpu_layers: int) -> None:
        self._close_context()
        self._open(gpu_layers)

    def _close_context(self) -> None:
        # The samplers outlive the context: a request carries on after a reload with its
        # generator, penalty window and grammar where they were.
        if self._batch is not None:
            lc.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            lc.llama_free(self._ctx)
            self._ctx = None
        if self._projector is not None:
            self._projector.close_context()
        if self._model:
            lc.llama_model_free(self._model)
            self._model = None

    def close(self) -> None:
        self._sampling.close()
        self._close_context()
        if self._projector is not None:
            self._projector.close()
            self._projector = None
        if self._vocab_model:
            lc.llama_model_free(self._vocab_model)
            self._vocab_model = None

    # --- media --------------------------------------------------------------------------
    def layout_media(self, request: GenerationRequest) -> list[MediaLayout]:
        if self._projector is None:
            kinds = {m.kind for m in request.media}
            raise InvalidRequestError(
                f"this model takes text only; it cannot take {' or '.join(sorted(kinds))}",
                param=request.media[0].param if request.media else None,
                code="unsupported_content",
            )
        return self._projector.layout(request)

    def release_media(self, request_id: str) -> None:
        if self._projector is not None:
            self._projector.release(request_id)

    # --- vocabulary -----------------------------------------------------------------------
    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        try:
            return tokenize(self._vocab, text, add_special=add_special, parse_special=parse_special)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from exc

    def token_bytes(self, token: int, *, special: bool = False) -> bytes:
        if not special and token in self._pieces:
            return self._pieces[token]
        piece = token_piece(self._vocab, token, special=special)
        if not special:
            self._pieces[token] = piece
        return piece

    def is_end_of_generation(self, token: int) -> bool:
        return bool(lc.llama_vocab_is_eog(self._vocab, token))

    # --- sampling -------------------------------------------------------------------------
    def add_sampler(self, request_id: str, params: SamplingParams) -> None:
        grammar = None
        if params.grammar:
            buffer = CandidateBuffer(self._candidates, self._token_ids)
            grammar = LlamaGrammar(self._vocab, params.grammar, buffer)
        self._sampling.add(request_id, params, grammar)

    def remove_sampler(self, request_id: str) -> None:
        self._sampling.remove(request_id)

    def _sample_step(self, sample_at: dict[str, int]) -> tuple[Any, dict[str, int], dict[str, int]]:
        """Every sampled row's token: (the logits of the step's outputs as one array, the row
        of each request, its token)."""
        logits, rows = self._output_logits(sample_at)
        return logits, rows, self._sampling.sample(logits, rows, self.is_end_of_generation)

    def _output_logits(
        self, sample_at: dict[str, int]
    ) -> tuple[np.ndarray[Any, np.dtype[np.float32]], dict[str, int]]:
        """llama.cpp's logits buffer as an (outputs, vocabulary) array, no copy, valid until
        the next decode, and the row of each request's batch position in it."""
        n_vocab = self._sampling.n_vocab
        base = lc.llama_get_logits(self._ctx)
        start = _address(base)
        row_bytes = 4 * n_vocab
        rows = {
            rid: (_address(lc.llama_get_logits_ith(self._ctx, idx)) - start) // row_bytes
            for rid, idx in sample_at.items()
        }
        n_rows = max(rows.values(), default=-1) + 1
        return np.ctypeslib.as_array(base, shape=(n_rows, n_vocab)), rows

    # --- stepping -------------------------------------------------------------------------
    def execute(self, plan: StepPlan, want_logprobs: dict[str, int]) -> dict[str, SampledToken]:
        self._apply_memory_ops(plan)
        if plan.media and self._projector is not None:
            self._projector.decode(self._ctx, plan.media)
        if not plan.chunks:
            return {}
        sample_at = self._fill_batch(plan)
        rc = lc.llama_decode(self._ctx, self._batch)
        if rc == 1:
            raise KvCacheFullError("no room in the KV cache for this step")
        if rc != 0:
            raise RuntimeError(f"llama_decode failed with status {rc}")
        if not sample_at:
            return {}
        logits, rows, tokens = self._sample_step(sample_at)
        out: dict[str, SampledToken] = {}
        for rid, token in tokens.items():
            lp = None
            if rid in want_logprobs:
                lp = token_logprobs(logits[rows[rid]], token, want_logprobs[rid], self.token_bytes)
            out[rid] = SampledToken(token, lp)
        return out

    def _apply_memory_ops(self, plan: StepPlan) -> None:
        mem = lc.llama_get_memory(self._ctx)
        for slot in plan.clear_slots:
            lc.llama_memory_seq_rm(mem, slot, -1, -1)
        for slot, keep in plan.trims:
            if not lc.llama_memory_seq_rm(mem, slot, keep, -1):
                raise RuntimeError(f"could not trim KV of slot {slot} to {keep} tokens")
        for cp in plan.copies:
            if self.config.kv_unified:  # cells are shared by reference
                lc.llama_memory_seq_cp(mem, cp.src, cp.dst, 0, cp.n_tokens)
                continue
            # Across KV streams llama.cpp copies a whole stream (at the next decode); the copy
            # then keeps just the shared prefix.
            lc.llama_memory_seq_cp(mem, cp.src, cp.dst, -1, -1)
            lc.llama_memory_seq_rm(mem, cp.dst, cp.n_tokens, -1)

    def _fill_batch(self, plan: StepPlan) -> dict[str, int]:
        b = self._batch
        i = 0
        sample_at: dict[str, int] = {}
        # By slot: with one KV stream per sequence, llama.cpp batches a run of consecutive
        # sequence ids in one pass and splits the batch wherever the run breaks.
        for chunk in sorted(plan.chunks, key=lambda c: c.slot):
            last = len(chunk.tokens) - 1
            for j, tok in enumerate(chunk.tokens):
                b.token[i] = tok
                b.pos[i] = chunk.start_pos + j
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = chunk.slot
                b.logits[i] = 1 if (chunk.sample and j == last) else 0
                i += 1
            if chunk.sample:
                sample_at[chunk.request_id] = i - 1
        b.n_tokens = i
        return sample_at


def _address(pointer: Any) -> int:
    return ctypes.cast(pointer, ctypes.c_void_p).value or 0
