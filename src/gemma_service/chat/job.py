"""``ChatJob``: one request as the chat layer takes it, whatever protocol it came in.

A protocol's parser checks what only it can name (its fields, its server limits) and builds a
job; ``ChatService.start`` does everything else. Either ``messages`` (a chat, put in the
model's chat format) or ``prompt`` (raw text or token ids, no chat format) is set.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from gemma_service.chat.messages import ChatMessage
from gemma_service.chat.structured.tool_specs import FunctionTool, ToolChoice
from gemma_service.chat.thinking import ThinkingOptions
from gemma_service.engine.protocol import SamplingParams
from gemma_service.memory.owners import OwnerScope


@dataclass(slots=True)
class MemoryOptions:
    """What a request asks of memory: retrieved sources, its documents, a conversation."""

    use_rag: bool = False
    rag_top_k: int | None = None
    context_documents: list[str] = field(default_factory=list)
    conversation_id: str | None = None


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """The shape a reply must take: plain text, any JSON object, or JSON under ``schema``.

    ``param`` and ``where`` name the field in the request, for errors about the schema.
    """

    type: Literal["text", "json_object", "json_schema"]
    schema: Any = None
    param: str = "response_format"
    where: str = "response_format.json_schema.schema"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asked. ``id`` is stable and safe to log (rate limits, token billing); ``scope`` is
    whose stored objects (memories, conversations, stored responses) the request may read, and
    its owner owns what the request stores."""

    id: str
    scope: OwnerScope

    @property
    def owner(self) -> str:
        return self.scope.owner


@dataclass(slots=True)
class ChatJob:
    """A request for the chat layer. ``sampling.max_tokens`` is already within server limits."""

    messages: list[ChatMessage] | None = None
    prompt: str | list[int] | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    n: int = 1
    # The model asked for (None: the default); with one model served, any name gets it.
    model: str | None = None
    tools: list[FunctionTool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None  # None: auto with tools, none without
    parallel_tool_calls: bool = True
    output: OutputFormat | None = None
    thinking: ThinkingOptions = field(default_factory=ThinkingOptions)
    # Extra variables for the model's chat template (``chat_template_kwargs``).
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    memory: MemoryOptions = field(default_factory=MemoryOptions)
    # Needed by a job that uses memory or a conversation (whose they are); None elsewhere only.
    caller: Caller | None = None
    priority: int = 0
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a ChatJob has either messages or a prompt")

    @property
    def prompt_param(self) -> str:
        """The request field the prompt came from, for errors about its length."""
        return "messages" if self.messages is not None else "prompt"
