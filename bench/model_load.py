"""Load cost: the time from a request for an unloaded model to its first token.

Two models (the packaged Gemma 3 270M and a hard link of it under another name) in one folder,
and a budget of one loaded model, so every request for the other model pays a swap (an unload
and a load) before its first token:

- ours: `gemma-service serve --models-dir DIR --max-loaded-models 1`;
- llama-server's router mode (the vendored build has it): `llama-server --models-dir DIR
  --models-max 1`, which starts one child llama-server per loaded model;
- a llama-server restart: process start to the first token of its first request (what a
  single-model server costs to switch models).

Each line also gives the warm time to first token (the same request again, model loaded), the
floor the load cost sits on. Every server gets the same threads and context.

    .venv/bin/python bench/model_load.py [--rounds 5] [--threads 2]
        [--llama-server-bin ~/.cache/gemma-service/bench/llama-server-build/bin/llama-server]

Numbers are only meaningful on a quiet machine (see bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from gemma_service.config import ServiceSettings
from gemma_service.model_files import prepare_default_model

DEFAULT_LLAMA_SERVER = (
    Path.home() / ".cache/gemma-service/bench/llama-server-build/bin/llama-server"
)
QUESTION = [{"role": "user", "content": "Say hello."}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def first_token_s(url: str, model: str, timeout_s: float = 300.0) -> float:
    """Seconds from sending a streamed chat request to its first content chunk."""
    body = {"model": model, "messages": QUESTION, "max_tokens": 8, "temperature": 0, "stream": True}
    started = time.perf_counter()
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=timeout_s) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if any(c.get("delta", {}).get("content") for c in chunk.get("choices", [])):
                break
    return time.perf_counter() - started


def wait_http(url: str, path: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(url + path, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready in {timeout_s}s")


def start(
    cmd: list[str], log: Path, ready_path: str, port: int
) -> tuple[str, subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_http(url, ready_path, process, 300)
    return url, process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def swap_rounds(url: str, models: list[str], rounds: int) -> tuple[list[float], list[float]]:
    """Alternate between the two models: each first request loads (a swap), the repeat is warm."""
    cold, warm = [], []
    first_token_s(url, models[0])  # the first model loaded and warm
    for i in range(rounds):
        model = models[(i + 1) % 2]
        cold.append(first_token_s(url, model))
        warm.append(first_token_s(url, model))
    return cold, warm


def ours(folder: Path, args: argparse.Namespace, logs: Path) -> tuple[list[float], list[float]]:
    port = free_port()
    cmd = [sys.executable, "-m", "gemma_service.cli", "serve", "--port", str(port),
           "--model", str(folder / "gemma-a.gguf"), "--models-dir", str(folder),
           "--max-loaded-models", "1", "--threads", str(args.threads),
           "--ctx-size", str(args.ctx), "--parallel", "4"]  # fmt: skip
    env_dir = tempfile.mkdtemp(prefix="gemma-load-bench-")
    os.environ["GEMMA_DATA_DIR"] = env_dir
    url, process = start(cmd, logs / "ours.log", "/readyz", port)
    try:
        return swap_rounds(url, ["gemma-a", "gemma-b"], args.rounds)
    finally:
        stop(process)


def router(folder: Path, args: argparse.Namespace, logs: Path) -> tuple[list[float], list[float]]:
    port = free_port()
    cmd = [str(args.llama_server_bin), "--port", str(port), "--models-dir", str(folder),
           "--models-max", "1", "-t", str(args.threads), "-c", str(args.ctx),
           "-np", "4"]  # fmt: skip
    url, process = start(cmd, logs / "llama-router.log", "/health", port)
    try:
        listed = httpx.get(url + "/v1/models", timeout=10).json()["data"]
        ids = sorted(m["id"] for m in listed)
        return swap_rounds(url, ids, args.rounds)
    finally:
        stop(process)


def restarts(folder: Path, args: argparse.Namespace, logs: Path) -> tuple[list[float], list[float]]:
    """Process start to first token, then a warm request, per round."""
    cold, warm = [], []
    for i in range(args.rounds):
        port = free_port()
        model = folder / ("gemma-b.gguf" if i % 2 == 0 else "gemma-a.gguf")
        cmd = [str(args.llama_server_bin), "--port", str(port), "-m", str(model),
               "-t", str(args.threads), "-c", str(args.ctx), "-np", "4"]  # fmt: skip
        started = time.perf_counter()
        url, process = start(cmd, logs / f"llama-restart-{i}.log", "/health", port)
        try:
            first_token_s(url, model.stem)
            cold.append(time.perf_counter() - started)
            warm.append(first_token_s(url, model.stem))
        finally:
            stop(process)
    return cold, warm


def describe(name: str, cold: list[float], warm: list[float]) -> str:
    def ms(xs: list[float]) -> str:
        low, high = min(xs) * 1000, max(xs) * 1000
        return f"{statistics.median(xs) * 1000:8.0f} (min {low:.0f}, max {high:.0f})"

    return f"{name:38} {ms(cold)}   {ms(warm)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="swaps (or restarts) per server")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ctx", type=int, default=4096, help="context of every server")
    parser.add_argument("--llama-server-bin", type=Path, default=DEFAULT_LLAMA_SERVER)
    parser.add_argument("--only", default="ours,router,restart", help="which to measure")
    args = parser.parse_args()
    model = prepare_default_model(ServiceSettings().model_cache_dir, progress=False)
    runs: dict[str, Callable[[Path, argparse.Namespace, Path], tuple[list[float], list[float]]]] = {
        "ours": ours,
        "router": router,
        "restart": restarts,
    }
    labels = {
        "ours": "gemma-service (swap, budget 1)",
        "router": "llama-server router (swap, models-max 1)",
        "restart": "llama-server restart",
    }
    with tempfile.TemporaryDirectory(prefix="model-load-") as tmp:
        folder = Path(tmp) / "models"
        folder.mkdir()
        for name in ("gemma-a", "gemma-b"):
            os.link(model, folder / f"{name}.gguf")
        logs = Path(tmp)
        print(f"model: {model.name} ({model.stat().st_size / 2**20:.0f} MiB), "
              f"{args.threads} threads, ctx {args.ctx}, {args.rounds} rounds; load avg "
              f"{os.getloadavg()[0]:.2f}")  # fmt: skip
        print(f"{'':38} {'first token, model unloaded (ms)':32}   warm first token (ms)")
        for key in args.only.split(","):
            try:
                cold, warm = runs[key](folder, args, logs)
            except Exception as exc:  # one server failing should not lose the others' numbers
                print(f"{labels[key]:38} failed: {exc}")
                for log in sorted(logs.glob("*.log")):
                    print(f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}")
                continue
            print(describe(labels[key], cold, warm), flush=True)


if __name__ == "__main__":
    main()
