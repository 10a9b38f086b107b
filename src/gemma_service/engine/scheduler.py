"""Continuous-batching scheduler: pure Python, no I/O, no llama.cpp.

Each step, ``schedule()`` decides which running sequences decode one token and which prompt
chunks prefill, under a token budget (``batch_size``) and a sequence cap (``parallel``); the
backend executes the plan; ``update()`` records what it sampled. Decodes go first so running
streams keep flowing while long prompts prefill in chunks. A media span (an image's or a
clip's embedding positions, engine/media.py) is fed whole, as the one media chunk of a step.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from enum import Enum

from gemma_service.engine.media import MediaSpan, next_span_start, snap_to_span_start, span_at
from gemma_service.engine.prefix_cache import PrefixCache, common_prefix_len

# A request whose prompt shares at least this many not-yet-computed tokens with one that is
# prefilling waits a step for it, then copies its KV instead of computing the same tokens twice.
SHARE_WAIT_MIN_TOKENS = 32
# A cached prefix shorter than this is computed again rather than reused: it saves next to
# nothing, and taking over the slot that holds it (or copying a whole KV stream for it) costs
# more than those few tokens.
MIN_REUSE_TOKENS = 8


class SeqStatus(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False)
class Sequence:
    """One request's progress through the engine."""

    request_id: str
    prompt: list[int]
    max_tokens: int
    priority: int = 0
    arrival: int = 0
    output: list[int] = field(default_factory=list)
    slot: int | None = None
    n_computed: int = 0
    cached_tokens: int = 0
    status: SeqStatus = SeqStatus.WAITING
    arrived_at: float = 0.0  # the scheduler's clock when it was added
    ready_at: float | None = None  # when only its final prompt token was left (cohorts)
    media_spans: list[MediaSpan] = field(default_factory=list)

    @property
    def tokens(self) -> list[int]:
        return self.prompt + self.output

    @property
    def last_token(self) -> int:
        return self.output[-1] if self.output else self.prompt[-1]

    @property
    def prefilling(self) -> bool:
        return self.n_computed < len(self.prompt)

    def computed_tokens(self) -> list[int]:
        return self.tokens[: self.n_computed]


@dataclass(frozen=True, slots=True)
class Chunk:
    """Tokens of one sequence fed in this step, at positions ``start_pos``…"""

    request_id: str
    slot: int
    tokens: list[int]
    start_pos: int
    sample: bool


@dataclass(frozen=True, slots=True)
class MediaChunk:
    """Media item ``index`` of a request, decoded as embeddings at ``start_pos``…"""

    request_id: str
    slot: int
    index: int
    start_pos: int
    n_tokens: int


@dataclass(frozen=True, slots=True)
class KvCopy:
    """Copy positions [0, n_tokens) of ``src`` slot's KV into ``dst`` slot."""

    src: int
    dst: int
    n_tokens: int


@dataclass(slots=True)
class StepPlan:
    """What the backend does this step: memory operations first, then one batched decode."""

    clear_slots: list[int] = field(default_factory=list)
    trims: list[tuple[int, int]] = field(default_factory=list)  # (slot, keep first n tokens)
    copies: list[KvCopy] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    # Decoded before ``chunks`` (whose last positions are sampled); at most one per step.
    media: list[MediaChunk] = field(default_factory=list)

    @property
    def n_tokens(self) -> int:
        return sum(len(c.tokens) for c in self.chunks) + sum(m.n_tokens for m in self.media)

    @property
    def empty(self) -> bool:
        return not (self.chunks or self.media or self.clear_slots or self.trims or self.copies)


class Scheduler:
    """Owns waiting and running sequences, KV slots and the prefix cache.

    A slot is one KV sequence of the backend. With ``shared_slots`` (one KV stream per slot)
    there are ``parallel`` slots, and a finished sequence stays cached in its idle slot until a
    new one needs it; otherwise ``cache_slots`` extra slots hold the cached prefixes.
    """

    def __init__(
        self,
        *,
        batch_size: int,
        parallel: int,
        cache_slots: int,
        shared_slots: bool = False,
        cohort_window_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.batch_size = batch_size
        # >0: requests arriving within this many seconds start answering together (cohorts.py).
        self.cohort_window_s = cohort_window_s
        self._clock = clock
        self.parallel = parallel
        self.shared_slots = shared_slots
        self.n_slots = self.slot_count(parallel, cache_slots, shared_slots=shared_slots)
        self.prefix_cache = PrefixCache(min(cache_slots, self.n_slots))
        self._free_slots = list(range(self.n_slots))
        self._waiting: list[Sequence] = []
        self._running: list[Sequence] = []
        self._by_id: dict[str, Sequence] = {}
        self._arrivals = itertools.count()
        self._pending_clears: list[int] = []

    @staticmethod
    def slot_count(parallel: int, cache_slots: int, *, shared_slots: bool) -> int:
        """How many KV sequences the backend needs for these settings."""
        return parallel if shared_slots else parallel + cache_slots

    # --- intake ---------------------------------------------------------------------------
    def add(self, seq: Sequence, arrived_at: float | None = None) -> None:
        """Queue ``seq``; ``arrived_at`` (the scheduler's clock) is when the request was made,
        if before now: the engine thread takes requests in between steps."""
        seq.arrival = next(self._arrivals)
        seq.arrived_at = self._clock() if arrived_at is None else arrived_at
        seq.status = SeqStatus.WAITING
        self._waiting.append(seq)
        self._by_id[seq.request_id] = seq

    def get(self, request_id: str) -> Sequence | None:
        return self._by_id.get(request_id)

    @property
    def n_waiting(self) -> int:
        return len(self._waiting)

    @property
    def n_running(self) -> int:
        return len(self._running)

    def has_work(self) -> bool:
        return bool(self._waiting or self._running or self._pending_clears)

    def kv_tokens_estimate(self) -> int:
        """KV cells in use, counted per sequence: an upper bound, as copied prefixes share cells."""
        return sum(s.n_computed for s in self._running) + self.prefix_cache.total_tokens()

    def running(self) -> list[Sequence]:
        return list(self._running)

    # --- planning -------------------------------------------------------------------------
    def schedule(self, expected: Collection[float] = ()) -> StepPlan:
        """The next step. ``expected``: when requests were made that the engine has accepted
        but not handed over yet (they start at a coming step); cohorts wait for them too."""
        plan = StepPlan(clear_slots=self._pending_clears)
        self._pending_clears = []
        budget = self.batch_size
        for seq in self._running:
            if not seq.prefilling and seq.slot is not None:
                plan.chunks.append(
                    Chunk(seq.request_id, seq.slot, [seq.last_token], seq.n_computed, True)
                )
                budget -= 1
        for seq in sorted(self._running, key=_order):
            if budget <= 0:
                break
            if seq.prefilling:
                budget -= self._add_prefill_chunk(plan, seq, budget)
        budget = self._admit(plan, budget)
        if self.cohort_window_s > 0:
            self._hold_cohort_first_tokens(plan, expected)
        return plan

    def _hold_cohort_first_tokens(self, plan: StepPlan, expected: Collection[float]) -> None:
        """Requests that arrive together start answering together (``cohort_window_s``).

        With chunked prefill a burst is prefilled chunk after chunk and each request answers as
        soon as its own prompt is in: best for time to first token. A client that measures
        decode throughput across the burst (llama-benchy's tg: tokens after the first over the
        span from the first first token to the last token) then counts the burst's prefill as
        decode time. Here a prompt's final token (whose logits give the first answer token)
        waits while a request that arrived before that prompt was ready (plus the window)
        still has prompt to compute, so a burst's first tokens come out in one step, as
        llama-server's large batches make them. Decoding streams are never held; a request
        that arrives later does not extend the wait, and a waiting one counts only as far as
        free slots will admit it. A request the engine has accepted but not handed over yet
        (``expected``) has all its prompt to compute: without it, the first prompt of a
        burst answered alone, one step before the rest of the burst reached the scheduler.
        """
        now = self._clock()
        ends = {c.request_id: c.start_pos + len(c.tokens) for c in plan.chunks}
        room = max(0, self.parallel - len(self._running))
        candidates = [s for s in self._running if s.prefilling]
        candidates += sorted(self._waiting, key=_order)[:room]
        # Still computing its prompt after this step (a held final token does not count).
        busy = [s for s in candidates if len(s.prompt) - ends.get(s.request_id, s.n_computed) > 1]
        kept = []
        for chunk in plan.chunks:
            seq = self._by_id.get(chunk.request_id)
            if seq is not None and seq.prefilling and chunk.sample:
                seq.ready_at = now if seq.ready_at is None else seq.ready_at
                deadline = seq.ready_at + self.cohort_window_s
                if any(o is not seq and o.arrived_at <= deadline for o in busy) or any(
                    at <= deadline for at in expected
                ):
                    if len(chunk.tokens) > 1:
                        kept.append(
                            dataclasses.replace(chunk, tokens=chunk.tokens[:-1], sample=False)
                        )
                    continue  # only the final token was left: it waits for the cohort
            kept.append(chunk)
        plan.chunks = kept

    def _admit(self, plan: StepPlan, budget: int) -> int:
        for seq in sorted(self._waiting, key=_order):
            if budget <= 0 or len(self._running) >= self.parallel:
                break
            if self._should_wait_for_sharer(seq):
                continue
            if not self._place(plan, seq):
                break
            self._waiting.remove(seq)
            seq.status = SeqStatus.RUNNING
            self._running.append(seq)
            budget -= self._add_prefill_chunk(plan, seq, budget)
        return budget

    def _place(self, plan: StepPlan, seq: Sequence) -> bool:
        """Give ``seq`` a slot, starting from the longest computed prefix anywhere in the cache."""
        cached_slot, n = self.prefix_cache.best_match(seq.prompt)
        src = cached_slot
        for other in self._running:
            m = common_prefix_len(other.computed_tokens(), seq.prompt)
            if other.slot is not None and m > n:
                src, n = other.slot, m
        n = min(n, len(seq.prompt) - 1)  # the last prompt token is always computed: its logits
        n = snap_to_span_start(seq.media_spans, n)
        if n < MIN_REUSE_TOKENS:
            src, n = None, 0
        # A slot this step copies from keeps its content until the copy is done: it is neither
        # taken over (trimmed) nor evicted (cleared) by a later request of the same step.
        sources = {cp.src for cp in plan.copies}
        keep = sources | ({src} if src is not None else set())
        taking = src is not None and src == cached_slot and src not in sources
        if taking and src is not None and self._worth_taking(src, n, keep):
            self.prefix_cache.take(src)  # take the cached slot over, keeping its prefix
            plan.trims.append((src, n))
            seq.slot = src
        else:
            seq.slot = self._claim_slot(plan, keep=keep)
            if seq.slot is None:
                return False
            if src is not None and n > 0:
                plan.copies.append(KvCopy(src, seq.slot, n))
            else:
                n = 0
        seq.n_computed = seq.cached_tokens = max(n, 0)
        return True

    def _worth_taking(self, slot: int, n: int, keep: set[int]) -> bool:
        """Take a cached slot over (losing what it holds past ``n``) when most of it matches or
        no slot is free; else keep it (a picture asked about again, a long prefix) and start
        in a free slot, copying the shared part. With one KV stream per slot, a slot that
        would split the running slots where another would not is not taken either: the
        shared part is copied into the slot that keeps them together (see ``_claim_slot``)."""
        if self.shared_slots:
            running = self._running_slots()
            other = self._together_slot(keep, running)
            if other is not None and _new_runs(slot, running) > _new_runs(other, running):
                return False
        return not self._free_slots or 2 * n >= self.prefix_cache.cached_len(slot)

    def _add_prefill_chunk(self, plan: StepPlan, seq: Sequence, budget: int) -> int:
        assert seq.slot is not None
        start = seq.n_computed
        span = span_at(seq.media_spans, start)
        if span is not None:
            return self._add_media_chunk(plan, seq, span, budget)
        end = next_span_start(seq.media_spans, start, len(seq.prompt))
        n = min(budget, end - start)
        if n <= 0:
            return 0
        last = start + n == len(seq.prompt)
        plan.chunks.append(
            Chunk(seq.request_id, seq.slot, seq.prompt[start : start + n], start, last)
        )
        return n

    def _add_media_chunk(self, plan: StepPlan, seq: Sequence, span: MediaSpan, budget: int) -> int:
        """A whole span (its attention may be bidirectional), one per step: encoding it is the
        step's big cost. It is charged to the budget, which may go below zero: the span is
        decoded in a batch of its own (the backend checked it fits one)."""
        if plan.media:
            return 0
        assert seq.slot is not None
        plan.media.append(MediaChunk(seq.request_id, seq.slot, span.index, span.start, span.length))
        return span.length

    def _claim_slot(self, plan: StepPlan, keep: set[int]) -> int | None:
        """A slot for a new sequence, outside ``keep`` (slots this step still copies from).

        With one KV stream per slot, llama.cpp decodes a run of consecutive slots in one pass
        and splits the batch wherever the run breaks (each pass reads all the weights again):
        measured, 8 clients after a 16-client burst decoded at 30-59 instead of 85 tokens/s when
        the slots were scattered. So the slot that keeps the running slots together goes first,
        a free one before an idle cached one. Otherwise the lowest free slot, else the least
        recently used cached one."""
        if self.shared_slots:
            slot = self._together_slot(keep, self._running_slots())
        elif self._free_slots:
            slot = min(self._free_slots)
        else:
            slot = self.prefix_cache.lru_slot(exclude=keep)
        if slot is None:
            return None
        if slot in self._free_slots:
            self._free_slots.remove(slot)
        else:
            self.prefix_cache.take(slot)
            plan.clear_slots.append(slot)
        return slot

    def _running_slots(self) -> set[int]:
        return {seq.slot for seq in self._running if seq.slot is not None}

    def _together_slot(self, keep: set[int], running: set[int]) -> int | None:
        """The free or idle cached slot outside ``keep`` that adds the fewest breaks to the
        ``running`` slots; a free one before a cached one, then the lowest."""
        free = set(self._free_slots)
        cached = [slot for slot in self.prefix_cache.slots() if slot not in keep]
        candidates = [*free, *cached]
        if not candidates:
            return None
        return min(candidates, key=lambda slot: (_new_runs(slot, running), slot not in free, slot))

    def _should_wait_for_sharer(self, seq: Sequence) -> bool:
        for other in self._running:
            if not other.prefilling:
                continue
            shared = common_prefix_len(other.prompt, seq.prompt)
            if shared - other.n_computed >= SHARE_WAIT_MIN_TOKENS:
                return True
        return False

    # --- results --------------------------------------------------------------------------
    def update(self, plan: StepPlan, sampled: dict[str, int]) -> None:
        """Record a step: prefilled positions advance; sampled tokens are appended."""
        for media in plan.media:
            seq = self._by_id.get(media.request_id)
            if seq is not None and seq.status is SeqStatus.RUNNING:
                seq.n_computed = media.start_pos + media.n_tokens
        for chunk in plan.chunks:
            seq = self._by_id.get(chunk.request_id)
            if seq is None or seq.status is not SeqStatus.RUNNING:
                continue
            seq.n_computed = chunk.start_pos + len(chunk.tokens)
            token = sampled.get(chunk.request_id)
            if chunk.sample and token is not None:
                seq.output.append(token)

    def finish(self, request_id: str, *, cache: bool = True) -> Sequence | None:
        """End a sequence (done or aborted); its KV stays cached for reuse when ``cache``."""
        seq = self._by_id.pop(request_id, None)
        if seq is None:
            return None
        if seq.status is SeqStatus.WAITING:
            self._waiting.remove(seq)
        elif seq.status is SeqStatus.RUNNING:
            self._running.remove(seq)
            self._release_slot(seq, cache=cache)
        seq.status = SeqStatus.FINISHED
        return seq

    def _release_slot(self, seq: Sequence, *, cache: bool) -> None:
        if seq.slot is None:
            return
        if cache and self.prefix_cache.capacity_slots > 0 and seq.n_computed > 0:
            self.prefix_cache.put(seq.slot, seq.computed_tokens())
            while len(self.prefix_cache) > self.prefix_cache.capacity_slots:
                victim = self.prefix_cache.evict_lru()
                if victim is not None:
                    self._pending_clears.append(victim)
                    self._free_slots.append(victim)
        else:
            self._pending_clears.append(seq.slot)
            self._free_slots.append(seq.slot)
        seq.slot = None

    def make_room(self) -> bool:
        """The KV cache is full: drop a cached prefix, else send the newest sequence back to wait.

        Returns False when nothing can be freed.
        """
        victim = self.prefix_cache.evict_lru()
        if victim is not None:
            self._pending_clears.append(victim)
            self._free_slots.append(victim)
            return True
        if len(self._running) <= 1:
            return False
        newest = max(self._running, key=lambda s: s.arrival)
        self._running.remove(newest)
        self._release_slot(newest, cache=False)
        _fold_output_into_prompt(newest)
        newest.status = SeqStatus.WAITING
        self._waiting.insert(0, newest)
        return True

    def reset_kv(self) -> list[Sequence]:
        """The KV cache was lost (model reloaded): every running sequence recomputes its prefix."""
        self.prefix_cache.clear()
        self._pending_clears.clear()
        self._free_slots = list(range(self.n_slots))
        for seq in self._running:
            seq.slot = self._free_slots.pop(0)
            _fold_output_into_prompt(seq)
        return list(self._running)

    def all_sequences(self) -> Iterable[Sequence]:
        return list(self._by_id.values())


def _order(seq: Sequence) -> tuple[int, int]:
    return (-seq.priority, seq.arrival)


def _fold_output_into_prompt(seq: Sequence) -> None:
    # Generated tokens join the prompt, so a recomputed sequence resumes where it stopped.
    seq.max_tokens -= len(seq.output)
    seq.prompt, seq.output = seq.tokens, []
    seq.n_computed = seq.cached_tokens = 0
    seq.ready_at = None


def _new_runs(slot: int, running: set[int]) -> int:
    """How many more runs of consecutive slots ``running`` forms with ``slot`` added: 1 (a run
    of its own), 0 (it extends one) or -1 (it joins two)."""
    return 1 - (slot - 1 in running) - (slot + 1 in running)
