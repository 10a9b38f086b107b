"""The start-up self-check of llama.cpp's CPU kernels: prove in a child process that they run here.

Some hosts advertise instructions they trap on (Intel Xeons listing AMX under a hypervisor that
does not enable it): llama.cpp then dies by SIGILL on the first decode, after repacking the weights
into the AMX buffer type. Before the process loads a model with repacked weights on a host and
build where that has not been proven, one short decode runs in a child (``kernel_probe.py``). If
the child dies by a signal, the next configuration is tried: the second-best CPU variant, then
no repacking (``use_extra_bufts = False``), then the baseline variant. The outcome is cached per
CPU signature, llama.cpp build and model file, so later starts cost nothing.
``GEMMA_CPU_REPACK=on|off`` and ``GEMMA_CPU_VARIANT`` skip the check.

This module does not import llama.cpp itself (the API reads ``current()`` for /healthz).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

RepackMode = Literal["auto", "on", "off"]
PROBE_TIMEOUT_S = 300.0
_current: KernelState | None = None


@dataclass(frozen=True, slots=True)
class KernelState:
    """The CPU kernels this process runs, for logs and /healthz."""

    build: Literal["dispatch", "built-in"]
    variant: str | None
    repack: bool
    checked: Literal["probe", "cache", "setting"]
    reason: str
    # True when a better configuration crashed here and this one is the fallback.
    fallback: bool = False

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Candidate:
    variant: str | None
    repack: bool


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """How one probe ended: ``ok``, ``crashed`` (killed by a signal) or ``inconclusive``."""

    outcome: Literal["ok", "crashed", "inconclusive"]
    detail: str


def default_kernel_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gemma-service" / "kernel-check"


def current() -> KernelState | None:
    """The decision of this process, or None if no llama.cpp model was loaded."""
    return _current


def cpu_signature() -> str:
    """The CPU model and its flags: what decides which kernels can run."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if not key:
                break  # the first processor is enough
            if key in ("vendor_id", "cpu family", "model", "model name", "stepping", "flags"):
                fields[key] = value.strip()
    except OSError:
        fields["processor"] = platform.processor()
    fields["machine"] = platform.machine()
    return json.dumps(fields, sort_keys=True)


def candidates(variants: list[str], repack: RepackMode, variant: str | None) -> list[Candidate]:
    """Configurations to try, best first. ``variants`` are the host's CPU modules, best first
    (empty for a build without dispatch)."""
    pool: list[str | None] = [variant] if variant else list(variants) or [None]
    if repack != "auto":
        return [Candidate(pool[0], repack == "on")]
    ladder = [Candidate(pool[0], True)]
    if len(pool) > 1:
        ladder.append(Candidate(pool[1], True))
    ladder.append(Candidate(pool[0], False))
    if len(pool) > 2:
        ladder.append(Candidate(pool[-1], False))
    return ladder


def probe_command(model_path: Path, candidate: Candidate) -> list[str]:
    argv = [sys.executable, "-m", "gemma_service.llama.kernel_probe", "--model", str(model_path)]
    argv += ["--repack", "on" if candidate.repack else "off"]
    if candidate.variant:
        argv += ["--variant", candidate.variant]
    return argv


def run_probe(argv: list[str], timeout_s: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Run one probe child; a death by signal is the kernel fault we look for."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return ProbeResult("inconclusive", f"the probe took longer than {timeout_s:.0f}s")
    if done.returncode == 0:
        return ProbeResult("ok", "a short decode ran")
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        return ProbeResult("crashed", f"the probe died by {name}")
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
    return ProbeResult("inconclusive", f"the probe exited with {done.returncode}: {tail[0]}")


class KernelCheck:
    """Decides the CPU variant and the repack setting for one model file, with a result cache."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        repack: RepackMode = "auto",
        variant: str | None = None,
        probe: ProbeRunner | None = None,
    ) -> None:
        self.cache_dir = cache_dir
        self.repack = repack
        self.variant = variant
        self._probe = probe or ProbeRunner()

    def cache_file(self, model_path: Path, build: str) -> Path:
        stat = model_path.stat()
        key = "\n".join([cpu_signature(), build, model_path.name, str(stat.st_size)])
        return self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"

    def decide(self, model_path: Path, variants: list[str], build: str) -> KernelState:
        """The configuration to load ``model_path`` with, probing only when not yet proven."""
        kind: Literal["dispatch", "built-in"] = "dispatch" if variants else "built-in"
        ladder = candidates(variants, self.repack, self.variant)
        if self.repack != "auto":
            reason = f"GEMMA_CPU_REPACK={self.repack}"
            return KernelState(kind, ladder[0].variant, ladder[0].repack, "setting", reason)
        cache = self.cache_file(model_path, build)
        cached = _read_cache(cache)
        if cached is not None and Candidate(cached.variant, cached.repack) in ladder:
            return cached
        failures: list[str] = []
        for candidate in ladder:
            started = time.monotonic()
            result = self._probe.run(model_path, candidate)
            label = f"{candidate.variant or 'built-in'} kernels, repack {_on(candidate.repack)}"
            log.info("kernel self-check: %s: %s (%.1fs)", label, result.detail, _since(started))
            if result.outcome == "crashed":
                failures.append(f"{label}: {result.detail}")
                continue
            reason = "; ".join(failures) or f"{label}: {result.detail}"
            state = KernelState(
                kind, candidate.variant, candidate.repack, "probe", reason, bool(failures)
            )
            if result.outcome == "ok":
                _write_cache(cache, state)
            elif failures:
                log.warning("kernel self-check inconclusive after a crash: %s", result.detail)
            return state
        raise RuntimeError(
            "llama.cpp's CPU kernels crash on this host in every configuration tried: "
            + "; ".join(failures)
        )


class ProbeRunner:
    """Runs ``kernel_probe`` in a child process (tests substitute their own runner)."""

    def run(self, model_path: Path, candidate: Candidate) -> ProbeResult:
        return run_probe(probe_command(model_path, candidate))


def start_checked(
    model_path: Path, cache_dir: Path, *, repack: RepackMode = "auto", variant: str | None = None
) -> KernelState:
    """Start llama.cpp in this process with kernels proven to run ``model_path`` here (once)."""
    global _current
    from gemma_service.llama import runtime as llama_runtime  # imports llama.cpp

    state = llama_runtime.started()
    if state is not None and _current is not None:
        return _current
    variants = [v.name for v in llama_runtime.cpu_variants()]
    decision = KernelCheck(cache_dir, repack=repack, variant=variant).decide(
        model_path, variants, llama_runtime.build_id()
    )
    llama_runtime.ensure_started(decision.variant, repack=decision.repack)
    _current = decision
    level = logging.WARNING if decision.fallback else logging.INFO
    log.log(
        level,
        "llama.cpp CPU kernels: %s, weight repacking %s (%s: %s)",
        decision.variant or "built-in",
        _on(decision.repack),
        decision.checked,
        decision.reason,
    )
    return decision


def _read_cache(path: Path) -> KernelState | None:
    try:
        data = json.loads(path.read_text())
        return KernelState(
            data["build"],
            data["variant"],
            bool(data["repack"]),
            "cache",
            str(data["reason"]),
            bool(data.get("fallback", False)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(path: Path, state: KernelState) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state.as_dict()))
        tmp.replace(path)
    except OSError as exc:  # a read-only cache costs a probe per start, nothing else
        log.warning("could not cache the kernel self-check in %s: %s", path, exc)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _since(started: float) -> float:
    return time.monotonic() - started
