"""Client unit tests run against scripted answers (httpx.MockTransport), never a network."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

Answer = httpx.Response | Exception


def sse_body(events: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)


def stream_response(events: Iterable[dict[str, Any]]) -> httpx.Response:
    return httpx.Response(
        200, content=sse_body(events), headers={"content-type": "text/event-stream"}
    )


def error_response(status: int, message: str = "busy", **headers: str) -> httpx.Response:
    body = {"error": {"message": message, "type": "x", "param": None, "code": f"code_{status}"}}
    return httpx.Response(
        status, json=body, headers={k.replace("_", "-"): v for k, v in headers.items()}
    )


@dataclass
class ScriptedService:
    """Answers requests in order from ``answers`` (the last one repeats) and records them."""

    answers: list[Answer]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def json_bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


@pytest.fixture
def scripted() -> Callable[..., ScriptedService]:
    def make(*answers: Answer) -> ScriptedService:
        return ScriptedService(list(answers))

    return make


@pytest.fixture
def sleeps() -> list[float]:
    return []
