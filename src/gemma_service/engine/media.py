"""Media (images, audio) in a prompt, as the scheduler and the backends see them.

A request's prompt holds one ``MEDIA_TOKEN`` where each media item goes. When the engine
accepts the request, the backend's projector lays each item out (``MediaLayout``: the model's
begin/end marker tokens around ``n_tokens`` embedding positions) and the prompt is expanded:
the embedding positions get placeholder ids derived from the item's content hash. Two prompts
with the same picture therefore share a token prefix, so the prefix cache reuses the picture's
KV exactly as it reuses text; a different picture diverges at its first position.
A ``MediaSpan`` marks where those positions are: the scheduler feeds a span whole, in a step
of its own, and the backend decodes it as embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

from gemma_service.engine.protocol import MEDIA_TOKEN, GenerationRequest
from gemma_service.errors import InvalidRequestError


@dataclass(frozen=True, slots=True)
class MediaLayout:
    """How one media item sits in the prompt: marker tokens around its embedding positions."""

    before: list[int]
    n_tokens: int
    after: list[int]


@dataclass(frozen=True, slots=True)
class MediaSpan:
    """Prompt positions [start, start + length) hold media item ``index``'s embeddings."""

    start: int
    length: int
    index: int

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass(frozen=True, slots=True)
class ExpandedPrompt:
    """A prompt with every media item laid out: placeholder ids and where each span is."""

    tokens: list[int]
    spans: list[MediaSpan]


def placeholder_token(content_hash: str) -> int:
    """The id every position of a media item carries: negative (no vocabulary id is), and the
    same for the same content."""
    return -2 - int(content_hash[:15], 16)


def expand_prompt(request: GenerationRequest, layouts: list[MediaLayout]) -> ExpandedPrompt:
    """Replace each ``MEDIA_TOKEN`` of the prompt with its item's layout."""
    markers = request.prompt_tokens.count(MEDIA_TOKEN)
    if markers != len(request.media) or len(layouts) != len(request.media):
        raise InvalidRequestError(
            f"the prompt has {markers} media positions for {len(request.media)} media items"
        )
    tokens: list[int] = []
    spans: list[MediaSpan] = []
    index = 0
    for token in request.prompt_tokens:
        if token != MEDIA_TOKEN:
            tokens.append(token)
            continue
        layout, item = layouts[index], request.media[index]
        tokens.extend(layout.before)
        spans.append(MediaSpan(len(tokens), layout.n_tokens, index))
        tokens.extend([placeholder_token(item.content_hash)] * layout.n_tokens)
        tokens.extend(layout.after)
        index += 1
    if spans and spans[-1].end == len(tokens):
        # The last prompt position must be a token: its logits give the first output.
        raise InvalidRequestError("a prompt cannot end with an image or audio")
    return ExpandedPrompt(tokens, spans)


def span_at(spans: list[MediaSpan], pos: int) -> MediaSpan | None:
    """The span starting at ``pos``, if any."""
    for span in spans:
        if span.start == pos:
            return span
    return None


def next_span_start(spans: list[MediaSpan], pos: int, default: int) -> int:
    """Where the first span at or after ``pos`` starts (``default`` if none)."""
    return min((s.start for s in spans if s.start >= pos), default=default)


def snap_to_span_start(spans: list[MediaSpan], n: int) -> int:
    """``n`` moved back to the start of a span it falls inside (a span is computed whole)."""
    for span in spans:
        if span.start < n < span.end:
            return span.start
    return n
