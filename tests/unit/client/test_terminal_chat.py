"""`gemma-service chat`: the conversation it keeps and what it prints."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import httpx
import pytest

from gemma_service.cli import build_parser, settings_from_args
from gemma_service.client import GemmaClient, RetryPolicy
from gemma_service.client.cli_commands import ChatClientSettings
from gemma_service.client.terminal_chat import TerminalChat, run_terminal_chat

from .conftest import ScriptedService, error_response, stream_response

Scripted = Callable[..., ScriptedService]


def answer(*tokens: str, sources: list[dict[str, object]] | None = None) -> httpx.Response:
    events: list[dict[str, object]] = [{"token": t, "done": False} for t in tokens]
    return stream_response([*events, {"token": "", "done": True, "sources": sources or []}])


def chat_over(service: ScriptedService, **kwargs: object) -> tuple[TerminalChat, io.StringIO]:
    out = io.StringIO()
    client = GemmaClient(
        "http://gemma.test",
        transport=httpx.MockTransport(service),
        retry=RetryPolicy(max_attempts=1),
    )
    return TerminalChat(client, out, **kwargs), out  # type: ignore[arg-type]


def test_streams_answers_and_sends_the_whole_conversation(scripted: Scripted) -> None:
    service = scripted(answer("Hel", "lo"), answer("Fine"))
    chat, out = chat_over(service, system="Be brief.")
    assert run_terminal_chat(chat, ["Hi\n", "How are you?\n", "/quit\n", "never sent\n"]) == 0
    assert out.getvalue() == "Hello\nFine\n"
    assert service.json_bodies()[1]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "How are you?"},
    ]
    assert len(service.requests) == 2


def test_memory_toggle_asks_for_rag_and_prints_the_cited_sources(scripted: Scripted) -> None:
    source = {"n": 1, "id": "m1", "text": "Ship it Friday.", "speaker": "John", "timestamp": "T"}
    service = scripted(answer("Friday [1]", sources=[source]))
    chat, out = chat_over(service)
    run_terminal_chat(chat, ["/memory on", "When do we ship?"])
    assert json.loads(service.requests[0].content)["use_rag"] is True
    assert "(memory on)" in out.getvalue()
    assert "  [1] John, T: Ship it Friday.\n" in out.getvalue()


def test_a_failed_turn_is_reported_and_left_out_of_the_conversation(scripted: Scripted) -> None:
    service = scripted(error_response(400, "prompt too long"), answer("ok"))
    chat, out = chat_over(service)
    run_terminal_chat(chat, ["first", "second"])
    assert "error: HTTP 400: prompt too long" in out.getvalue()
    assert service.json_bodies()[1]["messages"] == [{"role": "user", "content": "second"}]


def test_reset_starts_a_new_conversation(scripted: Scripted) -> None:
    service = scripted(answer("a"), answer("b"))
    chat, _ = chat_over(service)
    run_terminal_chat(chat, ["one", "/reset", "two"])
    assert service.json_bodies()[1]["messages"] == [{"role": "user", "content": "two"}]


def test_chat_subcommand_takes_flags_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMMA_SERVICE_URL", "http://from-env:1")
    monkeypatch.setenv("GEMMA_API_KEY", "env-key")
    args = build_parser().parse_args(
        ["chat", "--url", "http://h:9", "--memory", "--max-tokens", "64"]
    )
    settings: ChatClientSettings = settings_from_args(ChatClientSettings, args)
    assert settings.url == "http://h:9" and settings.api_key == "env-key"
    assert settings.chat_options() == {"use_rag": True, "max_tokens": 64}
