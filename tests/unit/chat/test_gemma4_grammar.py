"""Gemma 4's grammars judged by llama.cpp's grammar engine over the real Gemma 4 vocabulary:
the forced call in Gemma 4's own syntax, and the thinking budget that ends a thought."""

from __future__ import annotations

from gemma_service.chat.structured import GEMMA4_CALLS, ToolChoice, parse_tools, tool_call_grammar
from gemma_service.chat.thinking import thought_budget_grammar

from .conftest import Gemma4Vocab

TOOLS = parse_tools(
    [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "unit": {"enum": ["celsius", "fahrenheit"]},
                        "city": {"type": "string"},
                        "days": {"type": "integer", "minimum": 1, "maximum": 7},
                        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
                    },
                    "required": ["city", "unit"],
                },
            },
        },
        {"type": "function", "function": {"name": "get_time"}},
    ]
)
Q = '<|"|>'


def forced(*, parallel: bool = True, max_string_length: int | None = None) -> str:
    grammar = tool_call_grammar(
        TOOLS,
        ToolChoice("required"),
        parallel,
        max_string_length=max_string_length,
        syntax=GEMMA4_CALLS,
    )
    assert grammar is not None
    return grammar


def test_the_forced_call_grammar_takes_calls_as_the_template_writes_them(
    gemma4: Gemma4Vocab,
) -> None:
    weather = (
        f"<|tool_call>call:get_weather{{city:{Q}Paris{Q},days:3,unit:{Q}celsius{Q}}}<tool_call|>"
    )
    time = "<|tool_call>call:get_time{}<tool_call|>"
    tokens = gemma4.tokenize(weather, True)
    assert gemma4.token("<|tool_call>") in tokens and gemma4.token(Q) in tokens  # single tokens
    assert gemma4.accepts(forced(), tokens)
    assert gemma4.accepts(forced(), gemma4.tokenize(weather + time, True))
    assert not gemma4.accepts(forced(parallel=False), gemma4.tokenize(weather + time, True))
    bad = [
        weather.replace("get_weather", "get_wether"),  # not a function offered
        weather.replace("celsius", "kelvin"),  # not in the enum
        weather.replace("days:3,", "days:9,"),  # above the maximum
        weather.replace(f"city:{Q}Paris{Q},", ""),  # a required argument left out
        weather.replace(f"{Q}Paris{Q}", '"Paris"'),  # JSON quotes are not Gemma 4's
        "Sure! " + weather,  # a forced reply is the call only
    ]
    for text in bad:
        assert not gemma4.accepts(forced(), gemma4.tokenize(text, True)), text


def test_a_forced_string_cannot_run_away(gemma4: Gemma4Vocab) -> None:
    head = f"<|tool_call>call:get_weather{{city:{Q}"
    grammar = forced(max_string_length=12)
    ok = gemma4.tokenize(head + "Tokyo (UTC)" + Q, True)
    assert gemma4.accepts(grammar, ok, then_end=False)
    looping = gemma4.tokenize(head + "Tokyo (UTC) (UTC) (UTC)", True)
    assert not gemma4.accepts(grammar, looping, then_end=False)


def thought(gemma4: Gemma4Vocab, n: int) -> list[int]:
    """``<|channel>`` and ``n`` tokens of thought."""
    word = gemma4.tokenize(" hmm", True)
    assert len(word) == 1
    return [gemma4.token("<|channel>"), *(word * n)]


def test_a_thought_ends_at_its_budget(gemma4: Gemma4Vocab) -> None:
    open_, close = gemma4.token("<|channel>"), gemma4.token("<channel|>")
    answer = gemma4.tokenize(" The answer.", True)
    for budget in (0, 5, 99, 100, 250):
        grammar = thought_budget_grammar(None, budget, open_, close)
        at_budget = thought(gemma4, budget)
        assert gemma4.accepts(grammar, [*at_budget, close, *answer])
        # One token more and the thought has overrun its budget: only the close may come.
        assert not gemma4.accepts(grammar, thought(gemma4, budget + 1), then_end=False)
        assert gemma4.accepts(grammar, [*thought(gemma4, max(0, budget - 1)), close])
    grammar = thought_budget_grammar(None, 5, open_, close)
    assert gemma4.accepts(grammar, answer)  # no thought at all is fine
    # After the answer has started, no second thought may open (and dodge the budget).
    assert not gemma4.accepts(grammar, [*thought(gemma4, 2), close, *answer, open_])


def test_a_thought_then_a_forced_call(gemma4: Gemma4Vocab) -> None:
    open_, close = gemma4.token("<|channel>"), gemma4.token("<channel|>")
    grammar = thought_budget_grammar(forced(), 8, open_, close)
    call = gemma4.tokenize("<|tool_call>call:get_time{}<tool_call|>", True)
    assert gemma4.accepts(grammar, [*thought(gemma4, 3), close, *call])
    assert gemma4.accepts(grammar, call)
    assert not gemma4.accepts(grammar, [*thought(gemma4, 3), close])  # the call must come


def test_string_lengths_count_characters_exactly(gemma4: Gemma4Vocab) -> None:
    bounded = {"type": "string", "minLength": 2, "maxLength": 5}
    schema = {"type": "object", "properties": {"s": bounded}, "required": ["s"]}
    tools = parse_tools([{"type": "function", "function": {"name": "f", "parameters": schema}}])
    grammar = tool_call_grammar(tools, ToolChoice("required"), False, syntax=GEMMA4_CALLS)
    assert grammar is not None

    def takes(text: str) -> bool:
        call = f"<|tool_call>call:f{{s:{Q}{text}{Q}}}<tool_call|>"
        return gemma4.accepts(grammar, gemma4.tokenize(call, True))

    for text in ("ab", "a<b<c", "<<<<<", "x<", "12345"):
        assert takes(text), text
    for text in ("a", "123456", "a<b<cd", "a<|b"):  # "<|" could begin the closing mark
        assert not takes(text), text
