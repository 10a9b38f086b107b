"""An OpenAI message list with tool calls and results → plain prompt turns, after checking it.

Past calls are rendered in the assistant turn exactly as the model writes them, results as
``<tool_response name="...">`` blocks in a user turn. A malformed history is a 400 that names
the offending field (``messages[3].tool_call_id``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from gemma_service.chat.prompt import Message
from gemma_service.chat.structured.tool_specs import format_tool_call, format_tool_result
from gemma_service.errors import InvalidRequestError

_PLAIN_ROLES = {"system": "system", "developer": "system", "user": "user"}


def messages_to_turns(messages: Sequence[Mapping[str, Any]]) -> list[Message]:
    """Turns with roles system/user/assistant; tool results become user turns."""
    history = _ToolCallLedger()
    turns: list[Message] = []
    previous_role = None
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, Mapping):
            raise InvalidRequestError(f"{where} must be an object", param=where)
        role = message.get("role")
        if role == "tool":
            text = history.answer(message, where)
            if previous_role == "tool":  # results of one round of calls share a turn
                turns[-1] = Message("user", f"{turns[-1].content}\n{text}")
            else:
                turns.append(Message("user", text))
        else:
            history.require_all_answered()
            if role == "assistant":
                turns.append(Message("assistant", _assistant_text(message, where, history)))
            elif role in _PLAIN_ROLES:
                turns.append(Message(_PLAIN_ROLES[role], content_text(message, where)))
            else:
                raise InvalidRequestError(
                    f"{where}.role {role!r} is not supported", param=f"{where}.role"
                )
        previous_role = role
    history.require_all_answered()
    return turns


def content_text(message: Mapping[str, Any], where: str) -> str:
    """A message's content as text: a string, or its text parts joined by newlines."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"{where}.content must be a string or a list of parts", param=f"{where}.content"
        )
    texts = []
    for k, part in enumerate(content):
        if not (
            isinstance(part, Mapping)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        ):
            raise InvalidRequestError(
                f"{where}.content[{k}]: only text parts are supported",
                param=f"{where}.content[{k}]",
            )
        texts.append(part["text"])
    return "\n".join(texts)


def _assistant_text(message: Mapping[str, Any], where: str, history: _ToolCallLedger) -> str:
    text = content_text(message, where).strip()
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise InvalidRequestError(f"{where}.tool_calls must be a list", param=f"{where}.tool_calls")
    lines = [history.record_call(call, f"{where}.tool_calls[{j}]") for j, call in enumerate(calls)]
    return "\n".join([text, *lines] if text else lines)


class _ToolCallLedger:
    """Tracks calls awaiting results: each tool message must answer one call of the assistant
    message just before it, and every call must be answered before the conversation moves on."""

    def __init__(self) -> None:
        self._awaiting: dict[str, tuple[str, str]] = {}  # id -> (function name, where)
        self._seen_ids: set[str] = set()
        self._answered: set[str] = set()

    def record_call(self, call: Any, where: str) -> str:
        """Check one entry of an assistant's ``tool_calls``; returns its text for the prompt."""
        if not isinstance(call, Mapping):
            raise InvalidRequestError(f"{where} must be an object", param=where)
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequestError(f"{where}.id is required", param=f"{where}.id")
        if call_id in self._seen_ids:
            raise InvalidRequestError(
                f"{where}.id {call_id!r} is used by an earlier tool call", param=f"{where}.id"
            )
        if call.get("type", "function") != "function":
            raise InvalidRequestError(f"{where}.type must be 'function'", param=f"{where}.type")
        function = call.get("function")
        if not isinstance(function, Mapping) or not function.get("name"):
            raise InvalidRequestError(
                f"{where}.function.name is required", param=f"{where}.function.name"
            )
        name = str(function["name"])
        arguments = _arguments_object(function, f"{where}.function.arguments")
        self._seen_ids.add(call_id)
        self._awaiting[call_id] = (name, where)
        return format_tool_call(name, arguments)

    def answer(self, message: Mapping[str, Any], where: str) -> str:
        """Check a ``tool`` message against the open calls; returns its text for the prompt."""
        call_id = message.get("tool_call_id")
        param = f"{where}.tool_call_id"
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequestError(f"{param} is required for a tool message", param=param)
        if call_id not in self._awaiting:
            if call_id in self._answered:
                problem = "already has a tool message answering it"
            else:
                problem = "does not match any tool call of the preceding assistant message"
            raise InvalidRequestError(f"{param}: tool call {call_id!r} {problem}", param=param)
        name, _ = self._awaiting.pop(call_id)
        self._answered.add(call_id)
        return format_tool_result(name, content_text(message, where))

    def require_all_answered(self) -> None:
        """Raise if some call of the last assistant message has no tool message yet."""
        if not self._awaiting:
            return
        where = next(iter(self._awaiting.values()))[1].rsplit(".", 1)[0]
        missing = ", ".join(repr(call_id) for call_id in self._awaiting)
        raise InvalidRequestError(
            f"{where}: an assistant message with tool_calls must be followed by a tool message "
            f"answering each call; missing: {missing}",
            param=where,
        )


def _arguments_object(function: Mapping[str, Any], param: str) -> dict[str, Any]:
    arguments = function.get("arguments")
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
    return parsed
