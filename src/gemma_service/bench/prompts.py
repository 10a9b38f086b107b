"""Deterministic prompts: short distinct ones for load, and a long shared prefix for caching."""

from __future__ import annotations

_TOPICS = (
    "lighthouses",
    "honeybees",
    "the history of paper",
    "volcanoes",
    "sourdough bread",
    "glaciers",
    "clockmaking",
    "coral reefs",
    "the printing press",
    "migratory birds",
    "desert cities",
    "river deltas",
    "chess openings",
    "early railways",
    "tea ceremonies",
    "deep-sea fish",
)
_FORMS = ("a long story", "a detailed essay", "a long letter", "a travel guide")

# Measured with Gemma 3's tokenizer: one ledger sentence is about 30 tokens, so 50 of them plus
# the framing make a prefix of roughly 1,500 tokens.
_TOKENS_PER_LEDGER_SENTENCE = 30
_WINDS = ("calm", "light", "brisk", "strong", "gale-force")
_SHIPS = ("a trawler", "two ferries", "a tanker", "three yachts", "a survey vessel")


def load_prompt(index: int) -> str:
    """A short prompt, distinct per index, that asks for a long answer."""
    topic = _TOPICS[index % len(_TOPICS)]
    form = _FORMS[(index // len(_TOPICS)) % len(_FORMS)]
    return f"Request {index}: write {form} about {topic}. Use many paragraphs."


def shared_prefix(nonce: str, target_tokens: int = 1500) -> str:
    """A long document (about ``target_tokens`` tokens) that starts with ``nonce``.

    A fresh nonce makes the prefix unseen, so the first request with it is truly cold.
    """
    sentences = max(1, target_tokens // _TOKENS_PER_LEDGER_SENTENCE)
    lines = [f"Session {nonce}. Below is the keeper's ledger of the North Point lighthouse."]
    for day in range(1, sentences + 1):
        wind = _WINDS[day % len(_WINDS)]
        ships = _SHIPS[(day * 3) % len(_SHIPS)]
        lines.append(
            f"On day {day} the keeper noted {wind} winds from the west, saw {ships} pass "
            f"the point, and trimmed the lamp at dusk."
        )
    return "\n".join(lines)


def prefix_question(index: int) -> str:
    """A short question appended after the shared prefix; distinct per index."""
    return f"\n\nQuestion {index}: on which day were the winds first gale-force?"
