"""Request model of the OpenAI Responses API (``POST /v1/responses``).

Items (``input``, ``tools``) stay JSON objects here: ``responses_jobs`` checks them one by one,
so an error names the item (``input[2].call_id``) in the client's own terms.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    # SDKs send fields that change nothing here (service_tier, prompt_cache_key, ...).
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class TextFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class TextConfig(_Lenient):
    format: TextFormat | None = None


class ResponsesRequest(_Lenient):
    model: str | None = None
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool = True
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = Field(default=None, min_length=1, max_length=200)
    background: bool = False
    metadata: dict[str, str] | None = None
    user: str | None = None
    reasoning: dict[str, Any] | None = None  # accepted: effort is the model's own
    truncation: Literal["auto", "disabled"] | None = None
    # Extensions of gemma-service: a seed (same seed, same answer) and memory.
    seed: int | None = Field(default=None, ge=-(2**63), le=2**64 - 1)
    top_k: int | None = Field(default=None, ge=0)
    use_rag: bool = False
    rag_top_k: int = Field(default=5, ge=1, le=50)
    conversation_id: str | None = Field(default=None, min_length=1, max_length=200)
