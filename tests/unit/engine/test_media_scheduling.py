"""Media spans in the scheduler and prompt expansion (no model)."""

from __future__ import annotations

import pytest

from gemma_service.engine.media import MediaLayout, MediaSpan, expand_prompt, placeholder_token
from gemma_service.engine.protocol import MEDIA_TOKEN, GenerationRequest, MediaInput, SamplingParams
from gemma_service.engine.scheduler import Scheduler, Sequence, StepPlan
from gemma_service.errors import InvalidRequestError


def picture(digest: str) -> MediaInput:
    return MediaInput("image", b"\0\0\0", digest * 16, "messages[0].content[0]", 1, 1)


def media_seq(rid: str, digest: str, *, text_after: int = 6) -> Sequence:
    """BOS + 3 text tokens, a 10-position picture, then text."""
    request = GenerationRequest(
        rid, [1, 2, 3, 4, MEDIA_TOKEN, *range(10, 10 + text_after)], SamplingParams(),
        media=[picture(digest)],
    )  # fmt: skip
    prompt = expand_prompt(request, [MediaLayout([50], 10, [51])])
    seq = Sequence(rid, prompt.tokens, max_tokens=5)
    seq.media_spans = prompt.spans
    return seq


def step(s: Scheduler) -> StepPlan:
    plan = s.schedule()
    s.update(plan, {c.request_id: 7 for c in plan.chunks if c.sample})
    return plan


def test_expansion_places_markers_and_content_hashed_positions() -> None:
    seq = media_seq("a", "ab")
    assert seq.media_spans == [MediaSpan(5, 10, 0)]
    assert seq.prompt[4] == 50 and seq.prompt[15] == 51
    assert set(seq.prompt[5:15]) == {placeholder_token("ab" * 16)} and seq.prompt[5] < 0
    assert media_seq("b", "ab").prompt == seq.prompt
    assert media_seq("c", "cd").prompt[5] != seq.prompt[5]


def test_a_prompt_cannot_end_on_media_and_markers_must_match() -> None:
    request = GenerationRequest("x", [1, MEDIA_TOKEN], SamplingParams(), media=[picture("ab")])
    with pytest.raises(InvalidRequestError):
        expand_prompt(request, [MediaLayout([], 4, [])])
    with pytest.raises(InvalidRequestError):
        expand_prompt(GenerationRequest("y", [1, MEDIA_TOKEN], SamplingParams()), [])


def test_a_span_is_fed_whole_in_its_own_chunk_while_streams_decode() -> None:
    s = Scheduler(batch_size=8, parallel=4, cache_slots=0)
    s.add(Sequence("text", [90, 91], max_tokens=50))
    step(s)
    s.add(media_seq("img", "ab"))
    first = step(s)  # text up to the span, never into it
    assert [len(c.tokens) for c in first.chunks if c.request_id == "img"] == [5]
    second = step(s)
    assert [(m.start_pos, m.n_tokens) for m in second.media] == [(5, 10)]  # larger than the budget
    assert not [c for c in second.chunks if c.request_id == "img"]
    assert [c.request_id for c in second.chunks] == ["text"]  # the stream still gets its token
    third = step(s)
    img = [c for c in third.chunks if c.request_id == "img"]
    assert img[0].start_pos == 15 and img[0].sample and not third.media


def test_one_media_chunk_per_step() -> None:
    s = Scheduler(batch_size=64, parallel=4, cache_slots=0)
    for rid, digest in (("a", "ab"), ("b", "cd")):
        seq = media_seq(rid, digest)
        seq.n_computed = 0
        s.add(seq)
    step(s)  # both prefill their leading text
    assert len(step(s).media) == 1
    assert len(step(s).media) == 1


def test_a_repeated_picture_reuses_the_cached_span_and_a_new_one_does_not() -> None:
    s = Scheduler(batch_size=64, parallel=4, cache_slots=4, shared_slots=True)
    s.add(media_seq("a", "ab"))
    for _ in range(3):
        step(s)
    s.finish("a")
    s.add(media_seq("b", "cd"))
    step(s)
    b = s.get("b")
    # Only the text and the begin marker match: too few to reuse (MIN_REUSE_TOKENS).
    assert b is not None and b.cached_tokens == 0
    s.add(media_seq("c", "ab", text_after=3))
    step(s)
    c = s.get("c")
    assert c is not None and c.cached_tokens == 5 + 10 + 1 + 3 - 1  # the picture came along
