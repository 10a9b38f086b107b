"""Which Gemma a model is, and what its chat format gives a request.

Detected once per model from the GGUF (``general.architecture`` and its chat template):

- Gemma 4: its own template with tools passed in (``<|tool>`` declarations), calls in its own
  syntax (``<|tool_call>call:NAME{...}<tool_call|>``), and a thinking channel when the template
  has one (``enable_thinking``, ``<|channel>thought ... <channel|>``).
- Gemma 3, 3n (and any other GGUF): the GGUF's template, or Gemma 3's turn format when it has
  none; tools through instructions in the system turn and calls in our JSON form; no thinking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from gemma_service.chat.structured import GEMMA4_CALLS, JSON_CALLS, ToolCallSyntax

Family = Literal["gemma3", "gemma3n", "gemma4", "unknown"]
_FAMILY_NAMES: dict[str, str] = {
    "gemma3": "Gemma 3",
    "gemma3n": "Gemma 3n",
    "gemma4": "Gemma 4",
    "unknown": "unknown",
}


@dataclass(frozen=True, slots=True)
class ChatFormat:
    """What a model's chat format does with tools and thinking."""

    family: Family
    template_source: Literal["gguf", "builtin"]  # builtin: Gemma 3's turn format
    native_tools: bool  # the template declares tools and writes calls itself
    thinking: bool  # the template can turn a thinking channel on and off

    @property
    def call_syntax(self) -> ToolCallSyntax:
        """How this model writes tool calls."""
        return GEMMA4_CALLS if self.native_tools else JSON_CALLS

    def describe(self) -> dict[str, Any]:
        """For /v1/models/{id} and /healthz."""
        return {
            "family": self.family,
            "family_name": _FAMILY_NAMES[self.family],
            "chat_template": self.template_source,
            "tools": "native" if self.native_tools else "prompted",
            "tool_call_syntax": self.call_syntax.name,
            "thinking": self.thinking,
        }


def detect_chat_format(architecture: str, chat_template: str | None) -> ChatFormat:
    """The chat format of a GGUF with this ``general.architecture`` and chat template."""
    template = chat_template or ""
    native_tools = "<|tool_call>call:" in template  # as llama.cpp tells Gemma 4's template
    thinking = "enable_thinking" in template and "<|channel>" in template
    return ChatFormat(
        family=_family(architecture.lower(), template),
        template_source="gguf" if chat_template else "builtin",
        native_tools=native_tools,
        thinking=thinking,
    )


def _family(architecture: str, template: str) -> Family:
    if architecture.startswith("gemma4"):
        return "gemma4"
    if architecture.startswith("gemma3n"):
        return "gemma3n"
    if architecture.startswith("gemma3") or architecture == "gemma-embedding":
        return "gemma3"
    if not architecture:  # not known: tell by the turn markers of the template
        if "<|turn>" in template:
            return "gemma4"
        if "<start_of_turn>" in template:
            return "gemma3"
    return "unknown"
