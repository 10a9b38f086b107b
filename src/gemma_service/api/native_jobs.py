"""Native API request bodies (/chat, /chat/stream, /generate) → ``ChatJob``."""

from __future__ import annotations

from typing import Literal

from gemma_service.api.native_protocol import (
    GenerateRequest,
    NativeAudio,
    NativeChatRequest,
    NativeMessage,
)
from gemma_service.api.openai_jobs import output_format
from gemma_service.api.sampling import resolve_max_tokens
from gemma_service.chat.job import Caller, ChatJob, MemoryOptions
from gemma_service.chat.messages import AudioPart, ChatMessage, ContentPart, ImagePart, TextPart
from gemma_service.chat.thinking import ThinkingOptions
from gemma_service.config import ServiceSettings
from gemma_service.engine.protocol import SamplingParams


def native_chat_job(body: NativeChatRequest, settings: ServiceSettings, caller: Caller) -> ChatJob:
    """A /chat or /chat/stream request as a job (with the seed-000 memory fields)."""
    max_tokens = resolve_max_tokens(body.max_tokens, settings, "max_tokens")
    return ChatJob(
        messages=[_message(m, f"messages[{i}]") for i, m in enumerate(body.messages)],
        sampling=_sampling(body, max_tokens, []),
        thinking=ThinkingOptions(enabled=body.think),
        memory=MemoryOptions(
            use_rag=body.use_rag,
            rag_top_k=body.rag_top_k,
            context_documents=list(body.context),
            conversation_id=body.conversation_id,
        ),
        model=body.model,
        caller=caller,
    )


def _message(message: NativeMessage, where: str) -> ChatMessage:
    """Text first, then the message's images, then its audio (each named for errors)."""
    parts: list[ContentPart] = [TextPart(message.content)] if message.content else []
    for k, image in enumerate(message.images):
        url = image if image.startswith("data:") else f"data:image/*;base64,{image}"
        parts.append(ImagePart(url, param=f"{where}.images[{k}]"))
    for k, clip in enumerate(message.audio):
        audio = (
            clip if isinstance(clip, NativeAudio) else NativeAudio(data=clip, format=sniff(clip))
        )
        parts.append(AudioPart(audio.data, audio.format, param=f"{where}.audio[{k}]"))
    return ChatMessage(message.role, parts)


def sniff(data: str) -> Literal["wav", "mp3", "flac"]:
    """The format of base64 audio from its first bytes (WAV, FLAC; else MP3)."""
    if data.startswith("UklGR"):  # "RIFF"
        return "wav"
    if data.startswith("ZkxhQ"):  # "fLaC"
        return "flac"
    return "mp3"


def generate_job(body: GenerateRequest, settings: ServiceSettings, caller: Caller) -> ChatJob:
    """A /generate request (raw prompt, no chat format) as a job."""
    max_tokens = resolve_max_tokens(body.max_tokens, settings, "max_tokens")
    return ChatJob(
        prompt=body.prompt,
        sampling=_sampling(body, max_tokens, list(body.stop or [])),
        output=output_format(body.response_format),
        model=body.model,
        caller=caller,
    )


def _sampling(
    body: NativeChatRequest | GenerateRequest, max_tokens: int, stop: list[str]
) -> SamplingParams:
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        seed=body.seed,
        stop=stop,
    )
