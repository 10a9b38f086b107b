"""Request models of Ollama's API (``/api/chat``, ``/api/generate``, ``/api/show``,
``/api/embed``, ``/api/embeddings``).

Unknown fields and unknown ``options`` are ignored, as Ollama ignores them; options that would
change sampling in a way this server cannot (mirostat, typical_p, tfs_z) are refused by
``ollama_jobs``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Ollama's `format`: "" (none), "json", or a JSON schema.
OllamaFormat = Literal["", "json"] | dict[str, Any] | None


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class OllamaOptions(_Lenient):
    """The ``options`` this server maps to its sampling (the rest are load-time settings)."""

    num_predict: int | None = Field(default=None, ge=-2)
    num_ctx: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_k: int | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(default=None, gt=0.0, le=10.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**64 - 1)
    stop: str | list[str] | None = None
    mirostat: int | None = None
    typical_p: float | None = None
    tfs_z: float | None = None


class OllamaMessage(_Lenient):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_name: str | None = None
    thinking: str | None = None  # an earlier turn's thinking: not re-read


class _Generation(_Lenient):
    """What /api/chat and /api/generate share."""

    model: str = Field(min_length=1, max_length=256)
    format: OllamaFormat = None
    options: OllamaOptions | None = None
    stream: bool = True
    keep_alive: float | str | None = None  # accepted; the model stays loaded
    think: bool | Literal["low", "medium", "high"] | None = None  # accepted
    # Extensions of gemma-service: memory.
    use_rag: bool = False
    rag_top_k: int = Field(default=5, ge=1, le=50)
    conversation_id: str | None = Field(default=None, min_length=1, max_length=200)


class OllamaChatRequest(_Generation):
    messages: list[OllamaMessage] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None


class OllamaGenerateRequest(_Generation):
    prompt: str = ""
    system: str | None = None
    suffix: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: bool = False
    images: list[str] | None = None


class OllamaShowRequest(_Lenient):
    model: str = Field(min_length=1, max_length=256)
    verbose: bool = False


class OllamaEmbedRequest(_Lenient):
    model: str = Field(min_length=1, max_length=256)
    input: str | list[str]
    truncate: bool = True
    dimensions: int | None = Field(default=None, ge=1)
    keep_alive: float | str | None = None


class OllamaEmbeddingsRequest(_Lenient):
    """The older ``/api/embeddings``: one prompt, one vector."""

    model: str = Field(min_length=1, max_length=256)
    prompt: str = Field(min_length=1)
    keep_alive: float | str | None = None
