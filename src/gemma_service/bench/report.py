"""Renders a benchmark run: a PNG of throughput against concurrency and markdown tables."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from gemma_service.bench.peers import LLAMA_CPP_PYTHON, LLAMA_SERVER, OURS
from gemma_service.bench.results import BenchRun


@dataclass(frozen=True, slots=True)
class ThroughputTarget:
    """Ours must reach ``min_ratio`` x the peer's aggregate tokens/s at ``concurrency``."""

    concurrency: int
    peer: str
    min_ratio: float


# The throughput targets (short prompts, aggregate tokens/s).
THROUGHPUT_TARGETS = (
    ThroughputTarget(1, LLAMA_SERVER, 0.95),
    ThroughputTarget(8, LLAMA_SERVER, 1.1),
    ThroughputTarget(16, LLAMA_SERVER, 1.1),
    ThroughputTarget(8, LLAMA_CPP_PYTHON, 5.0),
)
# The long-prompt targets: decode throughput against llama-server, by prompt length.
DECODE_TARGETS = {64: 0.95, 512: 1.1, 2048: 1.1}
DECODE_TARGET_CLIENTS = (8, 16)
# The targets of issue 15, for sampled runs: with every server sampling the same distribution
# (temperature only: top_k 0, top_p 1, min_p 0 sent to all), and with the peers' own defaults.
SAMPLED_SAME_DISTRIBUTION_TARGETS = (
    ThroughputTarget(8, LLAMA_SERVER, 1.1),
    ThroughputTarget(16, LLAMA_SERVER, 1.1),
)
SAMPLED_PEER_DEFAULTS_TARGETS = (
    ThroughputTarget(8, LLAMA_SERVER, 1.0),
    ThroughputTarget(16, LLAMA_SERVER, 1.0),
)
PREFIX_TARGET_MAX_RATIO = 0.25
_PLOT_ORDER = (OURS, LLAMA_SERVER, LLAMA_CPP_PYTHON)


def plot_throughput(run: BenchRun, path: Path) -> None:
    """Draw aggregate tokens/s against concurrency, one line per server, into a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    levels: set[int] = set()
    lengths = _all_prompt_lengths(run)
    for server in sorted(run.servers, key=_plot_rank):
        for prompt_tokens in lengths:
            points = [
                (c, rate)
                for c in _all_levels(run)
                if (rate := _rate(run, server.name, c, prompt_tokens)) is not None
            ]
            if not points:
                continue
            levels.update(c for c, _ in points)
            xs, ys = zip(*points, strict=True)
            label = (
                server.name if len(lengths) == 1 else f"{server.name}, {prompt_tokens or 'short'}"
            )
            axes.plot(xs, ys, marker="o", label=label)
    axes.set_xscale("log", base=2)
    axes.set_xticks(sorted(levels), [str(c) for c in sorted(levels)])
    axes.set_xlabel("concurrent clients")
    axes.set_ylabel("aggregate generated tokens/s")
    settings = run.settings
    axes.set_title(
        f"{settings.get('model_name', 'model')}, {settings.get('threads')} threads, "
        f"{settings.get('max_tokens')} tokens/request"
    )
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    if levels:
        axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def _plot_rank(server: object) -> int:
    name = getattr(server, "name", "")
    return _PLOT_ORDER.index(name) if name in _PLOT_ORDER else len(_PLOT_ORDER)


def throughput_table(run: BenchRun, prompt_tokens: int = 0) -> str:
    """Markdown: tokens/s per concurrency level for every server, with ours-vs-peer ratios
    (the median across rounds)."""
    names = [s.name for s in sorted(run.servers, key=_plot_rank)]
    peers = [n for n in names if n != OURS] if OURS in names else []
    header = ["clients", *names, *(f"ours / {p}" for p in peers)]
    rows = [header, ["---:"] * len(header)]
    for concurrency in _all_levels(run):
        rates = {n: _rate(run, n, concurrency, prompt_tokens) for n in names}
        if not any(rates.values()):
            continue
        row = [str(concurrency), *(_fmt(rates[n], "{:.1f}") for n in names)]
        row += [_fmt(_ratio(rates.get(OURS), rates[p]), "{:.2f}x") for p in peers]
        rows.append(row)
    return _markdown(rows)


def decode_table(run: BenchRun) -> str:
    """Markdown: decode throughput (and its peak) by prompt length and clients, as llama-benchy
    measures it, with ours / llama-server (medians across rounds)."""
    names = [s.name for s in sorted(run.servers, key=_plot_rank)]
    compare = OURS in names and LLAMA_SERVER in names
    header = ["prompt tokens", "clients", *(f"{n} decode (peak)" for n in names)]
    header += ["prefill t/s " + n for n in names]
    if compare:
        header.append(f"ours / {LLAMA_SERVER} (decode)")
    rows = [header, ["---:"] * len(header)]
    for prompt_tokens in _all_prompt_lengths(run):
        for concurrency in _all_levels(run):
            decode = {n: _rate(run, n, concurrency, prompt_tokens, "decode") for n in names}
            if not any(decode.values()):
                continue
            peak = {n: _rate(run, n, concurrency, prompt_tokens, "peak") for n in names}
            prefill = {n: _rate(run, n, concurrency, prompt_tokens, "prefill") for n in names}
            measured = _mean_prompt(run, concurrency, prompt_tokens)
            row = [measured, str(concurrency)]
            row += [f"{_fmt(decode[n], '{:.1f}')} ({_fmt(peak[n], '{:.0f}')})" for n in names]
            row += [_fmt(prefill[n], "{:.0f}") for n in names]
            if compare:
                row.append(_fmt(_ratio(decode[OURS], decode[LLAMA_SERVER]), "{:.2f}x"))
            rows.append(row)
    return _markdown(rows)


def latency_table(run: BenchRun) -> str:
    """Markdown: TTFT and inter-token latency percentiles per server and level."""
    header = [
        "server", "prompt", "clients", "round", "requests (failed)", "tokens/request",
        "TTFT p50", "TTFT p95", "ITL p50", "ITL p95", "time/token (mean)",
    ]  # fmt: skip
    rows = [header, ["---", *(["---:"] * (len(header) - 1))]]
    for server in sorted(run.servers, key=_plot_rank):
        for lv in server.levels:
            rows.append([
                server.name, str(lv.prompt_tokens or "short"), str(lv.concurrency),
                str(lv.round + 1), f"{lv.requests} ({lv.failed})",
                f"{lv.mean_tokens_per_request:.0f}",
                _ms(lv.ttft_p50_s), _ms(lv.ttft_p95_s),
                _ms(lv.itl_p50_s), _ms(lv.itl_p95_s), _ms(lv.tpot_mean_s),
            ])  # fmt: skip
    return _markdown(rows)


def prefix_table(run: BenchRun) -> str:
    """Markdown: cold vs warm time to first token for the long shared prefix."""
    header = ["server", "prompt tokens", "cold TTFT", "warm TTFT (median)", "warm / cold"]
    rows = [header, ["---", "---:", "---:", "---:", "---:"]]
    for server in sorted(run.servers, key=_plot_rank):
        p = server.prefix
        if p is None:
            continue
        rows.append([
            server.name, _fmt(p.prefix_prompt_tokens, "{}"), _ms(p.cold_ttft_s),
            _ms(p.warm_ttft_median_s), _fmt(p.warm_to_cold_ratio, "{:.3f}"),
        ])  # fmt: skip
    return _markdown(rows) if len(rows) > 2 else ""


def targets_for(settings: dict[str, object]) -> tuple[str, tuple[ThroughputTarget, ...]]:
    """The issue whose throughput targets apply to a run with these settings, and those."""
    temperature = settings.get("temperature")
    if not isinstance(temperature, int | float) or temperature <= 0:
        return "issue 3", THROUGHPUT_TARGETS
    untruncated = {"top_k": 0, "top_p": 1.0, "min_p": 0.0}
    if all(settings.get(k) is not None and settings[k] == v for k, v in untruncated.items()):
        return "issue 15, every server sampling the same distribution", (
            SAMPLED_SAME_DISTRIBUTION_TARGETS
        )
    return "issue 15, each server's own sampling defaults", SAMPLED_PEER_DEFAULTS_TARGETS


def targets_table(run: BenchRun) -> str:
    """Markdown: each target of the run's mode this run measured, what was measured, and
    whether it was met."""
    issue, targets = targets_for(run.settings)
    rows = [["target", "measured", "met"], ["---", "---:", ":---:"]]
    for t in targets:
        ratio = _ratio(_rate(run, OURS, t.concurrency), _rate(run, t.peer, t.concurrency))
        label = f"{t.concurrency} client(s): ours ≥ {t.min_ratio} × {t.peer}"
        met = None if ratio is None else ratio >= t.min_ratio
        rows.append([label, _fmt(ratio, "{:.2f}x"), _verdict(met)])
    if issue != "issue 3":
        return _markdown(rows)
    for prompt_tokens, min_ratio in DECODE_TARGETS.items():
        for concurrency in DECODE_TARGET_CLIENTS:
            ratio = _ratio(
                _rate(run, OURS, concurrency, prompt_tokens, "decode"),
                _rate(run, LLAMA_SERVER, concurrency, prompt_tokens, "decode"),
            )
            if ratio is None:
                continue
            label = (
                f"{prompt_tokens}-token prompts, {concurrency} clients: decode ≥ "
                f"{min_ratio} × {LLAMA_SERVER}"
            )
            rows.append([label, f"{ratio:.2f}x", _verdict(ratio >= min_ratio)])
    ours_run = run.server(OURS)
    prefix = ours_run.prefix if ours_run else None
    prefix_ratio = prefix.warm_to_cold_ratio if prefix else None
    rows.append([
        f"repeated ~1,500-token prefix: warm TTFT ≤ {PREFIX_TARGET_MAX_RATIO} × cold",
        _fmt(prefix_ratio, "{:.3f}"),
        _verdict(None if prefix_ratio is None else prefix_ratio <= PREFIX_TARGET_MAX_RATIO),
    ])  # fmt: skip
    return _markdown(rows)


def run_summary(run: BenchRun) -> str:
    """One paragraph: when, on what machine and load, with which settings."""
    m, st = run.machine, run.settings
    load = f"load average {m.get('load_average')} at start, {m.get('load_average_end')} at end"
    return (
        f"Run {run.started_at} on {m.get('cpu')} ({m.get('cpu_count')} cores), {load}. "
        f"Model {st.get('model_name')}; {st.get('threads')} threads; "
        f"{st.get('parallel')} parallel sequences; {st.get('max_tokens')} max tokens per request "
        f"(ignore_eos {st.get('ignore_eos')}); /v1/{_route(st.get('api'))}; "
        f"{sampling_summary(st)}; "
        f"{st.get('requests_per_client')} requests per client per level; "
        f"llama-cpp-python {st.get('llama_cpp_python')}."
    )


def sampling_summary(settings: dict[str, object]) -> str:
    """How the requests were sampled: greedy, or the temperature and the truncation sent (the
    servers' own defaults where a field was not sent)."""
    temperature = settings.get("temperature") or 0.0
    if not isinstance(temperature, int | float) or temperature <= 0:
        return "greedy (temperature 0)"
    sent = [
        f"{f} {settings[f]}" for f in ("top_k", "top_p", "min_p") if settings.get(f) is not None
    ]
    unsent = [f for f in ("top_k", "top_p", "min_p") if settings.get(f) is None]
    parts = [f"temperature {temperature}, seed {settings.get('seed')}"]
    if sent:
        parts.append(", ".join(sent) + " sent to every server")
    if unsent:
        parts.append("/".join(unsent) + " not sent (each server's default)")
    return "; ".join(parts)


def _route(api: object) -> str:
    return "completions" if api == "completions" else "chat/completions"


def full_report(run: BenchRun) -> str:
    """All tables of a run, in the order docs/benchmarks.md shows them."""
    parts = [run_summary(run)]
    for prompt_tokens in _all_prompt_lengths(run):
        label = f"{prompt_tokens}-token prompts" if prompt_tokens else "short prompts"
        parts.append(
            f"Aggregate throughput, {label} (generated tokens/s, median of "
            f"{run.settings.get('rounds', 1)} round(s)):\n\n" + throughput_table(run, prompt_tokens)
        )
    parts.append(
        "Decode throughput (tokens after each stream's first / span from the first first token "
        "to the last token; peak: most tokens in any 1 s) and prefill throughput:\n\n"
        + decode_table(run)
    )
    if run.server(OURS) and len(run.servers) > 1:
        issue, _ = targets_for(run.settings)
        parts.append(f"Targets ({issue}):\n\n" + targets_table(run))
    parts.append(
        "Latency (TTFT: time to first token; ITL: gap between streamed chunks):\n\n"
        + latency_table(run)
    )
    prefix = prefix_table(run)
    if prefix:
        parts.append("Shared-prefix cache (time to first token):\n\n" + prefix)
    failed = [f"- {s.name}: {s.error}" for s in run.servers if s.error]
    if failed:
        parts.append("Servers that did not complete:\n\n" + "\n".join(failed))
    return "\n\n".join(parts) + "\n"


def _all_levels(run: BenchRun) -> list[int]:
    return sorted({lv.concurrency for s in run.servers for lv in s.levels})


def _all_prompt_lengths(run: BenchRun) -> list[int]:
    return sorted({lv.prompt_tokens for s in run.servers for lv in s.levels}) or [0]


_METRICS = {
    "aggregate": lambda lv: lv.tokens_per_s,
    "decode": lambda lv: lv.decode_tokens_per_s,
    "peak": lambda lv: lv.peak_tokens_per_s,
    "prefill": lambda lv: lv.prefill_tokens_per_s,
}


def _rate(
    run: BenchRun, name: str, concurrency: int, prompt_tokens: int = 0, metric: str = "aggregate"
) -> float | None:
    """The median across rounds of one metric at one level (rounds with failures left out)."""
    server = run.server(name)
    rounds = server.rounds(concurrency, prompt_tokens) if server else []
    values = [
        v
        for lv in rounds
        if lv.requests > lv.failed and not lv.failed and (v := _METRICS[metric](lv)) is not None
    ]
    return statistics.median(values) if values else None


def _mean_prompt(run: BenchRun, concurrency: int, prompt_tokens: int) -> str:
    """The prompt length a level asked for, with what the servers reported (~ measured)."""
    measured = [
        lv.mean_prompt_tokens
        for s in run.servers
        for lv in s.rounds(concurrency, prompt_tokens)
        if lv.mean_prompt_tokens
    ]
    if not prompt_tokens:
        return "short"
    return (
        f"{prompt_tokens} (~{statistics.median(measured):.0f})" if measured else str(prompt_tokens)
    )


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _verdict(met: bool | None) -> str:
    if met is None:
        return "–"  # not measured
    return "yes" if met else "**no**"


def _fmt(value: float | int | None, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f} ms"


def _markdown(rows: list[list[str]]) -> str:
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)
