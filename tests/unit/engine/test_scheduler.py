"""The continuous-batching scheduler, stepped with hand-built results (no model)."""

from __future__ import annotations

from gemma_service.engine.scheduler import SHARE_WAIT_MIN_TOKENS, Scheduler, Sequence, StepPlan


def seq(rid: str, n_prompt: int, *, priority: int = 0, base: int = 0) -> Sequence:
    return Sequence(rid, list(range(base, base + n_prompt)), max_tokens=100, priority=priority)


def step(s: Scheduler, token: int = 7) -> StepPlan:
    plan = s.schedule()
    s.update(plan, {c.request_id: token for c in plan.chunks if c.sample})
    return plan


def test_long_prompt_is_prefilled_in_chunks_under_the_budget() -> None:
    s = Scheduler(batch_size=16, parallel=4, cache_slots=0)
    s.add(seq("a", 40))
    sizes = []
    for _ in range(3):
        plan = step(s)
        sizes.append(plan.n_tokens)
    assert sizes == [16, 16, 8]
    assert [c.sample for c in plan.chunks] == [True]  # logits only for the last prompt token


def test_running_streams_decode_while_a_long_prompt_prefills() -> None:
    s = Scheduler(batch_size=16, parallel=4, cache_slots=0)
    s.add(seq("short", 4))
    step(s)  # prefilled, first token sampled
    s.add(seq("long", 100, base=1000))
    plan = step(s)
    by_id = {c.request_id: c for c in plan.chunks}
    assert len(by_id["short"].tokens) == 1 and by_id["short"].sample
    assert len(by_id["long"].tokens) == 15  # the rest of the budget
    assert plan.n_tokens <= 16


def test_sequence_cap_holds_new_requests_until_a_slot_frees() -> None:
    s = Scheduler(batch_size=64, parallel=2, cache_slots=0)
    for rid in "abc":
        s.add(seq(rid, 3, base=ord(rid) * 100))
    plan = step(s)
    assert {c.request_id for c in plan.chunks} == {"a", "b"}
    assert s.n_waiting == 1
    s.finish("a")
    plan = step(s)
    assert "c" in {c.request_id for c in plan.chunks}
    assert plan.clear_slots  # a's KV is freed in the same step


def test_higher_priority_is_admitted_first_then_arrival_order() -> None:
    s = Scheduler(batch_size=64, parallel=1, cache_slots=0)
    s.add(seq("low", 3, base=100))
    s.add(seq("high", 3, priority=5, base=200))
    s.add(seq("high2", 3, priority=5, base=300))
    order = []
    for _ in range(3):
        plan = step(s)
        rid = plan.chunks[0].request_id
        order.append(rid)
        s.finish(rid)
    assert order == ["high", "high2", "low"]


def test_abort_of_waiting_request_removes_it() -> None:
    s = Scheduler(batch_size=8, parallel=1, cache_slots=0)
    s.add(seq("a", 3))
    s.add(seq("b", 3, base=50))
    s.finish("b")
    assert s.n_waiting == 1
    step(s)
    assert s.n_waiting == 0 and s.n_running == 1


def test_finished_sequence_prefix_is_reused_by_the_next_request() -> None:
    s = Scheduler(batch_size=512, parallel=2, cache_slots=2)
    s.add(seq("first", 100))
    step(s)
    s.finish("first")
    s.add(Sequence("second", [*range(100), 900, 901], max_tokens=10))
    plan = step(s)
    [chunk] = plan.chunks
    assert chunk.start_pos == 100 and chunk.tokens == [900, 901]
    assert s.get("second") is not None and s.get("second").cached_tokens == 100  # type: ignore[union-attr]
    assert plan.trims == [(chunk.slot, 100)]  # took over the cached slot, no copy


def test_identical_prompt_reuses_all_but_the_last_token() -> None:
    s = Scheduler(batch_size=512, parallel=2, cache_slots=2)
    s.add(seq("a", 50))
    step(s)
    s.finish("a")
    s.add(seq("b", 50))
    plan = step(s)
    assert plan.chunks[0].tokens == [49] and plan.chunks[0].sample


def test_second_request_waits_for_a_sharer_then_copies_its_kv() -> None:
    s = Scheduler(batch_size=64, parallel=4, cache_slots=0)
    s.add(seq("a", 200))
    s.add(seq("b", 200))
    plan = step(s)
    assert {c.request_id for c in plan.chunks} == {"a"}  # b waits for a's prefix
    while not plan.copies:
        plan = step(s)
    [copy] = plan.copies
    # b starts from a's computed prefix and computes at most the share threshold itself.
    assert copy.n_tokens >= 200 - SHARE_WAIT_MIN_TOKENS
    [b_chunk] = [c for c in plan.chunks if c.request_id == "b"]
    assert b_chunk.start_pos == copy.n_tokens and b_chunk.tokens[-1] == 199


def test_cache_eviction_is_least_recently_used() -> None:
    s = Scheduler(batch_size=512, parallel=1, cache_slots=1)
    s.add(seq("a", 10))
    step(s)
    s.finish("a")
    s.add(seq("b", 10, base=500))
    plan = step(s)
    s.finish("b")
    # One cache slot: a's entry was evicted when b took the last free slot or finished.
    assert len(s.prefix_cache) == 1
    assert plan.chunks[0].start_pos == 0


def test_make_room_evicts_cache_then_requeues_the_newest() -> None:
    s = Scheduler(batch_size=512, parallel=2, cache_slots=1)
    s.add(seq("old", 5))
    step(s)
    s.finish("old")
    s.add(seq("a", 5, base=100))
    s.add(seq("b", 5, base=200))
    step(s)
    step(s)
    assert s.make_room()  # drops the cached prefix first
    assert s.n_running == 2
    assert s.make_room()  # then sends the newest back to wait, keeping its output
    assert s.n_running == 1 and s.n_waiting == 1
    requeued = s.get("b")
    assert requeued is not None and requeued.prompt[-2:] == [7, 7]
    plan = step(s)
    assert any(c.request_id == "b" and c.start_pos == 0 for c in plan.chunks)


def test_reset_kv_recomputes_running_sequences() -> None:
    s = Scheduler(batch_size=512, parallel=2, cache_slots=0)
    s.add(seq("a", 5))
    step(s)
    step(s)
    s.reset_kv()
    plan = step(s)
    [chunk] = plan.chunks
    assert chunk.start_pos == 0 and chunk.tokens == [0, 1, 2, 3, 4, 7, 7] and chunk.sample


# --- one KV stream per slot (shared_slots): the slots themselves are the prefix cache ---------
def test_shared_slots_keep_a_finished_prefix_in_its_idle_slot() -> None:
    s = Scheduler(batch_size=512, parallel=2, cache_slots=8, shared_slots=True)
    assert s.n_slots == 2 and s.prefix_cache.capacity_slots == 2
    s.add(seq("first", 100))
    first_slot = step(s).chunks[0].slot
    s.finish("first")
    s.add(Sequence("second", [*range(100), 900], max_tokens=10))
    plan = step(s)
    [chunk] = plan.chunks
    assert (chunk.slot, chunk.start_pos) == (first_slot, 100)
    assert plan.trims == [(first_slot, 100)] and not plan.copies


def test_shared_slots_take_the_lowest_free_slot_so_running_ones_stay_together() -> None:
    s = Scheduler(batch_size=512, parallel=4, cache_slots=0, shared_slots=True)
    for rid in "abc":
        s.add(seq(rid, 3, base=ord(rid) * 100))
    step(s)
    s.finish("b")  # frees slot 1
    step(s)
    s.add(seq("d", 3, base=900))
    plan = step(s)
    [d] = [c for c in plan.chunks if c.request_id == "d"]
    assert d.slot == 1


def test_shared_slots_evict_an_idle_prefix_for_a_new_prompt() -> None:
    s = Scheduler(batch_size=512, parallel=2, cache_slots=2, shared_slots=True)
    for rid, base in (("a", 100), ("b", 200)):
        s.add(seq(rid, 5, base=base))
        step(s)
        s.finish(rid)
    s.add(seq("c", 5, base=300))
    plan = step(s)
    [c] = plan.chunks
    assert c.start_pos == 0 and plan.clear_slots == [c.slot]
    assert len(s.prefix_cache) == 1  # b's prefix is still cached in the other slot


def test_after_a_burst_new_prompts_take_the_lowest_idle_slots_so_they_decode_together() -> None:
    s = Scheduler(batch_size=512, parallel=4, cache_slots=4, shared_slots=True)
    for rid in "abcd":
        s.add(seq(rid, 20, base=ord(rid) * 100))
    step(s)
    for rid in "cadb":  # finished in another order than they started
        s.finish(rid)
    for rid in "xy":
        s.add(seq(rid, 20, base=ord(rid) * 1000))
    plan = step(s)
    assert sorted(c.slot for c in plan.chunks) == [0, 1]


def burst_then_keep(s: Scheduler, running: str) -> dict[str, int]:
    """Fill every slot with a request (prompts of 20 tokens, distinct), finish all but
    ``running``; return each request's slot."""
    ids = "abcdefgh"[: s.n_slots]
    for rid in ids:
        s.add(seq(rid, 20, base=ord(rid) * 100))
    slots = {c.request_id: c.slot for c in step(s).chunks}
    for rid in ids:
        if rid not in running:
            s.finish(rid)
    return slots


def test_a_prompt_matching_a_cached_slot_away_from_the_running_ones_is_copied_beside_them() -> None:
    """Taking the matching idle slot over would split the running slots into two runs (two
    passes of the model per step with one KV stream per slot); the shared part is copied into
    the slot next to them instead."""
    s = Scheduler(batch_size=512, parallel=8, cache_slots=8, shared_slots=True)
    slots = burst_then_keep(s, running="ab")
    assert (slots["a"], slots["b"]) == (0, 1)
    g = slots["g"]
    s.add(Sequence("new", [*range(ord("g") * 100, ord("g") * 100 + 12), *range(5000, 5010)], 10))
    plan = step(s)
    [new] = [c for c in plan.chunks if c.request_id == "new"]
    assert new.slot == 2 and new.start_pos == 12
    assert [(cp.src, cp.dst, cp.n_tokens) for cp in plan.copies] == [(g, 2, 12)]
    assert not plan.trims and plan.clear_slots == [2]


def test_with_nothing_running_a_matching_cached_slot_is_taken_over_in_place() -> None:
    s = Scheduler(batch_size=512, parallel=8, cache_slots=8, shared_slots=True)
    slots = burst_then_keep(s, running="")
    s.add(Sequence("new", [*range(ord("g") * 100, ord("g") * 100 + 12), *range(5000, 5010)], 10))
    plan = step(s)
    [new] = plan.chunks
    assert new.slot == slots["g"] and plan.trims == [(slots["g"], 12)] and not plan.copies


def test_a_new_prompt_fills_the_hole_a_finished_one_left_between_running_slots() -> None:
    s = Scheduler(batch_size=512, parallel=8, cache_slots=8, shared_slots=True)
    burst_then_keep(s, running="abde")  # slots 0, 1, 3, 4 run; 2 is idle with c's prefix
    s.add(seq("new", 20, base=9000))
    plan = step(s)
    [new] = [c for c in plan.chunks if c.request_id == "new"]
    assert new.slot == 2 and plan.clear_slots == [2]


def test_a_slot_copied_from_is_not_taken_over_or_evicted_in_the_same_step() -> None:
    """One request copies the shared part of a cached slot into a free slot; a second request
    of the same step matches the same slot. Trimming or clearing it for the second request
    would cut what the copy reads (the backend applies trims before copies), so the second
    waits for the next step instead."""
    s = Scheduler(batch_size=512, parallel=2, cache_slots=2, shared_slots=True)
    s.add(seq("cached", 100))
    [cached] = step(s).chunks
    s.finish("cached")
    s.add(Sequence("b", [*range(40), *range(500, 520)], max_tokens=10))
    s.add(Sequence("c", [*range(30), *range(600, 620)], max_tokens=10))
    plan = step(s)
    assert [(cp.src, cp.n_tokens) for cp in plan.copies] == [(cached.slot, 40)]
    assert not plan.trims and cached.slot not in plan.clear_slots
    assert [c.request_id for c in plan.chunks] == ["b"]
    step(s)  # c is placed once the copy is done


def test_a_short_shared_prefix_is_computed_again_not_reused() -> None:
    s = Scheduler(batch_size=512, parallel=2, cache_slots=2, shared_slots=True)
    s.add(seq("cached", 100))
    step(s)
    s.finish("cached")
    s.add(Sequence("b", [*range(6), *range(500, 520)], max_tokens=10))  # 6 tokens in common
    plan = step(s)
    [b] = plan.chunks
    assert b.start_pos == 0 and not plan.copies and not plan.trims


# --- cohorts: requests arriving together start answering together (cohort_window_s) --------
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cohort_scheduler(clock: FakeClock, parallel: int = 4) -> Scheduler:
    """A scheduler whose requests arriving within 0.5 s of each other answer together."""
    return Scheduler(
        batch_size=64, parallel=parallel, cache_slots=0, shared_slots=True,
        cohort_window_s=0.5, clock=clock,
    )  # fmt: skip


def first_token_steps(s: Scheduler, ids: list[str], steps: int = 20) -> dict[str, int]:
    """The step at which each request got its first sampled token."""
    seen: dict[str, int] = {}
    for i in range(steps):
        plan = step(s)
        for c in plan.chunks:
            if c.sample and c.request_id in ids:
                seen.setdefault(c.request_id, i)
    return seen


def test_without_a_window_each_request_answers_as_soon_as_its_prompt_is_in() -> None:
    s = Scheduler(batch_size=64, parallel=4, cache_slots=0, shared_slots=True)
    for rid, base in (("a", 0), ("b", 1000), ("c", 2000)):
        s.add(seq(rid, 60, base=base))
    assert first_token_steps(s, ["a", "b", "c"]) == {"a": 0, "b": 1, "c": 2}


def test_a_burst_within_the_window_answers_in_one_step_and_running_streams_keep_flowing() -> None:
    clock = FakeClock()
    s = cohort_scheduler(clock)
    s.add(seq("early", 10, base=5000))
    step(s)  # "early" is decoding before the burst
    clock.now = 10.0
    for rid, base in (("a", 0), ("b", 1000), ("c", 2000)):
        s.add(seq(rid, 60, base=base))
    decoded_each_step = []
    seen: dict[str, int] = {}
    for i in range(8):
        plan = step(s)
        decoded_each_step.append(any(c.request_id == "early" for c in plan.chunks))
        for c in plan.chunks:
            if c.sample and c.request_id in "abc":
                seen.setdefault(c.request_id, i)
    assert len(set(seen.values())) == 1 and set(seen) == {"a", "b", "c"}
    assert all(decoded_each_step)  # the running stream is never held


def test_a_burst_larger_than_one_step_still_answers_together() -> None:
    clock = FakeClock()
    s = cohort_scheduler(clock)
    for rid, base in (("a", 0), ("b", 1000), ("c", 2000)):
        s.add(seq(rid, 60, base=base))  # 180 tokens: three steps' budget, admitted in turn
    steps = first_token_steps(s, ["a", "b", "c"])
    assert len(set(steps.values())) == 1 and set(steps) == {"a", "b", "c"}


def test_a_request_outside_the_window_or_without_a_free_slot_holds_nobody() -> None:
    clock = FakeClock()
    s = cohort_scheduler(clock, parallel=2)
    s.add(seq("a", 60, base=0))
    s.add(seq("b", 60, base=1000))
    s.add(seq("c", 60, base=2000))  # same burst, but no slot free: it waits, holding nobody
    steps = first_token_steps(s, ["a", "b"], steps=4)
    assert steps["a"] == steps["b"] == 1
    # x waits for z (same burst); y arrives long after x was ready and must not prolong it.
    clock.now = 0.0
    late = cohort_scheduler(clock)
    late.add(seq("x", 10, base=0))
    late.add(seq("z", 100, base=1000))
    step(late)  # x's prompt is in but for its final token, held for z
    clock.now = 5.0
    late.add(seq("y", 200, base=2000))
    assert first_token_steps(late, ["x", "z", "y"])["x"] == 0  # released with z's prompt


def test_a_request_the_engine_has_not_handed_over_yet_holds_the_burst_it_arrived_with() -> None:
    """The engine hands a request to the scheduler a step or two after accepting it; the
    first prompt of a burst must not answer alone meanwhile."""
    clock = FakeClock()
    s = cohort_scheduler(clock)
    s.add(seq("a", 10, base=0))
    plan = s.schedule(expected=[0.0])  # b, made with a, is still on its way
    s.update(plan, {})
    assert not any(c.sample for c in plan.chunks)  # a's final token waits
    s.add(seq("b", 10, base=1000))
    steps = first_token_steps(s, ["a", "b"], steps=4)
    assert steps["a"] == steps["b"]
    # Expected long after a was ready (beyond the window): no wait.
    late = cohort_scheduler(clock)
    late.add(seq("x", 10, base=0))
    assert any(c.sample for c in late.schedule(expected=[9.0]).chunks)
