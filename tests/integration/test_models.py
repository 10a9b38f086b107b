"""Two real models behind one server: routing, shared first loads, swaps, idle unload, unload
that waits for a running stream. The second model is the packaged 270M under another name
(a hard link: its own catalogue entry and engine, the same weights)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .conftest import RunningServer, start_server, stop_server

pytestmark = pytest.mark.integration

SECOND = "gemma-second"
HELLO = [{"role": "user", "content": "Say hello."}]


def models_folder(tmp: Path, model_path: Path) -> Path:
    folder = tmp / "models"
    folder.mkdir()
    try:
        os.link(model_path, folder / f"{SECOND}.gguf")
    except OSError:  # another filesystem: a copy is the same model too
        (folder / f"{SECOND}.gguf").write_bytes(model_path.read_bytes())
    return folder


def serve_two(tmp: Path, model_path: Path, *flags: str) -> RunningServer:
    return start_server(
        tmp,
        "--model",
        str(model_path),
        "--models-dir",
        str(models_folder(tmp, model_path)),
        "--ctx-size",
        "2048",
        "--parallel",
        "4",
        "--threads",
        "2",
        *flags,
    )


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[RunningServer]:
    """Both models may be loaded together."""
    server = serve_two(tmp_path_factory.mktemp("two"), model_path, "--max-loaded-models", "2")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def one_at_a_time(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path
) -> Iterator[RunningServer]:
    """A budget of one model, and idle models unload after 3 s."""
    tmp = tmp_path_factory.mktemp("one")
    server = serve_two(tmp, model_path, "--max-loaded-models", "1", "--model-idle", "3")
    yield server
    stop_server(server)


def sdk(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def ask(server: RunningServer, model: str, max_tokens: int = 8) -> str:
    r = sdk(server).chat.completions.create(
        model=model,
        messages=HELLO,  # type: ignore[arg-type]
        max_tokens=max_tokens,
        temperature=0,
    )
    assert r.choices[0].finish_reason in ("stop", "length")
    return r.model


def cards(server: RunningServer) -> dict[str, dict[str, Any]]:
    data = httpx.get(server.url + "/v1/models", timeout=10).json()["data"]
    return {m["id"]: m for m in data}


def default_id(server: RunningServer) -> str:
    return next(i for i in cards(server) if i != SECOND)


def rss_bytes(server: RunningServer) -> int:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def wait_for(predicate: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_both_models_are_listed_and_only_the_default_starts_loaded(two: RunningServer) -> None:
    listed = cards(two)
    assert SECOND in listed and len(listed) == 2
    assert listed[default_id(two)]["state"] == "loaded"
    assert listed[SECOND]["state"] in ("unloaded", "loaded")  # loaded if a test ran first


def test_sixteen_concurrent_first_requests_cause_one_load(two: RunningServer) -> None:
    httpx.post(two.url + "/models/unload", json={"model": SECOND}, timeout=30)
    wait_for(lambda: cards(two)[SECOND]["state"] == "unloaded")
    loads_before = _loads(two, SECOND)
    with ThreadPoolExecutor(16) as pool:
        answered = list(pool.map(lambda _: ask(two, SECOND, 4), range(16)))
    assert answered == [SECOND] * 16
    assert _loads(two, SECOND) == loads_before + 1


def test_interleaved_and_concurrent_requests_are_answered_by_their_models(
    two: RunningServer,
) -> None:
    first = default_id(two)
    wanted = [first, SECOND] * 6
    with ThreadPoolExecutor(6) as pool:
        answered = list(pool.map(lambda m: ask(two, m), wanted))
    assert answered == wanted
    for model in wanted[:4]:  # one after another, alternating
        assert ask(two, model) == model
    assert {m["state"] for m in cards(two).values()} == {"loaded"}


def test_an_unknown_model_is_model_not_found(two: RunningServer) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        ask(two, "gemma-3-27b")
    assert caught.value.code == "model_not_found"
    assert SECOND in caught.value.message


def test_a_budget_of_one_swaps_models_without_failing_a_request(
    one_at_a_time: RunningServer,
) -> None:
    server = one_at_a_time
    first = default_id(server)
    wanted = [first, SECOND] * 5
    with ThreadPoolExecutor(4) as pool:
        answered = list(pool.map(lambda m: ask(server, m), wanted))
    assert answered == wanted
    assert [m["state"] for m in cards(server).values()].count("loaded") <= 1


def test_an_unload_waits_for_the_running_stream(one_at_a_time: RunningServer) -> None:
    server = one_at_a_time
    first = default_id(server)
    ask(server, first)
    stream = sdk(server).chat.completions.create(
        model=first,
        messages=[{"role": "user", "content": "Write a long story about the sea."}],
        max_tokens=64,
        temperature=0,
        stream=True,
        logit_bias={"1": -100, "106": -100},  # no <eos>, no <end_of_turn>: all 64 tokens
    )
    chunks = iter(stream)
    next(chunks)  # the stream is running
    r = httpx.post(server.url + "/models/unload", json={"model": first}, timeout=30)
    assert r.status_code == 200 and r.json()["unload_when_idle"] is True
    assert cards(server)[first]["state"] == "loaded"
    # Meanwhile a request for the other model waits for the room, then is answered.
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(ask, server, SECOND)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices]
        assert finish[-1] == "length"  # not cut: it ran to its max_tokens
        assert other.result(timeout=120) == SECOND
    wait_for(lambda: cards(server)[first]["state"] == "unloaded")


def test_idle_unload_frees_the_memory(one_at_a_time: RunningServer) -> None:
    server = one_at_a_time
    ask(server, SECOND, 16)
    loaded_rss = rss_bytes(server)
    size = cards(server)[SECOND]["size_bytes"]
    wait_for(lambda: all(m["state"] == "unloaded" for m in cards(server).values()))
    freed = loaded_rss - rss_bytes(server)
    assert freed > size // 2, f"RSS fell by {freed} bytes only (model file {size} bytes)"
    assert ask(server, SECOND) == SECOND  # and it comes back when asked for


def _loads(server: RunningServer, model: str) -> int:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    line = next(
        x for x in text.splitlines() if x.startswith(f'gemma_model_loads_total{{model="{model}"}}')
    )
    return int(float(line.split()[-1]))
