"""Ollama requests → ``ChatJob``: ``options`` as sampling, ``format``, tools, messages.

Ollama's tool calls carry no ids: each assistant call gets one here, and each ``tool`` message
answers the first open call of its ``tool_name`` (or the first open call), so the chat layer
pairs them as it pairs OpenAI's. Images are base64 without a media type; it is read from the
image's first bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from gemma_service.api.image_fetch import check_image_reference
from gemma_service.api.ollama_protocol import (
    OllamaChatRequest,
    OllamaFormat,
    OllamaGenerateRequest,
    OllamaMessage,
    OllamaOptions,
)
from gemma_service.api.sampling import DEFAULT_TEMPERATURE, resolve_max_tokens
from gemma_service.chat.job import Caller, ChatJob, MemoryOptions, OutputFormat
from gemma_service.chat.messages import ChatMessage, ContentPart, ImagePart, PastToolCall, TextPart
from gemma_service.chat.structured import parse_tools
from gemma_service.config import ServiceSettings
from gemma_service.engine.protocol import SamplingParams
from gemma_service.errors import InvalidRequestError

# The first bytes of each image format Ollama clients send, base64-encoded.
_IMAGE_MAGIC = (
    ("iVBORw0KGgo", "image/png"),
    ("/9j/", "image/jpeg"),
    ("R0lGOD", "image/gif"),
    ("UklGR", "image/webp"),
)
# Sampling options this server cannot honour, and the value that means "off".
_NEUTRAL_OPTIONS = {"mirostat": 0, "typical_p": 1.0, "tfs_z": 1.0}


def ollama_sampling(
    options: OllamaOptions | None, settings: ServiceSettings, n_ctx: int
) -> SamplingParams:
    """``options`` as sampling, within the server's limits; defaults as the other APIs'."""
    o = options or OllamaOptions()
    for name, neutral in _NEUTRAL_OPTIONS.items():
        value = getattr(o, name)
        if value is not None and value != neutral:
            raise InvalidRequestError(
                f"options.{name} is not supported by this server (leave it unset)",
                param=f"options.{name}",
            )
    if o.num_ctx is not None and o.num_ctx > n_ctx:
        raise InvalidRequestError(
            f"options.num_ctx is {o.num_ctx}; this server's context is {n_ctx} tokens per "
            "request, set when it starts (GEMMA_CONTEXT_SIZE)",
            param="options.num_ctx",
        )
    if o.num_predict == 0:
        raise InvalidRequestError(
            "options.num_predict must be at least 1, or -1 for the server's default",
            param="options.num_predict",
        )
    requested = None if o.num_predict is None or o.num_predict < 0 else o.num_predict
    stop = [o.stop] if isinstance(o.stop, str) else list(o.stop or [])
    if any(not s for s in stop):
        raise InvalidRequestError("options.stop must not hold empty strings", param="options.stop")
    return SamplingParams(
        max_tokens=resolve_max_tokens(requested, settings, "options.num_predict"),
        temperature=DEFAULT_TEMPERATURE if o.temperature is None else o.temperature,
        top_p=1.0 if o.top_p is None else o.top_p,
        top_k=o.top_k or 0,
        min_p=o.min_p or 0.0,
        repetition_penalty=o.repeat_penalty or 1.0,
        presence_penalty=o.presence_penalty or 0.0,
        frequency_penalty=o.frequency_penalty or 0.0,
        seed=o.seed,
        stop=stop,
    )


def ollama_output(fmt: OllamaFormat) -> OutputFormat | None:
    """``format``: "json" is any JSON object; a schema is followed; "" is plain text."""
    if not fmt:
        return None
    if fmt == "json":
        return OutputFormat("json_object", param="format")
    return OutputFormat("json_schema", fmt, param="format", where="format")


def chat_job(
    body: OllamaChatRequest, settings: ServiceSettings, caller: Caller, n_ctx: int
) -> ChatJob:
    """An /api/chat request as a job."""
    return ChatJob(
        messages=ollama_messages(body.messages),
        sampling=ollama_sampling(body.options, settings, n_ctx),
        model=body.model,
        tools=parse_tools(body.tools or []),
        output=ollama_output(body.format),
        memory=_memory(body.use_rag, body.rag_top_k, body.conversation_id),
        caller=caller,
    )


def generate_job(
    body: OllamaGenerateRequest, settings: ServiceSettings, caller: Caller, n_ctx: int
) -> ChatJob:
    """An /api/generate request as a job: ``raw`` prompts go to the model as they are, others
    in the chat format (with ``system`` and ``images``)."""
    for name in ("suffix", "template"):
        if getattr(body, name):
            raise InvalidRequestError(f"'{name}' is not supported by this server", param=name)
    if body.context:
        raise InvalidRequestError(
            "'context' (token ids of an earlier answer) is not supported; use /api/chat with "
            "the earlier messages",
            param="context",
        )
    sampling = ollama_sampling(body.options, settings, n_ctx)
    output = ollama_output(body.format)
    if body.raw:
        if body.images:
            raise InvalidRequestError("a raw prompt cannot carry images", param="images")
        return ChatJob(
            prompt=body.prompt, sampling=sampling, model=body.model, output=output, caller=caller
        )
    messages = [ChatMessage.of("system", body.system)] if body.system else []
    parts: list[ContentPart] = [TextPart(body.prompt)]
    parts += _images(body.images or [], "images")
    messages.append(ChatMessage("user", parts))
    return ChatJob(
        messages=messages,
        sampling=sampling,
        model=body.model,
        output=output,
        memory=_memory(body.use_rag, body.rag_top_k, body.conversation_id),
        caller=caller,
    )


def ollama_messages(messages: Sequence[OllamaMessage]) -> list[ChatMessage]:
    """Ollama messages → chat messages, with ids given to tool calls and their results."""
    out: list[ChatMessage] = []
    open_calls: list[PastToolCall] = []
    for i, message in enumerate(messages):
        at = f"messages[{i}]"
        parts: list[ContentPart] = [TextPart(message.content)] if message.content else []
        parts += _images(message.images or [], f"{at}.images")
        if message.role == "assistant":
            calls = [
                _call(c, f"{at}.tool_calls[{j}]") for j, c in enumerate(message.tool_calls or [])
            ]
            open_calls = list(calls)
            out.append(ChatMessage("assistant", parts, calls))
        elif message.role == "tool":
            answered = _answered_call(open_calls, message.tool_name, at)
            out.append(ChatMessage("tool", parts, tool_call_id=answered.id, name=answered.name))
        else:
            out.append(ChatMessage(message.role, parts))
    return out


def _answered_call(open_calls: list[PastToolCall], name: str | None, at: str) -> PastToolCall:
    for call in open_calls:
        if name is None or call.name == name:
            open_calls.remove(call)
            return call
    problem = f"no open call of {name!r}" if name else "no open tool call"
    raise InvalidRequestError(
        f"{at}: a tool message answers a tool call of the assistant message before it; "
        f"there is {problem}",
        param=f"{at}.tool_name" if name else at,
    )


def _call(call: Any, at: str) -> PastToolCall:
    function = call.get("function") if isinstance(call, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(name, str) or not name:
        raise InvalidRequestError(f"{at}.function.name is required", param=f"{at}.function.name")
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):  # some clients send JSON text, as OpenAI does
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            arguments = None
    if not isinstance(arguments, dict):
        raise InvalidRequestError(
            f"{at}.function.arguments must be an object", param=f"{at}.function.arguments"
        )
    # Ids only pair calls with results inside this request; the index keeps them unique.
    return PastToolCall(f"call_{at}", name, cast(dict[str, Any], arguments))


def _images(images: Sequence[str], at: str) -> list[ContentPart]:
    return [
        ImagePart(image_data_url(b64, f"{at}[{k}]"), param=f"{at}[{k}]")
        for k, b64 in enumerate(images)
    ]


def image_data_url(image: str, param: str) -> str:
    """An Ollama image (base64, or already a data: URL) as a data: URL with its type."""
    if image.startswith("data:"):
        url = image
    else:
        media_type = next((t for magic, t in _IMAGE_MAGIC if image.startswith(magic)), None)
        if media_type is None:
            raise InvalidRequestError(
                f"{param} must be a base64 PNG, JPEG, GIF or WebP image", param=param
            )
        url = f"data:{media_type};base64,{image}"
    try:
        check_image_reference(url)
    except InvalidRequestError as exc:
        raise InvalidRequestError(exc.message, param=param, code=exc.code) from None
    return url


def _memory(use_rag: bool, rag_top_k: int, conversation_id: str | None) -> MemoryOptions:
    return MemoryOptions(use_rag=use_rag, rag_top_k=rag_top_k, conversation_id=conversation_id)
