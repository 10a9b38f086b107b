"""A GGUF's own Jinja chat template, rendered as llama.cpp's server (``--jinja``) renders it.

The template gets the messages in OpenAI's shape (an assistant turn's ``tool_calls`` with
arguments as objects, ``tool`` turns with ``tool_call_id`` and ``name``), the request's
``tools``, ``add_generation_prompt`` and any ``chat_template_kwargs`` (``enable_thinking``),
in a sandbox with the helpers Hugging Face templates use (``raise_exception``, ``tojson``,
``strftime_now``, loop controls).

A caller cannot forge special tokens through it: before rendering, every special-token text in
caller strings (contents, arguments, tool descriptions) is swapped for a placeholder; after it,
the output is split there, so the template's own text may hold special tokens and the caller's
markers go back as plain text. ``ChatPrompter`` picks the template, or the Gemma turn format
for a GGUF without one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from jinja2 import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gemma_service.chat.prompt import Message, Prompt, build_gemma_prompt
from gemma_service.chat.special_text import SpecialTextGuard
from gemma_service.errors import InvalidRequestError

# Placeholders for caller markers: private-use characters, themselves swapped when a caller
# sends them, so every placeholder in the output is ours.
_OPEN, _CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_OPEN}([0-9]+){_CLOSE}")
# Names a template reads that a request's chat_template_kwargs may not set.
RESERVED_TEMPLATE_NAMES = frozenset(
    {"messages", "tools", "add_generation_prompt", "bos_token", "eos_token"}
)


class TemplatePrompter:
    """Renders a GGUF's Jinja chat template into a ``Prompt``."""

    def __init__(
        self, template: str, bos_token: str, eos_token: str, guard: SpecialTextGuard | None = None
    ) -> None:
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
        )
        env.globals["raise_exception"] = _raise_template_error
        env.globals["strftime_now"] = _strftime_now
        env.filters["tojson"] = _tojson
        self._template = env.from_string(template)
        self._bos = bos_token
        self._eos = eos_token
        self._guard = guard

    def build(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> Prompt:
        """Render ``messages`` (a trailing assistant turn is continued, not closed)."""
        swapped: list[str] = []
        context = {
            **(extra or {}),
            "messages": self._protect([message_dict(m) for m in messages], swapped),
            "add_generation_prompt": not (messages and messages[-1].role == "assistant"),
            "bos_token": self._bos,
            "eos_token": self._eos,
        }
        if tools:
            context["tools"] = self._protect(list(tools), swapped)
        try:
            text = self._template.render(**context)
        except TemplateError as exc:
            raise InvalidRequestError(
                f"the chat template rejected the messages: {exc}", param="messages"
            ) from exc
        if self._bos and text.startswith(self._bos):
            text = text[len(self._bos) :]  # the tokenizer adds BOS itself
        return _split(text, swapped)

    def _protect(self, value: Any, swapped: list[str]) -> Any:
        """``value`` with every special-token text in its strings (keys too) swapped."""
        if isinstance(value, str):
            return self._swap(value, swapped)
        if isinstance(value, Mapping):
            return {self._protect(k, swapped): self._protect(v, swapped) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._protect(v, swapped) for v in value]
        return value

    def _swap(self, text: str, swapped: list[str]) -> str:
        spans = [(m.start(), m.end()) for m in re.finditer(f"[{_OPEN}{_CLOSE}]", text)]
        if self._guard is not None:
            spans += self._guard.markers(text)
        if not spans:
            return text
        out, last = [], 0
        for start, end in sorted(spans):
            out.append(text[last:start])
            out.append(f"{_OPEN}{len(swapped)}{_CLOSE}")
            swapped.append(text[start:end])
            last = end
        out.append(text[last:])
        return "".join(out)


def message_dict(message: Message) -> dict[str, Any]:
    """A message as chat templates take it (OpenAI's shape, call arguments as objects)."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["content"] = message.content or None
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id
        out["name"] = message.name
    if message.reasoning:
        out["reasoning_content"] = message.reasoning
    return out


def _split(text: str, swapped: list[str]) -> Prompt:
    """The template's text (may hold special tokens) and the caller's markers (plain text)."""
    prompt = Prompt()
    last = 0
    for match in _PLACEHOLDER.finditer(text):
        if match.start() > last:
            prompt.special(text[last : match.start()])
        prompt.text(swapped[int(match.group(1))])
        last = match.end()
    if last < len(text):
        prompt.special(text[last:])
    return prompt


def _raise_template_error(message: str) -> None:
    raise TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """Hugging Face's ``tojson`` (Jinja's own escapes HTML characters, which templates do not
    expect)."""
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


class ChatPrompter:
    """Picks the GGUF template when there is one, the Gemma turn format otherwise."""

    def __init__(
        self,
        chat_template: str | None,
        bos_token: str,
        eos_token: str,
        guard: SpecialTextGuard | None = None,
    ) -> None:
        self._template = (
            TemplatePrompter(chat_template, bos_token, eos_token, guard) if chat_template else None
        )

    @property
    def uses_gguf_template(self) -> bool:
        return self._template is not None

    def build(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> Prompt:
        """The prompt for ``messages``; ``tools`` and ``extra`` reach a GGUF template only."""
        if self._template is not None:
            return self._template.build(messages, tools=tools, extra=extra)
        return build_gemma_prompt(list(messages))
