"""Structured output and tool calling at the HTTP edge: request fields → the chat layer's
``StructuredChat`` or a grammar, and replies → OpenAI ``message.tool_calls``."""

from __future__ import annotations

from typing import Any

from gemma_service.api.openai_protocol import ChatCompletionRequest, ResponseFormat
from gemma_service.api.openai_responses import openai_finish_reason
from gemma_service.chat.prompt import Message
from gemma_service.chat.service import Completion
from gemma_service.chat.structured import response_format_grammar
from gemma_service.chat.structured_chat import ChatReply, StructuredChat, structure_chat


def response_format_dict(response_format: ResponseFormat | None) -> dict[str, Any] | None:
    """The object as the client sent it (``json_schema.schema`` under its own name)."""
    return None if response_format is None else response_format.model_dump(by_alias=True)


def grammar_for(response_format: ResponseFormat | None) -> str | None:
    """The grammar of a ``response_format`` (None: plain text); 400 on a schema we cannot
    enforce, naming the keyword."""
    return response_format_grammar(response_format_dict(response_format))


def structured_chat(body: ChatCompletionRequest, messages: list[Message]) -> StructuredChat:
    """Apply the request's tools, tool_choice and response_format to its prompt turns."""
    tool_choice = body.tool_choice
    return structure_chat(
        messages,
        tools=[tool.model_dump(by_alias=True) for tool in body.tools or []],
        tool_choice=tool_choice
        if isinstance(tool_choice, str | None)
        else tool_choice.model_dump(),
        parallel=body.parallel_tool_calls,
        response_format=response_format_dict(body.response_format),
    )


def message_body(reply: ChatReply) -> dict[str, Any]:
    """``choices[i].message`` of a chat completion."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [call.to_openai() for call in reply.tool_calls]
    return message


def with_tool_calls(
    body: dict[str, Any], plan: StructuredChat, completions: list[Completion]
) -> dict[str, Any]:
    """A chat completion body with each choice's tool calls split out of its text."""
    if not plan.reads_tool_calls:
        return body
    for choice, completion in zip(body["choices"], completions, strict=True):
        reply = plan.reply(completion.text, completion.finish_reason)
        choice["message"] = message_body(reply)
        choice["finish_reason"] = openai_finish_reason(reply.finish_reason)
    return body
