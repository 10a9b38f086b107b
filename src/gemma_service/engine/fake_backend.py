"""A deterministic stand-in for the llama.cpp backend, for fast API and engine tests.

Its vocabulary is the 256 byte values plus four control tokens, so multi-byte UTF-8 characters
are split across tokens just as with a real BPE vocabulary. Each sequence "answers" with a
reply derived from its prompt and seed, then ends its turn. With ``kv_capacity`` its KV cache
fills up like a real one; a grammar without a ``root`` rule is refused as llama.cpp refuses an
unparsable one (grammars are not applied otherwise). With ``modalities`` it takes media: each
item is 4 embedding positions between a start and an end marker, and its content changes the
reply as a real picture would.
"""

from __future__ import annotations

import time
import zlib
from collections import defaultdict

from gemma_service.engine.backend import KvCacheFullError, SampledToken
from gemma_service.engine.media import MediaLayout, placeholder_token
from gemma_service.engine.protocol import (
    GenerationRequest,
    Modality,
    ModelInfo,
    SamplingParams,
    TokenLogprob,
    TopLogprob,
)
from gemma_service.engine.scheduler import StepPlan
from gemma_service.errors import InvalidGrammarError, InvalidRequestError

BOS, EOS, START_OF_TURN, END_OF_TURN = 256, 257, 258, 259
SPECIALS = {
    "<bos>": BOS,
    "<eos>": EOS,
    "<start_of_turn>": START_OF_TURN,
    "<end_of_turn>": END_OF_TURN,
}
N_VOCAB = 260
MEDIA_TOKENS = 4  # embedding positions of one fake media item


def fake_reply(prompt_tokens: list[int], seed: int | None) -> str:
    """What the fake model says to a prompt: stable for a prompt and seed."""
    h = zlib.crc32(bytes(t % 256 for t in prompt_tokens)) ^ (seed or 0)
    return f"Hello from gemma-fake #{h % 1000}: héllo wörld 🙂 ✓ fin."


class FakeBackend:
    """Implements ``ModelBackend`` without a model."""

    def __init__(
        self,
        *,
        n_ctx: int = 4096,
        step_delay_s: float = 0.0,
        kv_capacity: int | None = None,
        modalities: tuple[Modality, ...] = ("text",),
    ) -> None:
        self.info = ModelInfo(
            model_id="gemma-fake",
            path="/dev/null",
            n_ctx=n_ctx,
            n_ctx_train=n_ctx,
            n_vocab=N_VOCAB,
            chat_template=None,
            bos_token="<bos>",
            eos_token="<eos>",
            add_bos=True,
            size_bytes=0,
            n_params=0,
            created=0,
            modalities=modalities,
        )
        self.device = "cpu"
        self.gpu_layers = 0
        self.gpu_available = False
        self.step_delay_s = step_delay_s
        self.kv_capacity = kv_capacity
        self.reloads: list[int] = []
        self.steps = 0
        self.batch_sizes: list[int] = []
        self._params: dict[str, SamplingParams] = {}
        self._prompt_len: dict[str, int] = {}
        self._kv: dict[int, list[int]] = defaultdict(list)
        self._media: dict[str, list[int]] = {}  # request id -> placeholder id of each item
        self.media_decoded = 0

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        out = [BOS] if add_special else []
        rest = text
        while rest:
            if parse_special:
                hit = next((s for s in SPECIALS if rest.startswith(s)), None)
                if hit is not None:
                    out.append(SPECIALS[hit])
                    rest = rest[len(hit) :]
                    continue
            out.extend(rest[0].encode())
            rest = rest[1:]
        return out

    def token_bytes(self, token: int) -> bytes:
        return bytes([token]) if token < 256 else b""

    def is_end_of_generation(self, token: int) -> bool:
        return token in (EOS, END_OF_TURN)

    def add_sampler(self, request_id: str, params: SamplingParams) -> None:
        if params.grammar is not None and not _defines_root(params.grammar):
            raise InvalidGrammarError("the grammar could not be parsed: it has no root rule")
        self._params[request_id] = params

    def remove_sampler(self, request_id: str) -> None:
        self._params.pop(request_id, None)
        self._prompt_len.pop(request_id, None)

    def layout_media(self, request: GenerationRequest) -> list[MediaLayout]:
        for item in request.media:
            if item.kind not in self.info.modalities:
                raise InvalidRequestError(
                    f"this model cannot take {item.kind}", param=item.param,
                    code="unsupported_content",
                )  # fmt: skip
        self._media[request.request_id] = [placeholder_token(m.content_hash) for m in request.media]
        return [MediaLayout([START_OF_TURN], MEDIA_TOKENS, [END_OF_TURN]) for _ in request.media]

    def release_media(self, request_id: str) -> None:
        self._media.pop(request_id, None)

    def execute(self, plan: StepPlan, want_logprobs: dict[str, int]) -> dict[str, SampledToken]:
        self._apply_memory_ops(plan)
        for media in plan.media:
            kv = self._kv[media.slot]
            del kv[media.start_pos :]
            kv.extend([self._media[media.request_id][media.index]] * media.n_tokens)
            self.media_decoded += 1
        needed = sum(len(v) for v in self._kv.values()) + plan.n_tokens
        if self.kv_capacity is not None and needed > self.kv_capacity:
            raise KvCacheFullError("fake KV cache full")
        if self.step_delay_s:
            time.sleep(self.step_delay_s)
        self.steps += 1
        self.batch_sizes.append(len(plan.chunks))
        out: dict[str, SampledToken] = {}
        for chunk in plan.chunks:
            kv = self._kv[chunk.slot]
            del kv[chunk.start_pos :]
            kv.extend(chunk.tokens)
            if chunk.sample:
                token = self._next_token(chunk.request_id, kv)
                lp = (
                    self._logprob(token, want_logprobs[chunk.request_id])
                    if chunk.request_id in want_logprobs
                    else None
                )
                out[chunk.request_id] = SampledToken(token, lp)
        return out

    def _apply_memory_ops(self, plan: StepPlan) -> None:
        for slot in plan.clear_slots:
            self._kv[slot] = []
        for slot, keep in plan.trims:
            del self._kv[slot][keep:]
        for cp in plan.copies:
            self._kv[cp.dst] = list(self._kv[cp.src][: cp.n_tokens])

    def _next_token(self, request_id: str, seen: list[int]) -> int:
        params = self._params[request_id]
        prompt_len = self._prompt_len.setdefault(request_id, len(seen))
        reply = fake_reply(seen[:prompt_len], params.seed).encode()
        produced = len(seen) - prompt_len
        return reply[produced] if produced < len(reply) else END_OF_TURN

    def _logprob(self, token: int, top_n: int) -> TokenLogprob:
        piece = self.token_bytes(token)
        tops = [TopLogprob(piece.decode("utf-8", "replace"), -0.1, list(piece))]
        tops += [TopLogprob("?", -3.0 - i, [63]) for i in range(max(0, top_n - 1))]
        return TokenLogprob(piece.decode("utf-8", "replace"), -0.1, list(piece), tops[:top_n])

    def reload(self, gpu_layers: int) -> None:
        self.reloads.append(gpu_layers)
        self.gpu_layers = gpu_layers
        self.device = "cuda" if gpu_layers else "cpu"
        self._kv.clear()

    def close(self) -> None:
        self._params.clear()


def _defines_root(grammar: str) -> bool:
    return any(line.split("::=")[0].strip() == "root" for line in grammar.splitlines())
