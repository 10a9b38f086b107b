"""Limits on what one request may carry: head size, body size, messages and their length."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gemma_service.config import ServiceSettings
from gemma_service.errors import InvalidRequestError, PayloadTooLargeError, ServiceError


class HeadersTooLargeError(ServiceError):
    """The request line and headers exceed GEMMA_MAX_HEADER_BYTES (431)."""

    status_code = 431
    error_type = "invalid_request_error"
    default_code = "headers_too_large"


@dataclass(frozen=True, slots=True)
class RequestLimits:
    max_body_bytes: int
    max_header_bytes: int
    max_messages: int
    max_message_chars: int

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> RequestLimits:
        return cls(
            max_body_bytes=settings.max_body_bytes,
            max_header_bytes=settings.max_header_bytes,
            max_messages=settings.max_messages,
            max_message_chars=settings.max_message_chars,
        )

    def check_head(self, path: str, query: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        size = len(path) + len(query) + sum(len(k) + len(v) + 4 for k, v in headers)
        if size > self.max_header_bytes:
            raise HeadersTooLargeError(
                f"the request headers are {size} bytes; this server allows {self.max_header_bytes}"
            )

    def body_too_large(self, size: int) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"the request body is {size} bytes or more; this server allows {self.max_body_bytes}"
        )

    def check_body(self, body: Any) -> None:
        """Message count and length of a parsed JSON body (any route that takes messages:
        ``messages``, the Responses API's ``input`` items, prompts and system texts)."""
        if not isinstance(body, dict):
            return
        for field in ("messages", "input"):
            items = body.get(field)
            if isinstance(items, list):
                self._check_items(items, field)
        for field in ("prompt", "input", "system", "instructions"):
            self._check_text(body.get(field), field)

    def _check_items(self, items: list[Any], field: str) -> None:
        if len(items) > self.max_messages:
            raise InvalidRequestError(
                f"'{field}' has {len(items)} items; this server allows at most {self.max_messages}",
                param=field,
                code="too_many_messages",
            )
        for i, item in enumerate(items):
            if isinstance(item, dict):
                self._check_text(item.get("content"), f"{field}[{i}].content")

    def _check_text(self, content: Any, param: str) -> None:
        length = _text_length(content)
        if length > self.max_message_chars:
            raise InvalidRequestError(
                f"'{param}' is {length} characters; this server allows at most "
                f"{self.max_message_chars}",
                param=param,
                code="message_too_long",
            )


def check_unicode(body: Any) -> None:
    """Every string of a parsed JSON body is valid Unicode: JSON can spell a lone surrogate
    (``"\\ud800"``), which no tokenizer can encode; it is refused here, as a 400."""
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequestError(
            "the request body holds a string that is not valid Unicode (a lone surrogate)",
            code="invalid_unicode",
        ) from None


def _text_length(content: Any) -> int:
    """Characters of text in a string, a list of strings, or a list of content parts."""
    if isinstance(content, str):
        return len(content)
    if not isinstance(content, list):
        return 0
    total = 0
    for part in content:
        if isinstance(part, str):
            total += len(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            total += len(part["text"])
    return total
