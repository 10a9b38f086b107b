"""Mounts `gemma-service chat` (a terminal chat client) on the main CLI."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any

import httpx
from pydantic_settings import BaseSettings, SettingsConfigDict

from gemma_service.client.api_calls import DEFAULT_BASE_URL, ChatOptions
from gemma_service.client.retry import RetryPolicy
from gemma_service.client.sync_client import GemmaClient
from gemma_service.client.terminal_chat import TerminalChat, run_terminal_chat
from gemma_service.settings_args import add_settings_arguments, settings_from_args
from gemma_service.settings_fields import setting


class ChatClientSettings(BaseSettings):
    """Everything `gemma-service chat` can be told, from env vars or flags."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    url: str = setting(
        DEFAULT_BASE_URL, "GEMMA_SERVICE_URL", "gemma-service to talk to", flag="--url"
    )
    api_key: str | None = setting(
        None, "GEMMA_API_KEY", "API key, sent as Authorization: Bearer", flag="--api-key"
    )
    use_memory: bool = setting(
        False,
        "GEMMA_CHAT_MEMORY",
        "answer from memory (RAG) and list the cited sources",
        flag="--memory",
    )
    system: str | None = setting(
        None, "GEMMA_CHAT_SYSTEM", "system message that opens the conversation", flag="--system"
    )
    max_tokens: int | None = setting(
        None, "GEMMA_CHAT_MAX_TOKENS", "longest answer, in tokens", flag="--max-tokens", ge=1
    )
    temperature: float | None = setting(
        None, "GEMMA_CHAT_TEMPERATURE", "sampling temperature", flag="--temperature", ge=0, le=2
    )
    timeout_s: float = setting(
        300.0, "GEMMA_CHAT_TIMEOUT", "seconds to wait for the service", flag="--timeout", gt=0
    )
    attempts: int = setting(
        4,
        "GEMMA_CHAT_ATTEMPTS",
        "tries while the service is busy or starting",
        flag="--attempts",
        ge=1,
    )

    def chat_options(self) -> ChatOptions:
        options = ChatOptions(use_rag=self.use_memory)
        if self.max_tokens is not None:
            options["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            options["temperature"] = self.temperature
        return options


def _stdin_lines(interactive: bool) -> Iterator[str]:
    if not interactive:
        yield from sys.stdin
        return
    while True:
        try:
            yield input("you> ")
        except EOFError:
            print()
            return


def cmd_chat(args: argparse.Namespace) -> int:
    """Chat with a running gemma-service until /quit or end of input."""
    settings = settings_from_args(ChatClientSettings, args)
    interactive = sys.stdin.isatty()
    timeout = httpx.Timeout(settings.timeout_s, connect=10.0)
    retry = RetryPolicy(max_attempts=settings.attempts)
    with GemmaClient(
        settings.url, api_key=settings.api_key, timeout=timeout, retry=retry
    ) as client:
        chat = TerminalChat(
            client,
            sys.stdout,
            options=settings.chat_options(),
            system=settings.system,
            interactive=interactive,
        )
        return run_terminal_chat(chat, _stdin_lines(interactive))


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the `chat` subcommand to the CLI's subparsers."""
    chat = subparsers.add_parser(
        "chat",
        help="chat with a running gemma-service in the terminal",
        description="Stream answers from a running gemma-service, keeping the conversation. "
        "Reads questions from standard input (one per line when piped). Every flag also reads "
        "from its environment variable.",
    )
    add_settings_arguments(chat, ChatClientSettings)
    chat.set_defaults(func=cmd_chat)
