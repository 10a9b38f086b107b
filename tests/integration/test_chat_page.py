"""The chat page at / in headless Chromium: streamed answers, the kept conversation, sources
from memory, the API key, and errors. Skips only where Chromium cannot be found."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import RunningServer, start_server, stop_server

pytestmark = pytest.mark.integration

CHROMIUM = Path(os.environ.get("GEMMA_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ANSWER_TIMEOUT_MS = 90_000
# Counts changes to answer texts: one per token when the page renders tokens as they arrive.
COUNT_ANSWER_UPDATES = """
window.answerUpdates = 0;
new MutationObserver((records) => {
  for (const r of records) {
    if (r.target.closest && r.target.closest(".turn.assistant .text")) window.answerUpdates++;
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: `apt-get install chromium` (make test does, as root)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: RunningServer) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    page.add_init_script(COUNT_ANSWER_UPDATES)
    page.goto(server.url + "/")
    yield page
    context.close()


@pytest.fixture(scope="module")
def keyed_server(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path
) -> Iterator[RunningServer]:
    """A real server that accepts only the API key "page-key"."""
    tmp = tmp_path_factory.mktemp("keyed")
    args = ["--model", str(model_path), "--ctx-size", "2048", "--threads", "2"]
    server = start_server(tmp, *args, env={"GEMMA_API_KEYS": "page-key"})
    yield server
    stop_server(server)


def ask(page: Any, question: str, *, max_tokens: int = 8) -> Any:
    """Type ``question``, send it with Enter, and return the finished answer's element."""
    page.fill("#max-tokens", str(max_tokens))
    page.fill("#prompt", question)
    page.press("#prompt", "Enter")
    answers = page.locator(".turn.assistant")
    n = answers.count()
    page.wait_for_selector(
        f".turn.assistant:nth-of-type({2 * n}):not(.streaming)", timeout=ANSWER_TIMEOUT_MS
    )
    return answers.nth(n - 1)


def sse(*events: dict[str, Any]) -> str:
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events)


def test_streamed_answer_appears_and_the_conversation_is_kept(page: Any) -> None:
    bodies: list[Any] = []
    page.on(
        "request", lambda r: bodies.append(r.post_data_json) if "chat/stream" in r.url else None
    )
    with page.expect_response(lambda r: "chat/stream" in r.url) as streamed:
        first = ask(page, "Hello! Who are you?")
    events = [
        json.loads(x[6:]) for x in streamed.value.text().splitlines() if x.startswith("data: ")
    ]
    tokens = [e["token"] for e in events if e["token"]]
    first_text = first.locator(".text").text_content()
    assert first_text.strip() and first_text == "".join(tokens)
    assert events[-1]["done"] is True and first.locator(".error").count() == 0
    # Each token was shown as it arrived, not the whole answer at the end.
    assert page.evaluate("window.answerUpdates") == len(tokens)
    ask(page, "Tell me more.")
    assert bodies[1]["messages"] == [
        {"role": "user", "content": "Hello! Who are you?"},
        {"role": "assistant", "content": first_text},
        {"role": "user", "content": "Tell me more."},
    ]
    assert "gemma-3-270m" in page.inner_text("#service-info")


def test_memory_toggle_shows_the_cited_sources(page: Any, server: RunningServer) -> None:
    project = f"Project-{uuid.uuid4().hex[:8]}"  # other tests share this server's memory
    memory = {
        "text": f"Priya said the launch of {project} moves to the 14th of March.",
        "kind": "transcript",
        "speaker": "Priya",
        "timestamp": "2025-02-01T10:00:00Z",
    }
    stored = httpx.post(server.url + "/v1/memories", json=memory, timeout=60)
    if stored.status_code == 404:
        pytest.skip("the memory API (/v1/memories) is not mounted in this build yet")
    assert stored.status_code == 200, stored.text
    page.check("#use-memory")
    answer = ask(page, f"When is the launch of {project}, according to Priya?")
    cited = [
        item.inner_text()
        for item in answer.locator(".sources li").all()
        if project in item.inner_text()
    ]
    assert cited, answer.inner_text()
    assert "14th of March" in cited[0] and "Priya · 2025-02-01 10:00" in cited[0]


def test_sources_render_as_text_and_the_api_key_is_sent(page: Any) -> None:
    seen: list[Any] = []
    hostile = "<img src=x onerror=\"document.title='pwned'\">Budget approved"
    source = {"n": 1, "id": "m1", "text": hostile, "speaker": "Ann", "timestamp": "2025-01-02"}
    body = sse(
        {"token": "Approved ", "done": False},
        {"token": "[1]", "done": False},
        {"token": "", "done": True, "usage": {"total_tokens": 5}, "sources": [source]},
    )

    def fulfil(route: Any) -> None:
        seen.append(route.request)
        route.fulfill(status=200, headers={"content-type": "text/event-stream"}, body=body)

    page.route("**/chat/stream", fulfil)
    page.fill("#api-key", "k-123")
    page.check("#use-memory")
    answer = ask(page, "Was the budget approved?")
    assert answer.locator(".text").inner_text() == "Approved [1]"
    assert answer.locator(".sources li .source-text").inner_text() == hostile
    assert answer.locator(".sources li .meta").inner_text() == "Ann · 2025-01-02"
    assert page.locator("#conversation img").count() == 0 and page.title() != "pwned"
    assert seen[0].headers["authorization"] == "Bearer k-123"
    assert seen[0].post_data_json["use_rag"] is True


def test_an_error_is_shown_and_the_failed_question_is_not_resent(page: Any) -> None:
    replies = [
        {
            "status": 401,
            "json": {"error": {"message": "invalid API key", "code": "invalid_api_key"}},
        },
        {"status": 200, "body": sse({"token": "ok", "done": False}, {"token": "", "done": True})},
    ]
    bodies: list[Any] = []

    def fulfil(route: Any) -> None:
        bodies.append(route.request.post_data_json)
        reply = replies[len(bodies) - 1]
        if "json" in reply:
            route.fulfill(status=reply["status"], json=reply["json"])
        else:
            route.fulfill(
                status=200, headers={"content-type": "text/event-stream"}, body=reply["body"]
            )

    page.route("**/chat/stream", fulfil)
    failed = ask(page, "First question")
    assert "401: invalid API key (enter a valid API key above)" in failed.inner_text()
    ask(page, "Second question")
    assert bodies[1]["messages"] == [{"role": "user", "content": "Second question"}]


def test_the_api_key_field_unlocks_a_server_that_requires_one(
    browser: Any, keyed_server: RunningServer
) -> None:
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(keyed_server.url + "/")  # the page itself needs no key
        refused = ask(page, "Hello?")
        assert "401" in refused.inner_text() and "API key" in refused.inner_text()
        page.fill("#api-key", "page-key")
        answered = ask(page, "Hello?")
        assert answered.locator(".text").inner_text().strip()
        assert answered.locator(".error").count() == 0
    finally:
        context.close()


def test_the_model_picker_lists_models_and_answers_show_their_speed(page: Any) -> None:
    bodies: list[Any] = []
    page.on(
        "request", lambda r: bodies.append(r.post_data_json) if "chat/stream" in r.url else None
    )
    page.wait_for_selector("#model option", state="attached")
    option = page.locator("#model option").first
    assert "gemma-3-270m" in option.inner_text() and "(loaded)" in option.inner_text()
    answer = ask(page, "Say hello.", max_tokens=12)
    assert bodies[0]["model"] == option.get_attribute("value")
    stats = answer.locator(".stats").inner_text()
    tokens = int(stats.split(" tokens")[0])
    assert tokens >= 1 and stats.endswith(option.get_attribute("value"))
    if tokens > 1:  # a speed needs two tokens
        assert " tokens/s · " in stats
