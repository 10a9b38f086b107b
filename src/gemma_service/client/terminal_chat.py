"""The terminal chat loop behind `gemma-service chat`: streams answers, keeps the conversation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

from gemma_service.client.api_calls import ChatOptions
from gemma_service.client.errors import GemmaClientError
from gemma_service.client.results import Source, StreamEvent
from gemma_service.client.sync_client import GemmaClient

HELP = "Commands: /memory on|off, /reset, /help, /quit. Anything else is sent to the model."
SOURCE_PREVIEW_CHARS = 160


@dataclass
class TerminalChat:
    """One conversation: what was said so far, and how to ask the next question."""

    client: GemmaClient
    out: TextIO
    options: ChatOptions = field(default_factory=lambda: ChatOptions())
    system: str | None = None
    interactive: bool = False
    history: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.history = [{"role": "system", "content": self.system}] if self.system else []

    def handle(self, line: str) -> bool:
        """Act on one line of input; False when the user asked to quit."""
        text = line.strip()
        if not text:
            return True
        if text in ("/quit", "/exit"):
            return False
        if text == "/reset":
            self.reset()
            self.say("(conversation cleared)")
        elif text in ("/memory on", "/memory off"):
            self.options["use_rag"] = text.endswith("on")
            self.say(f"(memory {'on' if self.options['use_rag'] else 'off'})")
        elif text.startswith("/"):
            self.say(HELP)
        else:
            self.ask(text)
        return True

    def ask(self, question: str) -> None:
        """Stream the answer to ``question``; a failed turn is dropped from the conversation."""
        self.history.append({"role": "user", "content": question})
        if self.interactive:
            self.out.write("gemma> ")
        answer: list[str] = []
        final: StreamEvent | None = None
        stream = self.client.chat_stream(self.history, **self.options)
        try:
            for event in stream:
                self.out.write(event.token)
                self.out.flush()
                answer.append(event.token)
                final = event if event.done else final
        except GemmaClientError as exc:
            self.history.pop()
            self.say(f"\nerror: {exc}")
            return
        except KeyboardInterrupt:
            self.out.write(" [stopped]")
        finally:
            stream.close()  # on Ctrl-C this ends the request, so the service stops generating
        self.out.write("\n")
        self.history.append({"role": "assistant", "content": "".join(answer)})
        if final is not None:
            self._show_sources(final.sources)
            if final.from_fallback:
                self.say("(gemma-service was unavailable; answered by the fallback)")

    def _show_sources(self, sources: list[Source]) -> None:
        for source in sources:
            who = ", ".join(x for x in (source.speaker, source.timestamp) if x)
            preview = " ".join(source.text.split())[:SOURCE_PREVIEW_CHARS]
            self.say(f"  [{source.n}] {who + ': ' if who else ''}{preview}")

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def run_terminal_chat(chat: TerminalChat, lines: Iterable[str]) -> int:
    """Answer each input line until /quit or the end of input; returns the exit status."""
    if chat.interactive:
        chat.say(f"Chatting with {chat.client.base_url}. {HELP}")
    try:
        for line in lines:
            if not chat.handle(line):
                break
    except KeyboardInterrupt:
        chat.out.write("\n")
    return 0
