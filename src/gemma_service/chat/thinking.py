"""Thinking: whether a request's model thinks before it answers, and for how long at most.

A model whose template has a thinking switch (Gemma 4's ``enable_thinking``) thinks when the
request asks (``reasoning_effort`` other than none/minimal, or ``chat_template_kwargs.
enable_thinking``); by default it does not, as its template's default. A thought has a budget
in tokens: ``max_thinking_tokens``, or else three quarters of the completion budget, so the
answer always has room to start. The budget is enforced by a grammar counting tokens: after
that many tokens in the channel, the only token left is the one that closes it, and no second
thought may open after the answer starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gemma_service.chat.structured.gbnf import MAX_REPETITION

# A thought's share of the completion budget when the request sets no thinking budget.
DEFAULT_THOUGHT_SHARE = 0.75
# Tokens per grammar block: budgets are spelled as blocks and a tail, each a repetition
# llama.cpp accepts (it refuses counts above 2000).
_BLOCK = 100
_RULE_NAME = re.compile(r"^([a-zA-Z0-9-]+) ::=", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class ThinkingOptions:
    """What a request asks of thinking. ``enabled`` None: the template's default (off)."""

    enabled: bool | None = None
    budget_tokens: int | None = None  # max_thinking_tokens


@dataclass(frozen=True, slots=True)
class ThinkingPlan:
    """Thinking as a run does it: on or off, and the thought's budget (None: no limit)."""

    enabled: bool
    budget_tokens: int | None = None


def plan_thinking(options: ThinkingOptions, *, supported: bool, max_tokens: int) -> ThinkingPlan:
    """Thinking for a request on a model that ``supported`` it (or not: then never on)."""
    if not supported or not options.enabled:
        return ThinkingPlan(False)
    budget = options.budget_tokens
    if budget is None:
        budget = max(1, int(max_tokens * DEFAULT_THOUGHT_SHARE))
    return ThinkingPlan(True, budget if budget < max_tokens else None)


def thought_budget_grammar(answer: str | None, budget: int, open_id: int, close_id: int) -> str:
    """GBNF: at most one thought of at most ``budget`` tokens (from token ``open_id`` to token
    ``close_id``), then the answer (``answer``'s root, or any tokens but another thought)."""
    rules: list[str] = []
    taken = set(_RULE_NAME.findall(answer or ""))

    def fresh(hint: str) -> str:
        name, n = hint, 2
        while name in taken:
            name, n = f"{hint}-{n}", n + 1
        taken.add(name)
        return name

    token, thought, body = fresh("thought-token"), fresh("thought"), fresh("thought-body")
    rules.append(f"{token} ::= !<[{close_id}]>")
    rules.append(f"{thought} ::= <[{open_id}]> {body} <[{close_id}]>")
    blocks, rest = divmod(budget, _BLOCK)
    if blocks == 0:
        rules.append(f"{body} ::= {token}{{0,{rest}}}")
    else:
        block, tail = fresh("thought-block"), fresh("thought-tail")
        rules.append(f"{block} ::= {token}{{{_BLOCK}}}")
        rules.append(f"{tail} ::= {token}{{0,{_BLOCK + rest}}}")
        lead = f"{block}{{0,{blocks - 1}}} " if blocks > 1 else ""
        if blocks - 1 > MAX_REPETITION:
            raise ValueError(f"a thinking budget of {budget} tokens is too large")
        rules.append(f"{body} ::= {lead}{tail}")
    if answer is None:
        answer_token = fresh("answer-token")
        rules.append(f"{answer_token} ::= !<[{open_id}]>")
        start = f"{answer_token}*"
    else:
        answer_root = fresh("answer")
        answer = re.sub(r"^root ::=", f"{answer_root} ::=", answer, count=1, flags=re.MULTILINE)
        rules.append(answer.rstrip("\n"))
        start = answer_root
    return "\n".join([f"root ::= {thought}? {start}", *rules]) + "\n"
