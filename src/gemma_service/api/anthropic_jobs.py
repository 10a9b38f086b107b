"""Anthropic Messages requests → ``ChatJob``: what only the Messages protocol can check and name.

``system`` (a string or text blocks) leads; content blocks become message parts: ``text``,
``image`` (base64 or a URL), an assistant's ``tool_use`` (a past call), a user's
``tool_result`` (a tool message answering it; results come before the user's own text, as the
API orders them); ``thinking`` blocks of earlier turns are context the model does not re-read.
Tools (``input_schema``) and ``tool_choice`` (auto, any, tool, none) become the chat layer's;
``output_config.format`` (a JSON schema) is the output format.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from gemma_service.api.anthropic_protocol import CountTokensRequest, MessagesRequest
from gemma_service.api.image_fetch import check_image_reference
from gemma_service.api.protocols import renamed_fields
from gemma_service.api.sampling import DEFAULT_TEMPERATURE, resolve_max_tokens
from gemma_service.chat.job import Caller, ChatJob, MemoryOptions, OutputFormat
from gemma_service.chat.messages import (
    ChatMessage,
    ContentPart,
    ImagePart,
    PastToolCall,
    TextPart,
)
from gemma_service.chat.structured import FunctionTool, ToolChoice, parse_tool_choice, parse_tools
from gemma_service.config import ServiceSettings
from gemma_service.engine.protocol import SamplingParams
from gemma_service.errors import InvalidRequestError

_SKIPPED_BLOCKS = ("thinking", "redacted_thinking")
# Anthropic's tool_choice types in OpenAI's terms ("tool" names one function).
_CHOICES = {"auto": "auto", "any": "required", "none": "none", "tool": "function"}


def anthropic_job(body: MessagesRequest, settings: ServiceSettings, caller: Caller) -> ChatJob:
    """A Messages request as a job."""
    max_tokens = resolve_max_tokens(body.max_tokens, settings, "max_tokens")
    job = count_tokens_job(body, caller)
    job.sampling = SamplingParams(
        max_tokens=max_tokens,
        temperature=DEFAULT_TEMPERATURE if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        top_k=body.top_k or 0,
        seed=body.seed,
        stop=list(body.stop_sequences or []),
    )
    fmt = body.output_config.format if body.output_config is not None else None
    if fmt is not None:
        job.output = OutputFormat(
            "json_schema",
            fmt.schema_,
            param="output_config.format",
            where="output_config.format.schema",
        )
    return job


def count_tokens_job(body: CountTokensRequest, caller: Caller) -> ChatJob:
    """The job whose prompt ``count_tokens`` measures (also the base of a Messages job)."""
    tools, choice, parallel = _tools(body)
    return ChatJob(
        messages=anthropic_messages(body),
        model=body.model,
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=parallel,
        memory=MemoryOptions(
            use_rag=body.use_rag,
            rag_top_k=body.rag_top_k,
            conversation_id=body.conversation_id,
        ),
        caller=caller,
    )


def anthropic_messages(body: CountTokensRequest) -> list[ChatMessage]:
    out = [ChatMessage.of("system", system_text(body.system))] if body.system else []
    for index, message in enumerate(body.messages):
        at = f"messages[{index}]"
        if isinstance(message.content, str):
            out.append(ChatMessage.of(message.role, message.content))
        elif message.role == "assistant":
            out.append(_assistant(message.content, at))
        else:
            out.extend(_user(message.content, at))
    return out


def system_text(system: str | list[dict[str, Any]] | None) -> str:
    """``system`` as one text: a string, or text blocks joined by blank lines."""
    if system is None or isinstance(system, str):
        return system or ""
    texts: list[str] = []
    for k, block in enumerate(system):
        if block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise InvalidRequestError(f"system[{k}] must be a text block", param=f"system[{k}]")
        texts.append(block["text"])
    return "\n\n".join(texts)


def _assistant(blocks: list[dict[str, Any]], at: str) -> ChatMessage:
    parts: list[ContentPart] = []
    calls: list[PastToolCall] = []
    for k, block in enumerate(blocks):
        where = f"{at}.content[{k}]"
        kind = block.get("type")
        if kind == "text":
            parts.append(TextPart(_text(block, where)))
        elif kind == "tool_use":
            calls.append(_tool_use(block, where))
        elif kind not in _SKIPPED_BLOCKS:
            raise _unsupported(kind, where, "text, tool_use and thinking")
    return ChatMessage("assistant", parts, calls)


def _user(blocks: list[dict[str, Any]], at: str) -> list[ChatMessage]:
    results: list[ChatMessage] = []
    parts: list[ContentPart] = []
    for k, block in enumerate(blocks):
        where = f"{at}.content[{k}]"
        kind = block.get("type")
        if kind == "text":
            parts.append(TextPart(_text(block, where)))
        elif kind == "image":
            parts.append(_image(block, where))
        elif kind == "tool_result":
            results.append(_tool_result(block, where))
        else:
            raise _unsupported(kind, where, "text, image and tool_result")
    return [*results, ChatMessage("user", parts)] if parts or not results else results


def _text(block: Mapping[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequestError(f"{where}.text must be a string", param=f"{where}.text")
    return text


def _image(block: Mapping[str, Any], where: str) -> ImagePart:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, Mapping) else None
    if kind == "base64" and isinstance(source, Mapping):
        media_type, data = source.get("media_type"), source.get("data")
        if not isinstance(media_type, str) or not isinstance(data, str) or not data:
            raise InvalidRequestError(
                f"{where}.source needs media_type and data", param=f"{where}.source"
            )
        url = f"data:{media_type};base64,{data}"
    elif kind == "url" and isinstance(source, Mapping) and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise InvalidRequestError(
            f"{where}.source must be a base64 or url image source", param=f"{where}.source"
        )
    try:
        check_image_reference(url)
    except InvalidRequestError as exc:
        raise InvalidRequestError(exc.message, param=f"{where}.source", code=exc.code) from None
    return ImagePart(url, param=where)


def _tool_use(block: Mapping[str, Any], where: str) -> PastToolCall:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError(f"{where}.id is required", param=f"{where}.id")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(f"{where}.name is required", param=f"{where}.name")
    if not isinstance(arguments, dict):
        raise InvalidRequestError(f"{where}.input must be an object", param=f"{where}.input")
    return PastToolCall(call_id, name, cast(dict[str, Any], arguments))


def _tool_result(block: Mapping[str, Any], where: str) -> ChatMessage:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError(f"{where}.tool_use_id is required", param=f"{where}.tool_use_id")
    content = block.get("content", "")
    parts: list[ContentPart]
    if isinstance(content, str):
        parts = [TextPart(content)]
    elif isinstance(content, list):
        parts = []
        for j, inner in enumerate(content):
            at = f"{where}.content[{j}]"
            kind = inner.get("type") if isinstance(inner, Mapping) else None
            if kind == "text":
                parts.append(TextPart(_text(inner, at)))
            elif kind == "image":
                parts.append(_image(inner, at))
            else:
                raise _unsupported(kind, at, "text and image")
    else:
        raise InvalidRequestError(
            f"{where}.content must be a string or a list of blocks", param=f"{where}.content"
        )
    if block.get("is_error") is True:
        parts = [TextPart("Error:"), *parts]
    return ChatMessage("tool", parts, tool_call_id=call_id)


def _unsupported(kind: Any, where: str, supported: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{where}: content blocks of type {kind!r} are not supported here ({supported})",
        param=f"{where}.type",
    )


def _tools(body: CountTokensRequest) -> tuple[list[FunctionTool], ToolChoice | None, bool]:
    """``tools`` and ``tool_choice`` in the chat layer's terms, errors named as Anthropic's."""
    specs = []
    for i, tool in enumerate(body.tools or []):
        if tool.get("type", "custom") != "custom":
            raise InvalidRequestError(
                f"tools[{i}]: tools of type {tool.get('type')!r} are not supported; "
                "only client tools (name, description, input_schema) are",
                param=f"tools[{i}].type",
            )
        function = {"name": tool.get("name"), "description": tool.get("description")}
        if "input_schema" in tool:
            function["parameters"] = tool["input_schema"]
        specs.append({"type": "function", "function": function})
    choice = body.tool_choice or {}
    mode = choice.get("type")
    if mode is not None and mode not in _CHOICES:
        raise InvalidRequestError(
            "tool_choice.type must be auto, any, tool or none", param="tool_choice.type"
        )
    try:
        tools = parse_tools(specs)
        if mode is None:
            return tools, None, True
        named = {"type": "function", "function": {"name": choice.get("name")}}
        parsed = parse_tool_choice(named if mode == "tool" else _CHOICES[mode], tools)
    except InvalidRequestError as exc:
        exc = renamed_fields(exc, ".function.parameters", ".input_schema")
        raise renamed_fields(exc, ".function.", ".") from None
    return tools, parsed, choice.get("disable_parallel_tool_use") is not True
