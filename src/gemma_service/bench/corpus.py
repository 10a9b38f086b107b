"""Long benchmark prompts of real text: Python's own reference documentation, which ships with
every CPython (``pydoc_data``), so nothing is downloaded.

A prompt of about N tokens is a window of the text, different for each request index, ending
with a request to summarise it: real requests carry documents, histories and sources of hundreds
to thousands of tokens, and a server's decode speed at those lengths is what users feel.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

# Gemma 3's tokenizer on this text, measured with the packaged model (``calibrate``): 1 token per
# about 3.6 characters. Used when no tokenizer is at hand (benchmarking a remote --url).
DEFAULT_CHARS_PER_TOKEN = 3.6
_QUESTION = "\n\nSummarize the passage above in a few sentences, then list its key terms."


@functools.cache
def corpus_text() -> str:
    """About 465,000 characters of English prose and examples."""
    import pydoc_data.topics as topics

    return "\n\n".join(topics.topics[key] for key in sorted(topics.topics))


def calibrate(count_tokens: Callable[[str], int], sample_chars: int = 60_000) -> float:
    """Characters per token of this corpus under a model's tokenizer."""
    sample = corpus_text()[:sample_chars]
    return len(sample) / max(1, count_tokens(sample))


def document_prompt(index: int, tokens: int, chars_per_token: float) -> str:
    """About ``tokens`` tokens of the corpus (a window that differs by ``index``) + a question."""
    text = corpus_text()
    length = max(1, int(tokens * chars_per_token) - len(_QUESTION))
    span = max(1, len(text) - length)
    # A stride that is no divisor of the span walks the whole text before windows repeat.
    start = (index * 7919 * 13) % span
    # Start at a word so the window reads as text.
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while text[start].isspace():
        start += 1
    return f"Passage {index}:\n" + text[start : start + length] + _QUESTION
