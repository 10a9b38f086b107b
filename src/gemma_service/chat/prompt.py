"""Chat messages as the prompt sees them, and the Gemma turn format for a GGUF without a
chat template.

With a chat template in the GGUF, it is rendered (chat_template.py). Without one, the Gemma turn
format is applied here: ``<start_of_turn>user … <end_of_turn>`` / ``<start_of_turn>model``, the
system message folded into the first user turn. A prompt is a list of segments; only the
format's own markers may become special tokens, so a user who types ``<end_of_turn>`` cannot
forge a turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gemma_service.chat.messages import PastToolCall
from gemma_service.errors import InvalidRequestError

START = "<start_of_turn>"
END = "<end_of_turn>"
GEMMA_ROLES = {"user": "user", "assistant": "model"}


@dataclass(frozen=True, slots=True)
class Message:
    """A chat message as the prompt takes it: text, and for a chat template that writes tool
    calls itself (Gemma 4's), the calls an assistant turn made and the call a tool turn answers.
    For other formats calls and results are already text (roles system, user, assistant)."""

    role: str  # system | user | assistant | tool
    content: str
    tool_calls: tuple[PastToolCall, ...] = ()
    tool_call_id: str | None = None  # a tool turn: the call it answers ...
    name: str | None = None  # ... and that call's function
    reasoning: str | None = None  # an assistant turn's thought, for templates that keep it


@dataclass(slots=True)
class Prompt:
    """Prompt text as segments: (text, may contain special tokens)."""

    segments: list[tuple[str, bool]] = field(default_factory=list)
    add_bos: bool = True

    def special(self, text: str) -> None:
        self.segments.append((text, True))

    def text(self, text: str) -> None:
        if text:
            self.segments.append((text, False))

    def render(self) -> str:
        return "".join(t for t, _ in self.segments)


def build_gemma_prompt(messages: list[Message]) -> Prompt:
    """The Gemma turn format. A trailing assistant message is continued, not closed."""
    turns = _merge_turns(messages)
    prompt = Prompt()
    for i, (role, content) in enumerate(turns):
        is_last = i == len(turns) - 1
        prompt.special(START)
        prompt.text(f"{GEMMA_ROLES[role]}\n")
        prompt.text(content)
        if role == "assistant" and is_last:
            return prompt  # continue the model's unfinished turn
        prompt.special(END)
        prompt.text("\n")
    prompt.special(START)
    prompt.text("model\n")
    return prompt


def _merge_turns(messages: list[Message]) -> list[tuple[str, str]]:
    """System text goes into the first user turn; consecutive same-role turns merge."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    turns: list[tuple[str, str]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role not in GEMMA_ROLES:
            raise InvalidRequestError(f"unsupported role {m.role!r}", param="messages")
        if turns and turns[-1][0] == m.role:
            turns[-1] = (m.role, f"{turns[-1][1]}\n\n{m.content}")
        else:
            turns.append((m.role, m.content))
    if system:
        if turns and turns[0][0] == "user":
            turns[0] = ("user", f"{system}\n\n{turns[0][1]}")
        else:
            turns.insert(0, ("user", system))
    if not turns:
        raise InvalidRequestError("messages must contain a user message", param="messages")
    return turns
