"""OpenAI request bodies → ``ChatJob``: what only the OpenAI protocol can check and name.

Messages become protocol-neutral ``ChatMessage``s (content parts, past tool calls with their
arguments parsed); tools, ``tool_choice`` and ``response_format`` become the chat layer's
types; sampling fields are checked against the server's limits. A malformed field is a 400
naming it in OpenAI's terms (``messages[2].tool_calls[0].function.arguments``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from gemma_service.api.image_fetch import check_image_reference
from gemma_service.api.openai_protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    ResponseFormat,
)
from gemma_service.api.sampling import resolve_max_tokens, sampling_from
from gemma_service.chat.job import Caller, ChatJob, MemoryOptions, OutputFormat
from gemma_service.chat.messages import (
    AudioPart,
    ChatMessage,
    ContentPart,
    ImagePart,
    PastToolCall,
    Role,
    TextPart,
)
from gemma_service.chat.structured import parse_tool_choice, parse_tools
from gemma_service.chat.thinking import ThinkingOptions
from gemma_service.config import ServiceSettings
from gemma_service.errors import InvalidRequestError

_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}


def chat_job(body: ChatCompletionRequest, settings: ServiceSettings, caller: Caller) -> ChatJob:
    """A chat completion request as a job."""
    param = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
    max_tokens = resolve_max_tokens(body.max_completion_tokens or body.max_tokens, settings, param)
    sampling = sampling_from(
        body,
        settings,
        max_tokens=max_tokens,
        logprobs=body.logprobs,
        top_logprobs=body.top_logprobs or 0,
    )
    tools = parse_tools([tool.model_dump(by_alias=True) for tool in body.tools or []])
    choice = body.tool_choice
    return ChatJob(
        messages=openai_messages([m.model_dump(exclude_none=True) for m in body.messages]),
        sampling=sampling,
        n=body.n,
        model=body.model,
        tools=tools,
        tool_choice=None
        if choice is None
        else parse_tool_choice(choice if isinstance(choice, str) else choice.model_dump(), tools),
        parallel_tool_calls=body.parallel_tool_calls,
        output=output_format(body.response_format),
        thinking=ThinkingOptions(
            enabled=None
            if body.reasoning_effort is None
            else body.reasoning_effort not in ("none", "minimal"),
            budget_tokens=body.max_thinking_tokens,
        ),
        template_kwargs=dict(body.chat_template_kwargs or {}),
        memory=MemoryOptions(
            use_rag=body.use_rag,
            rag_top_k=body.rag_top_k,
            context_documents=list(body.context or []),
            conversation_id=body.conversation_id,
        ),
        caller=caller,
        priority=body.priority,
    )


def completion_job(body: CompletionRequest, settings: ServiceSettings, caller: Caller) -> ChatJob:
    """A (raw prompt) completion request as a job."""
    if body.suffix:
        raise InvalidRequestError("'suffix' (fill-in-the-middle) is not supported", param="suffix")
    if body.grammar is not None and body.response_format is not None:
        raise InvalidRequestError(
            "'grammar' and 'response_format' cannot both be set", param="grammar"
        )
    max_tokens = resolve_max_tokens(body.max_tokens, settings, "max_tokens")
    sampling = sampling_from(
        body,
        settings,
        max_tokens=max_tokens,
        logprobs=body.logprobs is not None,
        top_logprobs=body.logprobs or 0,
    )
    sampling.grammar = body.grammar
    prompt = body.prompt
    raw: str | list[int]
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
        raw = [int(t) for t in prompt]
    else:
        raw = prompt if isinstance(prompt, str) else str(prompt[0])
    return ChatJob(
        prompt=raw,
        sampling=sampling,
        n=body.n,
        model=body.model,
        output=output_format(body.response_format),
        caller=caller,
        priority=body.priority,
    )


def output_format(response_format: ResponseFormat | None) -> OutputFormat | None:
    """``response_format`` as the chat layer's ``OutputFormat``."""
    if response_format is None:
        return None
    schema = response_format.json_schema.schema_ if response_format.json_schema else None
    return OutputFormat(response_format.type, schema)


def openai_messages(messages: Sequence[Mapping[str, Any]]) -> list[ChatMessage]:
    """OpenAI ``messages`` (as JSON objects) → chat messages, checking their shape."""
    out: list[ChatMessage] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, Mapping):
            raise InvalidRequestError(f"{where} must be an object", param=where)
        role = _ROLES.get(str(message.get("role")))
        if role is None:
            raise InvalidRequestError(
                f"{where}.role {message.get('role')!r} is not supported", param=f"{where}.role"
            )
        calls = message.get("tool_calls") or []
        if not isinstance(calls, list):
            raise InvalidRequestError(
                f"{where}.tool_calls must be a list", param=f"{where}.tool_calls"
            )
        call_id, name = message.get("tool_call_id"), message.get("name")
        reasoning = message.get("reasoning_content")
        out.append(
            ChatMessage(
                role,
                content_parts(message.get("content"), where),
                [_past_call(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(calls)],
                call_id if isinstance(call_id, str) else None,
                name if isinstance(name, str) else None,
                reasoning if role == "assistant" and isinstance(reasoning, str) else None,
            )
        )
    return out


def content_parts(content: Any, where: str) -> list[ContentPart]:
    """A message's ``content``: a string, or a list of text, image_url and input_audio parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"{where}.content must be a string or a list of parts", param=f"{where}.content"
        )
    return [_part(part, f"{where}.content[{k}]") for k, part in enumerate(content)]


def _part(part: Any, where: str) -> ContentPart:
    kind = part.get("type") if isinstance(part, Mapping) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return TextPart(part["text"])
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else None
        if not isinstance(url, str) or not url:
            raise InvalidRequestError(
                "an 'image_url' part needs image_url.url", param=where, code="invalid_value"
            )
        try:
            check_image_reference(url)
        except InvalidRequestError as exc:
            raise InvalidRequestError(
                exc.message, param=f"{where}.image_url.url", code=exc.code
            ) from None
        return ImagePart(url, param=where)
    if kind == "input_audio":
        audio = part.get("input_audio")
        if isinstance(audio, Mapping) and isinstance(audio.get("data"), str):
            return AudioPart(audio["data"], str(audio.get("format", "wav")), param=where)
        raise InvalidRequestError(
            "an 'input_audio' part needs input_audio.data", param=where, code="invalid_value"
        )
    raise InvalidRequestError(
        f"this model takes text only; it cannot take {kind or 'this'!r} content",
        param=where,
        code="unsupported_content",
    )


def _past_call(call: Any, where: str) -> PastToolCall:
    """One entry of an assistant message's ``tool_calls``."""
    if not isinstance(call, Mapping):
        raise InvalidRequestError(f"{where} must be an object", param=where)
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError(f"{where}.id is required", param=f"{where}.id")
    if call.get("type", "function") != "function":
        raise InvalidRequestError(f"{where}.type must be 'function'", param=f"{where}.type")
    function = call.get("function")
    if not isinstance(function, Mapping) or not function.get("name"):
        raise InvalidRequestError(
            f"{where}.function.name is required", param=f"{where}.function.name"
        )
    arguments = _arguments_object(function.get("arguments"), f"{where}.function.arguments")
    return PastToolCall(call_id, str(function["name"]), arguments)


def _arguments_object(arguments: Any, param: str) -> dict[str, Any]:
    if not isinstance(arguments, str):
        raise InvalidRequestError(f"{param} must be a string of JSON", param=param)
    if not arguments.strip():  # some clients send "" for a call without arguments
        return {}
    try:
        parsed = json.loads(arguments)
    except ValueError as exc:
        raise InvalidRequestError(f"{param} is not valid JSON: {exc}", param=param) from None
    if not isinstance(parsed, dict):
        raise InvalidRequestError(f"{param} must be a JSON object", param=param)
    return cast(dict[str, Any], parsed)
