"""The chat page takes an image (picked or pasted), shows it, and the model answers about it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import RunningServer
from ..test_chat_page import ANSWER_TIMEOUT_MS, CHROMIUM, CHROMIUM_ARGS
from .conftest import png

pytestmark = pytest.mark.integration

PASTE = """([b64]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], "pasted.png", { type: "image/png" }));
  const box = document.getElementById("prompt");
  box.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true }));
}"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def ask(page: Any, question: str, sent: list[dict[str, Any]]) -> Any:
    page.fill("#prompt", question)
    page.press("#prompt", "Enter")
    answer = page.locator(".turn.assistant").last
    page.wait_for_function(
        "() => !document.querySelector('.turn.assistant.streaming')", timeout=ANSWER_TIMEOUT_MS
    )
    assert not answer.locator(".error").count(), answer.inner_text()
    assert answer.locator(".text").inner_text().strip()
    return sent[-1]


def test_an_image_is_picked_or_pasted_shown_and_sent(
    chromium: Any, gemma3_server: RunningServer, tmp_path: Path
) -> None:
    page = chromium.new_page()
    sent: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: sent.append(json.loads(r.post_data or "{}")) if "chat/stream" in r.url else None,
    )
    page.goto(gemma3_server.url + "/")
    picked = tmp_path / "picked.png"
    picked.write_bytes(png(21))
    page.set_input_files("#image-input", str(picked))
    page.wait_for_selector("#pending-image:not([hidden])")
    body = ask(page, "What is in this picture?", sent)
    assert body["messages"][-1]["images"] == [base64.b64encode(png(21)).decode()]
    shown = page.locator(".turn.user img.attached").last
    assert shown.get_attribute("src").startswith("data:image/png;base64,")
    assert page.locator("#pending-image").is_hidden()  # the next question starts without it

    page.evaluate(PASTE, [base64.b64encode(png(22)).decode()])
    page.wait_for_selector("#pending-image:not([hidden])")
    body = ask(page, "And this one?", sent)
    assert body["messages"][-1]["images"] == [base64.b64encode(png(22)).decode()]
    assert body["messages"][0]["images"]  # the earlier picture stays in the conversation
    assert page.locator(".turn.user img.attached").count() == 2
    page.screenshot(path=str(tmp_path / "chat-with-images.png"))
    page.close()
