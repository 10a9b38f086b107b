"""Images in continuous batching, against llama-server --mmproj on the same model and settings.

Both servers serve the same GGUF + mmproj (default: the tiny Gemma 3 vision model that the tests
generate, tests/tiny_models) with the same threads, 8 slots and per-slot context; they start
together and take turns, one measurement at a time. Streaming requests with greedy decoding
(``ignore_eos``, so every answer has ``--max-tokens`` tokens). Per server it prints:

- TTFT of a request with one image, cold (an image never seen) and cached (the same image and
  question again): medians of ``--rounds`` tries, and their ratio;
- aggregate tokens/s of 8 concurrent image+text requests (8 different images);
- p95 gap between tokens of 4 running text streams, alone and while image requests (new
  images) are prefilled among them, and the ratio.

    .venv/bin/python bench/multimodal.py [--threads 1] [--rounds 3] [--model M --mmproj P]

The machine these numbers come from is shared (other engineers' builds and tests run on its 2
cores), so each figure carries that noise; read ratios within one run, not absolute times.
"""

from __future__ import annotations

import argparse
import base64
import io
import itertools
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gemma_service.bench.peers import ServerProcess, ServerSpec, free_port  # noqa: E402

LLAMA_SERVER = Path.home() / ".cache/gemma-service/bench/llama-server-build/bin/llama-server"


def picture(seed: int) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def image_body(url: str, question: str, max_tokens: int) -> dict[str, Any]:
    content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": question}]
    return chat_body([{"role": "user", "content": content}], max_tokens)


def chat_body(messages: list[dict[str, Any]], max_tokens: int) -> dict[str, Any]:
    return {
        "model": "tiny", "messages": messages, "max_tokens": max_tokens, "temperature": 0,
        "stream": True, "ignore_eos": True,
    }  # fmt: skip


def stream(base_url: str, body: dict[str, Any]) -> list[float]:
    """Send one streaming request; the arrival time of each content chunk."""
    times: list[float] = []
    with (
        httpx.Client(timeout=300) as client,
        client.stream("POST", base_url + "/v1/chat/completions", json=body) as response,
    ):
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                times.append(time.perf_counter())
    return times


def ttft(base_url: str, body: dict[str, Any]) -> float:
    start = time.perf_counter()
    times = stream(base_url, body)
    return times[0] - start


def run_parallel(base_url: str, bodies: list[dict[str, Any]]) -> list[list[float]]:
    results: list[list[float]] = [[] for _ in bodies]

    def one(i: int) -> None:
        results[i] = stream(base_url, bodies[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def p95_gap(streams: list[list[float]]) -> float:
    gaps = [b - a for times in streams for a, b in itertools.pairwise(times)]
    return float(np.percentile(gaps, 95))


def measure(base_url: str, rounds: int, seed: int, max_tokens: int) -> dict[str, float]:
    """Every figure for one server; ``seed`` keeps its images apart from the other server's."""
    out: dict[str, float] = {}
    stream(base_url, chat_body([{"role": "user", "content": "warm up"}], 4))
    cold, warm = [], []
    for r in range(rounds):
        body = image_body(picture(seed + r), "What is in this picture?", 8)
        cold.append(ttft(base_url, body))
        warm.append(ttft(base_url, body))
    out["ttft_cold_ms"] = statistics.median(cold) * 1000
    out["ttft_cached_ms"] = statistics.median(warm) * 1000
    bodies = [image_body(picture(seed + 100 + i), f"Question {i}?", max_tokens) for i in range(8)]
    start = time.perf_counter()
    results = run_parallel(base_url, bodies)
    wall = time.perf_counter() - start
    out["tokens_per_s_8_image_requests"] = sum(len(t) for t in results) / wall
    texts = [chat_body([{"role": "user", "content": f"Count to {i}."}], 96) for i in range(4)]
    out["itl_p95_text_alone_ms"] = p95_gap(run_parallel(base_url, texts)) * 1000
    out["itl_p95_text_with_images_ms"] = p95_gap(with_images(base_url, texts, seed)) * 1000
    return out


def with_images(base_url: str, texts: list[dict[str, Any]], seed: int) -> list[list[float]]:
    """The 4 text streams, with an image request (a new image) every 0.3 s while they run."""
    done = threading.Event()
    text_streams: list[list[float]] = []

    def texts_run() -> None:
        text_streams.extend(run_parallel(base_url, texts))
        done.set()

    runner = threading.Thread(target=texts_run)
    runner.start()
    k = 0
    while not done.wait(0.3):
        body = image_body(picture(seed + 500 + k), "Describe it.", 4)
        threading.Thread(target=stream, args=(base_url, body), daemon=True).start()
        k += 1
    runner.join()
    return text_streams


def specs(model: Path, mmproj: Path, threads: int, ctx: int) -> list[ServerSpec]:
    ours_port, peer_port = free_port(), free_port()
    env = {"PYTHONPATH": str(REPO / "src"), "GEMMA_DATA_DIR": tempfile.mkdtemp()}
    ours = [
        sys.executable, "-m", "gemma_service.cli", "serve", "--model", str(model),
        "--mmproj", str(mmproj), "--host", "127.0.0.1", "--port", str(ours_port),
        "--threads", str(threads), "--parallel", "8", "--ctx-size", str(8 * ctx),
    ]  # fmt: skip
    peer = [
        str(LLAMA_SERVER), "-m", str(model), "--mmproj", str(mmproj), "-t", str(threads),
        "-tb", str(threads), "-np", "8", "-c", str(8 * ctx), "--cont-batching",
        "--host", "127.0.0.1", "--port", str(peer_port), "--no-webui",
    ]  # fmt: skip
    return [
        ServerSpec("gemma-service", ours, ours_port, "/readyz", env={**os.environ, **env}),
        ServerSpec("llama-server", peer, peer_port, "/health"),
    ]


def default_model() -> tuple[Path, Path]:
    from tests.tiny_models import tiny_model

    tiny = tiny_model("gemma3-vision")
    assert tiny.mmproj_path is not None
    return tiny.model_path, tiny.mmproj_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--mmproj", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--ctx", type=int, default=2048, help="context per slot")
    args = parser.parse_args()
    model, mmproj = (args.model, args.mmproj) if args.model else default_model()
    out_dir = REPO / ".bench" / "multimodal" / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, float]] = {}
    servers = [
        ServerProcess(s, out_dir / f"{s.name}.log")
        for s in specs(model, mmproj, args.threads, args.ctx)
    ]
    for server in servers:
        server.__enter__()
    try:
        for i, server in enumerate(servers):  # one at a time: the other idles
            results[server.spec.name] = measure(
                server.spec.base_url, args.rounds, 1000 * (i + 1), args.max_tokens
            )
    finally:
        for server in servers:
            server.stop()
    (out_dir / "multimodal.json").write_text(json.dumps({"model": str(model), **results}, indent=1))
    print(report(results, model, args))


def report(results: dict[str, dict[str, float]], model: Path, args: argparse.Namespace) -> str:
    rows = [
        ("TTFT, one image, cold (ms)", "ttft_cold_ms"),
        ("TTFT, the same image again (ms)", "ttft_cached_ms"),
        ("8 concurrent image+text requests (tokens/s)", "tokens_per_s_8_image_requests"),
        ("p95 gap, 4 text streams alone (ms)", "itl_p95_text_alone_ms"),
        ("p95 gap, 4 text streams while images prefill (ms)", "itl_p95_text_with_images_ms"),
    ]
    names = list(results)
    lines = [
        f"model {model.name} + mmproj, {args.threads} thread(s), 8 slots, "
        f"{args.max_tokens} tokens per concurrent request",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for label, key in rows:
        lines.append(f"| {label} | " + " | ".join(f"{results[n][key]:.1f}" for n in names) + " |")
    for n in names:
        r = results[n]
        lines.append(
            f"\n{n}: cached/cold TTFT {r['ttft_cached_ms'] / r['ttft_cold_ms']:.2f}, "
            f"ITL p95 with/without images "
            f"{r['itl_p95_text_with_images_ms'] / r['itl_p95_text_alone_ms']:.2f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
