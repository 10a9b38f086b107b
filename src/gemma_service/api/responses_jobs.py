"""Responses API requests → ``ChatJob``: what only the Responses protocol can check and name.

``input`` items become chat messages: messages (``input_text``, ``input_image``,
``input_audio``; an assistant's ``output_text``), ``function_call`` items join the assistant
turn before them, ``function_call_output`` items answer them, ``reasoning`` items are context
the model does not re-read. Function tools, ``tool_choice`` and ``text.format`` become the chat
layer's types. The items of a stored response (``previous_response_id``) come first; the new
``instructions`` lead, as OpenAI does (the earlier ones are not carried over).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from gemma_service.api.image_fetch import check_image_reference
from gemma_service.api.protocols import renamed_fields
from gemma_service.api.responses_protocol import ResponsesRequest, TextConfig
from gemma_service.api.sampling import DEFAULT_TEMPERATURE, resolve_max_tokens
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
from gemma_service.chat.structured import FunctionTool, ToolChoice, parse_tool_choice, parse_tools
from gemma_service.config import ServiceSettings
from gemma_service.engine.protocol import SamplingParams
from gemma_service.errors import InvalidRequestError

_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
}
_TEXT_PARTS = ("input_text", "output_text", "text", "refusal")


@dataclass(slots=True)
class ResponsesJob:
    """The job, and this request's input as items (a string input becomes one message)."""

    job: ChatJob
    input_items: list[dict[str, Any]]


def responses_job(
    body: ResponsesRequest,
    settings: ServiceSettings,
    caller: Caller,
    previous_items: Sequence[Mapping[str, Any]] = (),
) -> ResponsesJob:
    """A Responses request as a job, continuing ``previous_items`` (a stored response's)."""
    if body.background:
        raise InvalidRequestError("background responses are not supported", param="background")
    if body.previous_response_id and body.conversation_id:
        raise InvalidRequestError(
            "use previous_response_id or conversation_id, not both", param="conversation_id"
        )
    items = input_items(body.input)
    messages = [ChatMessage.of("system", body.instructions)] if body.instructions else []
    messages += item_messages(previous_items, "previous_response_id")
    messages += item_messages(items, "input")
    try:
        tools = parse_tools(
            [_openai_tool(t, f"tools[{i}]") for i, t in enumerate(body.tools or [])]
        )
        choice = _tool_choice(body.tool_choice, tools)
    except InvalidRequestError as exc:  # Responses tools are flat: tools[0].name
        raise renamed_fields(exc, ".function.", ".") from None
    max_tokens = resolve_max_tokens(body.max_output_tokens, settings, "max_output_tokens")
    return ResponsesJob(
        ChatJob(
            messages=messages,
            sampling=SamplingParams(
                max_tokens=max_tokens,
                temperature=DEFAULT_TEMPERATURE if body.temperature is None else body.temperature,
                top_p=1.0 if body.top_p is None else body.top_p,
                top_k=body.top_k or 0,
                seed=body.seed,
            ),
            model=body.model,
            tools=tools,
            tool_choice=choice,
            parallel_tool_calls=body.parallel_tool_calls,
            output=text_output(body.text),
            memory=MemoryOptions(
                use_rag=body.use_rag,
                rag_top_k=body.rag_top_k,
                conversation_id=body.conversation_id,
            ),
            caller=caller,
        ),
        items,
    )


def input_items(value: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``input`` as a list of items."""
    if isinstance(value, str):
        if not value:
            raise InvalidRequestError("'input' must not be empty", param="input")
        part = {"type": "input_text", "text": value}
        return [{"type": "message", "role": "user", "content": [part]}]
    if not value:
        raise InvalidRequestError("'input' must not be empty", param="input")
    return list(value)


def item_messages(items: Sequence[Mapping[str, Any]], where: str) -> list[ChatMessage]:
    """Items → chat messages (function calls join the assistant turn before them)."""
    out: list[ChatMessage] = []
    for index, item in enumerate(items):
        at = f"{where}[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidRequestError(f"{at} must be an object", param=at)
        kind = item.get("type", "message")
        if kind == "message":
            out.append(_message(item, at))
        elif kind == "function_call":
            call = _function_call(item, at)
            if out and out[-1].role == "assistant":
                out[-1].tool_calls.append(call)
            else:
                out.append(ChatMessage("assistant", [], [call]))
        elif kind == "function_call_output":
            call_id = _required_text(item, "call_id", at)
            out.append(ChatMessage("tool", [TextPart(_output_text(item, at))], [], call_id))
        elif kind == "reasoning":
            continue  # the model's earlier thinking: context it does not re-read
        else:
            raise InvalidRequestError(
                f"{at}.type {kind!r} is not supported; send message, function_call and "
                "function_call_output items",
                param=f"{at}.type",
                code="unsupported_value",
            )
    return out


def _message(item: Mapping[str, Any], at: str) -> ChatMessage:
    role = _ROLES.get(str(item.get("role")))
    if role is None:
        raise InvalidRequestError(
            f"{at}.role must be user, assistant, system or developer", param=f"{at}.role"
        )
    content = item.get("content")
    if isinstance(content, str):
        return ChatMessage(role, [TextPart(content)] if content else [])
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"{at}.content must be a string or a list of parts", param=f"{at}.content"
        )
    return ChatMessage(role, [_part(p, f"{at}.content[{k}]") for k, p in enumerate(content)])


def _part(part: Any, at: str) -> ContentPart:
    kind = part.get("type") if isinstance(part, Mapping) else None
    if not isinstance(part, Mapping) or kind is None:
        raise InvalidRequestError(f"{at} must be an object with a 'type'", param=at)
    if kind in _TEXT_PARTS:
        text = part.get("refusal" if kind == "refusal" else "text")
        if not isinstance(text, str):
            raise InvalidRequestError(f"{at}.text must be a string", param=f"{at}.text")
        return TextPart(text)
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise InvalidRequestError(
                f"{at} needs image_url (a data: URL or an http(s) URL); file_id is not supported",
                param=f"{at}.image_url",
                code="invalid_value",
            )
        try:
            check_image_reference(url)
        except InvalidRequestError as exc:
            raise InvalidRequestError(exc.message, param=f"{at}.image_url", code=exc.code) from None
        return ImagePart(url, param=at)
    if kind == "input_audio":
        audio = part.get("input_audio")
        if isinstance(audio, Mapping) and isinstance(audio.get("data"), str):
            return AudioPart(audio["data"], str(audio.get("format", "wav")), param=at)
        raise InvalidRequestError(
            f"{at} needs input_audio.data", param=f"{at}.input_audio", code="invalid_value"
        )
    raise InvalidRequestError(
        f"{at}.type {kind!r} is not supported here (input_text, input_image, input_audio)",
        param=f"{at}.type",
        code="unsupported_content",
    )


def _function_call(item: Mapping[str, Any], at: str) -> PastToolCall:
    call_id = _required_text(item, "call_id", at)
    name = _required_text(item, "name", at)
    arguments = item.get("arguments", "")
    param = f"{at}.arguments"
    if not isinstance(arguments, str):
        raise InvalidRequestError(f"{param} must be a string of JSON", param=param)
    parsed: Any = {}
    if arguments.strip():
        try:
            parsed = json.loads(arguments)
        except ValueError as exc:
            raise InvalidRequestError(f"{param} is not valid JSON: {exc}", param=param) from None
    if not isinstance(parsed, dict):
        raise InvalidRequestError(f"{param} must be a JSON object", param=param)
    return PastToolCall(call_id, name, cast(dict[str, Any], parsed))


def _output_text(item: Mapping[str, Any], at: str) -> str:
    """A function's output: a string, or a list of text parts."""
    output = item.get("output")
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        texts = [p.get("text") for p in output if isinstance(p, Mapping)]
        if len(texts) == len(output) and all(isinstance(t, str) for t in texts):
            return "\n".join(cast(list[str], texts))
    raise InvalidRequestError(
        f"{at}.output must be a string or a list of input_text parts", param=f"{at}.output"
    )


def _required_text(item: Mapping[str, Any], key: str, at: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"{at}.{key} is required", param=f"{at}.{key}")
    return value


def _openai_tool(tool: Mapping[str, Any], at: str) -> dict[str, Any]:
    """A Responses function tool (flat) in Chat Completions' shape, which parse_tools reads."""
    if tool.get("type") != "function":
        raise InvalidRequestError(
            f"{at}.type {tool.get('type')!r} is not supported; only function tools are",
            param=f"{at}.type",
            code="unsupported_value",
        )
    function = {k: tool[k] for k in ("name", "description", "parameters") if k in tool}
    return {"type": "function", "function": function}


def _tool_choice(
    choice: str | dict[str, Any] | None, tools: list[FunctionTool]
) -> ToolChoice | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        return parse_tool_choice(choice, tools)
    if choice.get("type") == "function" and "function" not in choice:
        # Responses names the function at the top level: {"type": "function", "name": ...}
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    return parse_tool_choice(choice, tools)


def text_output(text: TextConfig | None) -> OutputFormat | None:
    """``text.format`` as the chat layer's ``OutputFormat``."""
    if text is None or text.format is None or text.format.type == "text":
        return None
    fmt = text.format
    if fmt.type == "json_schema" and fmt.schema_ is None:
        raise InvalidRequestError(
            "text.format of type 'json_schema' needs a schema", param="text.format.schema"
        )
    return OutputFormat(fmt.type, fmt.schema_, param="text.format", where="text.format.schema")
