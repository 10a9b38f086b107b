"""llama.cpp's mtmd projector (the mmproj beside the model): part of the llama backend.

It lays each media item of a request out in the prompt (``mtmd_tokenize``: the model's marker
tokens around the item's embedding positions), and when the scheduler feeds an item's span it
encodes the item (``mtmd_encode_chunk``) and decodes the embeddings into that sequence's KV as an
embeddings batch, with bidirectional attention where the projector asks for it. Embeddings
are kept by content hash (least recently used out), so a picture asked about again is not
encoded again even where the prefix cache cannot help. Called from the engine's worker thread.
"""

from __future__ import annotations

import ctypes
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp as lc
import numpy as np
from llama_cpp import mtmd_cpp as mtmd

from gemma_service.engine.backend import KvCacheFullError
from gemma_service.engine.media import MediaLayout
from gemma_service.engine.protocol import GenerationRequest, MediaInput, Modality
from gemma_service.engine.scheduler import MediaChunk
from gemma_service.errors import InvalidRequestError, ModelFileError, PayloadTooLargeError

log = logging.getLogger(__name__)

_MEDIA_TYPES = (mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE, mtmd.MTMD_INPUT_CHUNK_TYPE_AUDIO)


@dataclass(slots=True)
class _Item:
    """One laid-out media item of a request: its mtmd chunks (owned) and media sub-chunks."""

    chunks: Any
    media: list[Any]
    n_tokens: int
    content_hash: str

    def free(self) -> None:
        mtmd.mtmd_input_chunks_free(self.chunks)


@dataclass
class _EmbeddingCache:
    """Encoded media by content hash, least recently used out past ``max_bytes``."""

    max_bytes: int
    _entries: OrderedDict[str, np.ndarray[Any, np.dtype[np.float32]]] = field(
        default_factory=OrderedDict
    )
    _bytes: int = 0

    def get(self, key: str) -> np.ndarray[Any, np.dtype[np.float32]] | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: str, value: np.ndarray[Any, np.dtype[np.float32]]) -> None:
        if value.nbytes > self.max_bytes:
            return
        self._entries[key] = value
        self._bytes += value.nbytes
        while self._bytes > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self._bytes -= old.nbytes


class Projector:
    """An mmproj loaded against a text model; media state per request id."""

    def __init__(
        self, path: Path, model: Any, *, threads: int, use_gpu: bool, batch_size: int,
        cache_bytes: int,
    ) -> None:  # fmt: skip
        self.path = path
        self._threads = threads
        self._batch_size = batch_size
        self._ctx: Any = None
        self._items: dict[str, list[_Item]] = {}
        self._embeddings = _EmbeddingCache(cache_bytes)
        self.encoded = 0  # items encoded (not found among the kept embeddings)
        self._marker = mtmd.mtmd_default_marker()
        self.reopen(model, use_gpu=use_gpu)

    def reopen(self, model: Any, *, use_gpu: bool) -> None:
        """Load the projector against ``model`` (again, after a reload: laid-out media and the
        kept embeddings stay valid)."""
        self.close_context()
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.n_threads = self._threads
        params.print_timings = False
        params.warmup = False
        ctx = mtmd.mtmd_init_from_file(str(self.path).encode(), model, params)
        if not ctx:
            raise ModelFileError(f"llama.cpp could not load the projector (mmproj): {self.path}")
        if mtmd.mtmd_decode_use_mrope(ctx):
            mtmd.mtmd_free(ctx)
            raise ModelFileError(f"projectors with M-RoPE positions are not supported: {self.path}")
        self._ctx = ctx
        self._n_embd = int(lc.llama_model_n_embd_inp(model))
        self.sample_rate = int(mtmd.mtmd_get_audio_sample_rate(ctx))
        self.modalities: tuple[Modality, ...] = ("text",)
        if mtmd.mtmd_support_vision(ctx):
            self.modalities += ("image",)
        if mtmd.mtmd_support_audio(ctx):
            self.modalities += ("audio",)

    def close_context(self) -> None:
        """Free the mtmd context (before its text model is freed)."""
        if self._ctx:
            mtmd.mtmd_free(self._ctx)
            self._ctx = None

    def close(self) -> None:
        for rid in list(self._items):
            self.release(rid)
        self.close_context()

    # --- at admission ---------------------------------------------------------------------
    def layout(self, request: GenerationRequest) -> list[MediaLayout]:
        """Lay out every media item of ``request`` (kept until ``release``), or say why not."""
        items: list[_Item] = []
        try:
            for media in request.media:
                items.append(self._tokenize(media))
        except BaseException:
            for item in items:
                item.free()
            raise
        self.release(request.request_id)
        self._items[request.request_id] = items
        return [self._layout_of(item) for item in items]

    def release(self, request_id: str) -> None:
        for item in self._items.pop(request_id, []):
            item.free()

    def _tokenize(self, media: MediaInput) -> _Item:
        bitmap = self._bitmap(media)
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            text = mtmd.mtmd_input_text(
                text=self._marker, text_len=len(self._marker), add_special=False,
                parse_special=True,
            )  # fmt: skip
            bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
            rc = mtmd.mtmd_tokenize(self._ctx, chunks, ctypes.byref(text), bitmaps, 1)
        finally:
            mtmd.mtmd_bitmap_free(bitmap)
        if rc != 0:
            mtmd.mtmd_input_chunks_free(chunks)
            raise InvalidRequestError(
                f"the {media.kind} could not be read by the model's projector (code {rc})",
                param=media.param,
                code=f"invalid_{media.kind}",
            )
        item = _Item(chunks, [], 0, media.content_hash)
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            if mtmd.mtmd_input_chunk_get_type(chunk) in _MEDIA_TYPES:
                item.media.append(chunk)
                item.n_tokens += int(mtmd.mtmd_input_chunk_get_n_tokens(chunk))
        self._check_fits(item, media)
        return item

    def _check_fits(self, item: _Item, media: MediaInput) -> None:
        for chunk in item.media:
            n = int(mtmd.mtmd_input_chunk_get_n_tokens(chunk))
            if mtmd.mtmd_input_chunk_get_n_pos(chunk) != n:
                item.free()
                raise InvalidRequestError("this projector's media positions are not supported")
            if n > self._batch_size and mtmd.mtmd_decode_use_non_causal(self._ctx, chunk):
                item.free()
                raise InvalidRequestError(
                    f"this {media.kind} takes {n} tokens, more than one batch holds "
                    f"({self._batch_size}); start the server with a larger --batch-size",
                    param=media.param,
                    code=f"{media.kind}_too_large",
                )

    def _layout_of(self, item: _Item) -> MediaLayout:
        """Text chunks before the first media chunk, and after the last, are marker tokens."""
        before: list[int] = []
        after: list[int] = []
        seen_media = 0
        for i in range(mtmd.mtmd_input_chunks_size(item.chunks)):
            chunk = mtmd.mtmd_input_chunks_get(item.chunks, i)
            if mtmd.mtmd_input_chunk_get_type(chunk) in _MEDIA_TYPES:
                seen_media += 1
                continue
            tokens = _text_tokens(chunk)
            if seen_media == 0:
                before += tokens
            elif seen_media == len(item.media):
                after += tokens
            elif tokens:
                raise InvalidRequestError("this projector splits media with text; not supported")
        return MediaLayout(before, item.n_tokens, after)

    def _bitmap(self, media: MediaInput) -> Any:
        if media.kind == "image":
            if media.width * media.height * 3 != len(media.data):
                raise InvalidRequestError("image pixels do not match its size", param=media.param)
            pixels = (ctypes.c_uint8 * len(media.data)).from_buffer_copy(media.data)
            bitmap = mtmd.mtmd_bitmap_init(media.width, media.height, pixels)
        else:
            data = (ctypes.c_uint8 * len(media.data)).from_buffer_copy(media.data)
            bitmap = mtmd.mtmd_helper_bitmap_init_from_buf(self._ctx, data, len(media.data), False)
        if not bitmap:
            raise InvalidRequestError(
                f"the {media.kind} could not be decoded (corrupt or unsupported format)",
                param=media.param,
                code=f"invalid_{media.kind}",
            )
        if media.kind == "audio":
            self._check_audio(bitmap, media)
        return bitmap

    def _check_audio(self, bitmap: Any, media: MediaInput) -> None:
        if not mtmd.mtmd_bitmap_is_audio(bitmap):
            mtmd.mtmd_bitmap_free(bitmap)
            raise InvalidRequestError(
                "the audio data is not audio", param=media.param, code="invalid_audio"
            )
        seconds = mtmd.mtmd_bitmap_get_n_bytes(bitmap) / 4 / max(1, self.sample_rate)
        if media.max_seconds is not None and seconds > media.max_seconds:
            mtmd.mtmd_bitmap_free(bitmap)
            raise PayloadTooLargeError(
                f"the audio is {seconds:.1f} s long; at most {media.max_seconds:g} s is taken",
                param=media.param,
                code="audio_too_long",
            )

    # --- while stepping -------------------------------------------------------------------
    def decode(self, ctx: Any, chunks: list[MediaChunk]) -> None:
        """Decode each media chunk's embeddings into its slot's KV (encoding it if needed)."""
        for mc in chunks:
            item = self._items[mc.request_id][mc.index]
            embeddings = self._embeddings.get(item.content_hash)
            if embeddings is None:
                embeddings = self._encode(item)
                self._embeddings.put(item.content_hash, embeddings)
            pos = mc.start_pos
            offset = 0
            for chunk in item.media:
                n = int(mtmd.mtmd_input_chunk_get_n_tokens(chunk))
                non_causal = bool(mtmd.mtmd_decode_use_non_causal(self._ctx, chunk))
                self._decode_rows(ctx, embeddings[offset : offset + n], pos, mc.slot, non_causal)
                pos += n
                offset += n

    def _encode(self, item: _Item) -> np.ndarray[Any, np.dtype[np.float32]]:
        parts = []
        for chunk in item.media:
            rc = mtmd.mtmd_encode_chunk(self._ctx, chunk)
            if rc != 0:
                raise RuntimeError(f"mtmd_encode_chunk failed with status {rc}")
            n = int(mtmd.mtmd_input_chunk_get_n_tokens(chunk))
            out = mtmd.mtmd_get_output_embd(self._ctx)
            parts.append(np.ctypeslib.as_array(out, shape=(n, self._n_embd)).copy())
        self.encoded += 1
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _decode_rows(
        self, ctx: Any, rows: np.ndarray[Any, np.dtype[np.float32]], pos: int, slot: int,
        non_causal: bool,
    ) -> None:  # fmt: skip
        # A causal span may be cut into batches; a bidirectional one was checked to fit one.
        step = len(rows) if non_causal else self._batch_size
        if non_causal:
            lc.llama_set_causal_attn(ctx, False)
        try:
            for start in range(0, len(rows), step):
                part = np.ascontiguousarray(rows[start : start + step], dtype=np.float32)
                _decode_embeddings(ctx, part, pos + start, slot)
        finally:
            if non_causal:
                lc.llama_set_causal_attn(ctx, True)


def _decode_embeddings(
    ctx: Any, rows: np.ndarray[Any, np.dtype[np.float32]], pos: int, slot: int
) -> None:
    n, n_embd = rows.shape
    batch = lc.llama_batch_init(n, n_embd, 1)
    try:
        ctypes.memmove(batch.embd, rows.ctypes.data, rows.nbytes)
        batch.n_tokens = n
        for j in range(n):
            batch.pos[j] = pos + j
            batch.n_seq_id[j] = 1
            batch.seq_id[j][0] = slot
            batch.logits[j] = 0
        rc = lc.llama_decode(ctx, batch)
    finally:
        lc.llama_batch_free(batch)
    if rc == 1:
        raise KvCacheFullError("no room in the KV cache for this media")
    if rc != 0:
        raise RuntimeError(f"llama_decode (media embeddings) failed with status {rc}")


def _text_tokens(chunk: Any) -> list[int]:
    n = ctypes.c_size_t(0)
    pointer = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
    return [int(pointer[i]) for i in range(n.value)]
