"""A chat's messages with tool calls and results → prompt turns, after checking them.

For a chat template that writes calls itself (Gemma 4's), calls and results stay structured:
the assistant turn keeps its calls, a ``tool`` turn names the call it answers and its function.
Otherwise past calls are rendered in the assistant turn exactly as the model writes them, and
results as ``<tool_response name="...">`` blocks in a user turn. A history whose calls and
results do not match is a 400 that names the offending message (``messages[3].tool_call_id``).
The protocol's parser has already checked the shape of each call (ids, names, JSON arguments).
"""

from __future__ import annotations

from collections.abc import Sequence

from gemma_service.chat.messages import ChatMessage, PastToolCall
from gemma_service.chat.prompt import Message
from gemma_service.chat.structured.tool_specs import format_tool_call, format_tool_result
from gemma_service.errors import InvalidRequestError


def messages_to_turns(messages: Sequence[ChatMessage], *, native: bool = False) -> list[Message]:
    """Turns with roles system/user/assistant (and tool, when ``native``); without ``native``
    tool results become user turns."""
    history = _ToolCallLedger()
    turns: list[Message] = []
    previous_role = None
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if message.role == "tool":
            name = history.answer(message, where)
            if native:
                turns.append(
                    Message("tool", message.text, tool_call_id=message.tool_call_id, name=name)
                )
            elif previous_role == "tool":  # results of one round of calls share a turn
                text = format_tool_result(name, message.text)
                turns[-1] = Message("user", f"{turns[-1].content}\n{text}")
            else:
                turns.append(Message("user", format_tool_result(name, message.text)))
        else:
            history.require_all_answered()
            if message.role == "assistant":
                turns.append(_assistant_turn(message, where, history, native))
            else:
                turns.append(Message(message.role, message.text))
        previous_role = message.role
    history.require_all_answered()
    return turns


def _assistant_turn(
    message: ChatMessage, where: str, history: _ToolCallLedger, native: bool
) -> Message:
    for j, call in enumerate(message.tool_calls):
        history.record_call(call, f"{where}.tool_calls[{j}]")
    if native:
        return Message(
            "assistant", message.text, tuple(message.tool_calls), reasoning=message.reasoning
        )
    if not message.tool_calls:
        return Message("assistant", message.text)
    text = message.text.strip()
    lines = [format_tool_call(call.name, call.arguments) for call in message.tool_calls]
    return Message("assistant", "\n".join([text, *lines] if text else lines))


class _ToolCallLedger:
    """Tracks calls awaiting results: each tool message must answer one call of the assistant
    message just before it, and every call must be answered before the conversation moves on."""

    def __init__(self) -> None:
        self._awaiting: dict[str, tuple[str, str]] = {}  # id -> (function name, where)
        self._seen_ids: set[str] = set()
        self._answered: set[str] = set()

    def record_call(self, call: PastToolCall, where: str) -> None:
        """Check one call of an assistant message."""
        if not call.id:
            raise InvalidRequestError(f"{where}.id is required", param=f"{where}.id")
        if call.id in self._seen_ids:
            raise InvalidRequestError(
                f"{where}.id {call.id!r} is used by an earlier tool call", param=f"{where}.id"
            )
        self._seen_ids.add(call.id)
        self._awaiting[call.id] = (call.name, where)

    def answer(self, message: ChatMessage, where: str) -> str:
        """Check a ``tool`` message against the open calls; returns the call's function."""
        call_id = message.tool_call_id
        param = f"{where}.tool_call_id"
        if not call_id:
            raise InvalidRequestError(f"{param} is required for a tool message", param=param)
        if call_id not in self._awaiting:
            if call_id in self._answered:
                problem = "already has a tool message answering it"
            else:
                problem = "does not match any tool call of the preceding assistant message"
            raise InvalidRequestError(f"{param}: tool call {call_id!r} {problem}", param=param)
        name, _ = self._awaiting.pop(call_id)
        self._answered.add(call_id)
        return name

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
