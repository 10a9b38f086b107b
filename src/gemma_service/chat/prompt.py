"""Chat messages → a Gemma prompt.

With a chat template in the GGUF, it is rendered (sandboxed Jinja, as llama.cpp's server does).
Without one, the Gemma turn format is applied here: ``<start_of_turn>user … <end_of_turn>`` /
``<start_of_turn>model``, the system message folded into the first user turn. A prompt is a
list of segments; only the template's own markers may become special tokens, so a user who
types ``<end_of_turn>`` cannot forge a turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gemma_service.errors import InvalidRequestError

START = "<start_of_turn>"
END = "<end_of_turn>"
GEMMA_ROLES = {"user": "user", "assistant": "model"}


@dataclass(frozen=True, slots=True)
class Message:
    """A chat message reduced to text (tool calls and parts are rendered before this)."""

    role: str  # system | user | assistant
    content: str


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


class TemplatePrompter:
    """Renders a GGUF's Jinja chat template."""

    def __init__(self, template: str, bos_token: str, eos_token: str) -> None:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise_template_error
        self._template = env.from_string(template)
        self._bos = bos_token
        self._eos = eos_token

    def build(self, messages: list[Message]) -> Prompt:
        try:
            text = self._template.render(
                messages=[{"role": m.role, "content": m.content} for m in messages],
                add_generation_prompt=not (messages and messages[-1].role == "assistant"),
                bos_token=self._bos,
                eos_token=self._eos,
            )
        except TemplateError as exc:
            raise InvalidRequestError(
                f"the chat template rejected the messages: {exc}", param="messages"
            ) from exc
        prompt = Prompt()
        if self._bos and text.startswith(self._bos):
            text = text[len(self._bos) :]  # the tokenizer adds BOS itself
        prompt.special(text)
        return prompt


def _raise_template_error(message: str) -> None:
    raise TemplateError(message)


class ChatPrompter:
    """Picks the GGUF template when there is one, the Gemma turn format otherwise."""

    def __init__(self, chat_template: str | None, bos_token: str, eos_token: str) -> None:
        self._template = (
            TemplatePrompter(chat_template, bos_token, eos_token) if chat_template else None
        )

    @property
    def uses_gguf_template(self) -> bool:
        return self._template is not None

    def build(self, messages: list[Message]) -> Prompt:
        if self._template is not None:
            return self._template.build(messages)
        return build_gemma_prompt(messages)
