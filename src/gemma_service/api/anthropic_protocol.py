"""Request models of the Anthropic Messages API (``POST /v1/messages``, ``/count_tokens``).

Content blocks, tools and ``tool_choice`` stay JSON objects here: ``anthropic_jobs`` checks
them one by one, so an error names the block (``messages[1].content[0].tool_use_id``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_STOP_SEQUENCES = 16


class _Lenient(BaseModel):
    # SDKs send fields that change nothing here (metadata, service_tier, ...).
    model_config = ConfigDict(extra="ignore")


class AnthropicMessage(_Lenient):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class JsonOutputFormat(_Lenient):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(_Lenient):
    """Structured output: the reply is JSON under ``format.schema`` (``effort`` is accepted)."""

    format: JsonOutputFormat | None = None


class CountTokensRequest(_Lenient):
    """What ``/v1/messages/count_tokens`` takes: a message request without generation."""

    model: str = Field(min_length=1, max_length=256)
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None  # accepted: the model thinks as it does
    # Extensions of gemma-service: memory.
    use_rag: bool = False
    rag_top_k: int = Field(default=5, ge=1, le=50)
    conversation_id: str | None = Field(default=None, min_length=1, max_length=200)


class MessagesRequest(CountTokensRequest):
    """``POST /v1/messages``; ``max_tokens`` is required, as Anthropic requires it."""

    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = Field(default=None, max_length=MAX_STOP_SEQUENCES)
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    stream: bool = False
    metadata: dict[str, Any] | None = None
    output_config: OutputConfig | None = None
    # Extension of gemma-service: the same seed gives the same answer.
    seed: int | None = Field(default=None, ge=-(2**63), le=2**64 - 1)

    @field_validator("stop_sequences")
    @classmethod
    def _no_empty_stop(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not s for s in value):
            raise ValueError("stop sequences must not be empty")
        return value
