"""Chat messages as every protocol's parser hands them to the chat layer.

Protocol-neutral: OpenAI, Anthropic, Ollama and native messages all become these. Content is a
list of parts (text, image, audio); an assistant message may carry the tool calls it made, and
a ``tool`` message answers one of them. Media parts remember where the request held them
(``param``), so a refusal can name the field in the client's own terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image: a ``data:`` URL or an http(s) URL (fetched, under policy, when used)."""

    url: str
    param: str = "messages"


@dataclass(frozen=True, slots=True)
class AudioPart:
    """Audio as base64 with its format (``wav``, ``mp3``)."""

    data: str
    format: str
    param: str = "messages"


ContentPart = TextPart | ImagePart | AudioPart
MediaPart = ImagePart | AudioPart


@dataclass(frozen=True, slots=True)
class PastToolCall:
    """A call an assistant message made earlier in the conversation."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class ChatMessage:
    """One message of a chat request."""

    role: Role
    content: list[ContentPart] = field(default_factory=list)
    tool_calls: list[PastToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # a tool message: the call it answers
    name: str | None = None
    reasoning: str | None = None  # an assistant message's thought, as the model gave it

    @classmethod
    def of(cls, role: Role, text: str) -> ChatMessage:
        """A message of plain text."""
        return cls(role, [TextPart(text)] if text else [])

    @property
    def text(self) -> str:
        """The text parts, joined by newlines."""
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def media(self) -> list[MediaPart]:
        return [p for p in self.content if not isinstance(p, TextPart)]
