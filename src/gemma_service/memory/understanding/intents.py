"""What kind of answer a question wants: the current value of something that changed, its
history, several items, or a person; and which stored lines carry no content at all."""

from __future__ import annotations

import re

from gemma_service.memory.store import STOP_WORDS

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

# "What is the ship date now?", "Where do we stand on ...", "Which provider did we end up with?"
_LATEST = re.compile(
    r"\b(now|currently|current|latest|newest|most recent|still|at the moment|these days|"
    r"any ?more|as of|as things stand|in the end|end(?:ed)? up|final(?:ly)?|where \w+ \w+ stand|"
    r"status (?:of|on)|state of|up to date|so far|new|will|going to)\b",
    re.IGNORECASE,
)
# "How did the price change over time?": the older values are wanted too.
_HISTORY = re.compile(
    r"\b(over time|history|how (?:has|have|did|do|does) [\w' -]{1,40} (?:change|evolve|grow|"
    r"develop|move)(?:d|s|n)?|all the (?:times|versions)|before and after|originally|"
    r"at first|used to|since (?:the )?(?:start|launch|beginning))\b",
    re.IGNORECASE,
)
# Questions whose answer is a list: plural asks, "all", "which ... and ...".
_MANY = re.compile(
    r"\b(all|every|list|reasons|ways|(?:which|what) (?!is\b|was\b|does\b|has\b)\w{2,}s|"
    r"and what|and how|and why|both|anything|everything)\b",
    re.IGNORECASE,
)
_WHO = re.compile(r"^\s*(who|whom|whose|which (?:person|one of us|colleague))\b", re.IGNORECASE)

# Words that carry no content in a meeting line ("Agreed.", "Sounds good to me.", "Sorry, I
# was on mute.", "Can everyone see my screen?").
_FILLER_TEXT = """
yes yeah yep yup yea ok okay sure thanks thank agreed agree sounds sound good great nice
fine cool right noted perfect excellent lovely exactly absolutely totally indeed understood
makes make sense go ahead will do done me too hmm hm uh um oh ah hi hello hey bye morning
afternoon everyone everybody guys folks all sorry mute muted unmute hear see screen share
sharing can let let's lets move moving next item items on offline take follow up later back
point fair enough happy to love it oh no wow true got it yes please please welcome thx ty
one second sec minute moment bit go for it keep posted me posted sounds like plan works for
that's great problem no worries of course course definitely same here talk soon right hear
you now anyway glad know knew objection objections discuss discussed time look looking news
fault i'll we'll i'm i'd it's that's you're we're let's
"""
FILLER_WORDS = frozenset(_FILLER_TEXT.split())


def wants_latest(question: str) -> bool:
    """The question asks for the current state of something that may have changed."""
    return bool(_LATEST.search(question)) and not wants_history(question)


def wants_history(question: str) -> bool:
    """The question asks how something changed, so older statements are wanted too."""
    return bool(_HISTORY.search(question))


def wants_many(question: str) -> bool:
    """The answer likely needs several memories."""
    return bool(_MANY.search(question)) or wants_history(question)


def asks_who(question: str) -> bool:
    """The question asks which person said or felt something."""
    return bool(_WHO.search(question))


def is_content_free(text: str, names: frozenset[str] = frozenset()) -> bool:
    """A line with no word beyond stop words, meeting filler and people's names (lower case
    in ``names``): "Agreed.", "Okay, next item.", "Thanks, Maya." answer no question."""
    content = [
        w
        for w in _WORD.findall(text.lower())
        if w not in STOP_WORDS and w not in FILLER_WORDS and w not in names
    ]
    return not content
