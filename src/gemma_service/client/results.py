"""What the client returns: small typed views of the service's JSON, each keeping ``raw``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class Usage:
    """Token counts of one request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_json(cls, data: Any) -> Usage | None:
        if not isinstance(data, Mapping):
            return None
        return cls(
            int(data.get("prompt_tokens", 0)),
            int(data.get("completion_tokens", 0)),
            int(data.get("total_tokens", 0)),
        )


@dataclass(frozen=True)
class Source:
    """A memory the answer drew on; ``n`` is the number the answer cites it by ([n])."""

    n: int
    id: str | None
    text: str
    speaker: str | None = None
    timestamp: str | None = None
    score: float | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], position: int) -> Source:
        return cls(
            n=int(data.get("n", position)),
            id=_opt_str(data.get("id")),
            text=str(data.get("text", "")),
            speaker=_opt_str(data.get("speaker")),
            timestamp=_opt_str(data.get("timestamp")),
            score=_opt_float(data.get("score")),
            raw=data,
        )


def sources_from_json(data: Any) -> list[Source]:
    if not isinstance(data, list):
        return []
    return [Source.from_json(s, i) for i, s in enumerate(data, 1) if isinstance(s, Mapping)]


@dataclass(frozen=True)
class GenerateResult:
    """The answer of POST /generate (or of the fallback, when ``from_fallback``)."""

    text: str
    model: str
    usage: Usage | None = None
    finish_reason: str | None = None
    from_fallback: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GenerateResult:
        return cls(
            text=str(data.get("text", "")),
            model=str(data.get("model", "")),
            usage=Usage.from_json(data.get("usage")),
            finish_reason=_opt_str(data.get("finish_reason")),
            raw=data,
        )


@dataclass(frozen=True)
class ChatResult:
    """The answer of POST /chat, with the memories it cites."""

    response: str
    model: str
    usage: Usage | None = None
    sources: list[Source] = field(default_factory=list)
    rag_context_used: int = 0
    finish_reason: str | None = None
    from_fallback: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.response

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChatResult:
        return cls(
            response=str(data.get("response", "")),
            model=str(data.get("model", "")),
            usage=Usage.from_json(data.get("usage")),
            sources=sources_from_json(data.get("sources")),
            rag_context_used=int(data.get("rag_context_used") or 0),
            finish_reason=_opt_str(data.get("finish_reason")),
            raw=data,
        )


@dataclass(frozen=True)
class StreamEvent:
    """One event of POST /chat/stream: a token, or the final ``done`` event with usage/sources."""

    token: str
    done: bool
    usage: Usage | None = None
    sources: list[Source] = field(default_factory=list)
    rag_context_used: int = 0
    finish_reason: str | None = None
    from_fallback: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StreamEvent:
        return cls(
            token=str(data.get("token", "")),
            done=bool(data.get("done", False)),
            usage=Usage.from_json(data.get("usage")),
            sources=sources_from_json(data.get("sources")),
            rag_context_used=int(data.get("rag_context_used") or 0),
            finish_reason=_opt_str(data.get("finish_reason")),
            raw=data,
        )


@dataclass(frozen=True)
class MemoryHit:
    """One result of a memory search, best first."""

    id: str
    text: str
    score: float | None = None
    speaker: str | None = None
    timestamp: str | None = None
    kind: str | None = None
    emotion: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MemoryHit:
        return cls(
            id=str(data.get("id", "")),
            text=str(data.get("text", "")),
            score=_opt_float(data.get("score")),
            speaker=_opt_str(data.get("speaker")),
            timestamp=_opt_str(data.get("timestamp")),
            kind=_opt_str(data.get("kind")),
            emotion=_opt_str(data.get("emotion")),
            raw=data,
        )
