"""Renders a benchmark run: a PNG of throughput against concurrency and markdown tables."""

from __future__ import annotations

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


# The targets of issue 3.
THROUGHPUT_TARGETS = (
    ThroughputTarget(1, LLAMA_SERVER, 0.95),
    ThroughputTarget(8, LLAMA_SERVER, 1.1),
    ThroughputTarget(16, LLAMA_SERVER, 1.1),
    ThroughputTarget(8, LLAMA_CPP_PYTHON, 5.0),
)
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
    for server in sorted(run.servers, key=_plot_rank):
        points = [(lv.concurrency, lv.tokens_per_s) for lv in server.levels if lv.requests]
        if not points:
            continue
        levels.update(c for c, _ in points)
        xs, ys = zip(*points, strict=True)
        axes.plot(xs, ys, marker="o", label=server.name)
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


def throughput_table(run: BenchRun) -> str:
    """Markdown: tokens/s per concurrency level for every server, with ours-vs-peer ratios."""
    names = [s.name for s in sorted(run.servers, key=_plot_rank)]
    peers = [n for n in names if n != OURS] if OURS in names else []
    header = ["clients", *names, *(f"ours / {p}" for p in peers)]
    rows = [header, ["---:"] * len(header)]
    for concurrency in _all_levels(run):
        rates = {n: _rate(run, n, concurrency) for n in names}
        row = [str(concurrency), *(_fmt(rates[n], "{:.1f}") for n in names)]
        row += [_fmt(_ratio(rates.get(OURS), rates[p]), "{:.2f}x") for p in peers]
        rows.append(row)
    return _markdown(rows)


def latency_table(run: BenchRun) -> str:
    """Markdown: TTFT and inter-token latency percentiles per server and level."""
    header = [
        "server", "clients", "requests (failed)", "tokens/request",
        "TTFT p50", "TTFT p95", "ITL p50", "ITL p95", "time/token (mean)",
    ]  # fmt: skip
    rows = [header, ["---", *(["---:"] * (len(header) - 1))]]
    for server in sorted(run.servers, key=_plot_rank):
        for lv in server.levels:
            rows.append([
                server.name, str(lv.concurrency), f"{lv.requests} ({lv.failed})",
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
    """Markdown: each target of the run's mode, what was measured, and whether it was met."""
    issue, targets = targets_for(run.settings)
    rows = [["target", "measured", "met"], ["---", "---:", ":---:"]]
    for t in targets:
        ratio = _ratio(_rate(run, OURS, t.concurrency), _rate(run, t.peer, t.concurrency))
        label = f"{t.concurrency} client(s): ours ≥ {t.min_ratio} × {t.peer}"
        met = None if ratio is None else ratio >= t.min_ratio
        rows.append([label, _fmt(ratio, "{:.2f}x"), _verdict(met)])
    if issue != "issue 3":
        return _markdown(rows)
    ours = run.server(OURS)
    prefix_ratio = ours.prefix.warm_to_cold_ratio if ours and ours.prefix else None
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
    parts = [
        run_summary(run),
        "Aggregate throughput (generated tokens/s):\n\n" + throughput_table(run),
    ]
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


def _rate(run: BenchRun, name: str, concurrency: int) -> float | None:
    server = run.server(name)
    level = server.level(concurrency) if server else None
    return level.tokens_per_s if level and level.requests > level.failed else None


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
