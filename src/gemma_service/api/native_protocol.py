"""Request models of the original gemma-service API (/chat, /chat/stream, /generate)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gemma_service.api.openai_protocol import ResponseFormat


class NativeAudio(BaseModel):
    """An audio clip on a native message: base64 data and its format."""

    model_config = ConfigDict(extra="ignore")

    data: str
    format: Literal["wav", "mp3", "flac"] = "wav"


class NativeMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str
    # Images as base64 (or data: URLs), read after the text (the llama.cpp service's shape).
    images: list[str] = Field(default_factory=list)
    # Audio clips: base64 strings (format read from the data) or {data, format}.
    audio: list[NativeAudio | str] = Field(default_factory=list)


class NativeChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    messages: list[NativeMessage] = Field(min_length=1)
    model: str | None = Field(default=None, max_length=512)  # None: the default model
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    seed: int | None = None
    context: list[str] = Field(default_factory=list)
    use_rag: bool = False
    rag_top_k: int = Field(default=5, ge=1, le=50)
    conversation_id: str | None = Field(default=None, min_length=1, max_length=200)
    # Thinking, on models whose template has it (as Ollama's ``think``); the thought comes
    # back as ``reasoning``, apart from ``response``.
    think: bool | None = None


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1)
    model: str | None = Field(default=None, max_length=512)  # None: the default model
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    seed: int | None = None
    stop: list[str] | None = Field(default=None, max_length=4)
    response_format: ResponseFormat | None = None
