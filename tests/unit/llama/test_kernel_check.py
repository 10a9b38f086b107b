"""The kernel self-check: which configuration is tried, the fallback after a crash, the cache and
the override. A host that traps on its kernels is simulated by probes that die by SIGILL."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gemma_service.llama import kernel_check
from gemma_service.llama.kernel_check import (
    Candidate,
    KernelCheck,
    ProbeResult,
    ProbeRunner,
    candidates,
    run_probe,
)

VARIANTS = ["sapphirerapids", "zen4", "icelake", "x64"]


class ScriptedProbe(ProbeRunner):
    """Crashes for the configurations in ``crashes``; counts the probes it ran."""

    def __init__(self, crashes: set[Candidate], outcome: str = "ok") -> None:
        self.crashes = crashes
        self.outcome = outcome
        self.runs: list[Candidate] = []

    def run(self, model_path: Path, candidate: Candidate) -> ProbeResult:
        self.runs.append(candidate)
        if candidate in self.crashes:
            return ProbeResult("crashed", "the probe died by SIGILL")
        return ProbeResult(self.outcome, "a short decode ran")  # type: ignore[arg-type]


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + bytes(60))
    return path


def test_the_ladder_tries_the_best_variant_then_the_next_then_no_repacking() -> None:
    assert candidates(VARIANTS, "auto", None) == [
        Candidate("sapphirerapids", True),
        Candidate("zen4", True),
        Candidate("sapphirerapids", False),
        Candidate("x64", False),
    ]
    assert candidates([], "auto", None) == [Candidate(None, True), Candidate(None, False)]
    assert candidates(VARIANTS, "auto", "icelake") == [
        Candidate("icelake", True),
        Candidate("icelake", False),
    ]


def test_a_healthy_host_keeps_the_best_kernels_and_caches_the_proof(
    tmp_path: Path, model: Path
) -> None:
    probe = ScriptedProbe(set())
    state = KernelCheck(tmp_path / "cache", probe=probe).decide(model, VARIANTS, "build-1")
    assert (state.variant, state.repack, state.checked, state.fallback) == (
        "sapphirerapids",
        True,
        "probe",
        False,
    )
    again = KernelCheck(tmp_path / "cache", probe=probe).decide(model, VARIANTS, "build-1")
    assert again.checked == "cache" and (again.variant, again.repack) == ("sapphirerapids", True)
    assert len(probe.runs) == 1  # the second start cost nothing


def test_a_host_that_traps_on_amx_falls_back_to_the_next_variant(
    tmp_path: Path, model: Path
) -> None:
    probe = ScriptedProbe({Candidate("sapphirerapids", True)})
    state = KernelCheck(tmp_path, probe=probe).decide(model, VARIANTS, "build-1")
    assert (state.variant, state.repack, state.fallback) == ("zen4", True, True)
    assert "SIGILL" in state.reason and "sapphirerapids" in state.reason


def test_when_repacking_crashes_everywhere_the_weights_are_not_repacked(
    tmp_path: Path, model: Path
) -> None:
    probe = ScriptedProbe({Candidate(v, True) for v in VARIANTS})
    state = KernelCheck(tmp_path, probe=probe).decide(model, VARIANTS, "build-1")
    assert (state.variant, state.repack) == ("sapphirerapids", False)
    cached = KernelCheck(tmp_path, probe=probe).decide(model, VARIANTS, "build-1")
    assert cached.checked == "cache" and cached.repack is False and cached.fallback


def test_nothing_runs_is_a_clear_error(tmp_path: Path, model: Path) -> None:
    probe = ScriptedProbe({Candidate(None, True), Candidate(None, False)})
    with pytest.raises(RuntimeError, match="crash on this host in every configuration"):
        KernelCheck(tmp_path, probe=probe).decide(model, [], "build-1")


def test_the_setting_overrides_the_check_without_probing(tmp_path: Path, model: Path) -> None:
    probe = ScriptedProbe(set())
    state = KernelCheck(tmp_path, repack="off", probe=probe).decide(model, VARIANTS, "b")
    assert (state.variant, state.repack, state.checked) == ("sapphirerapids", False, "setting")
    forced = KernelCheck(tmp_path, repack="on", variant="icelake", probe=probe).decide(
        model, VARIANTS, "b"
    )
    assert (forced.variant, forced.repack) == ("icelake", True)
    assert probe.runs == []


def test_an_inconclusive_probe_is_not_cached(tmp_path: Path, model: Path) -> None:
    probe = ScriptedProbe(set(), outcome="inconclusive")
    state = KernelCheck(tmp_path, probe=probe).decide(model, VARIANTS, "b")
    assert state.repack and not state.fallback
    KernelCheck(tmp_path, probe=probe).decide(model, VARIANTS, "b")
    assert len(probe.runs) == 2


def test_the_cache_is_per_cpu_and_per_build(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = KernelCheck(tmp_path)
    first = check.cache_file(model, "build-1")
    assert check.cache_file(model, "build-2") != first
    monkeypatch.setattr(kernel_check, "cpu_signature", lambda: "another CPU")
    assert check.cache_file(model, "build-1") != first


def test_a_child_killed_by_sigill_is_a_crash_and_other_failures_are_not() -> None:
    sigill = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGILL)"]
    crashed = run_probe(sigill)
    assert crashed.outcome == "crashed" and "SIGILL" in crashed.detail
    failed = run_probe([sys.executable, "-c", "raise SystemExit('no such model')"])
    assert failed.outcome == "inconclusive" and "no such model" in failed.detail
    slow = run_probe([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=1)
    assert slow.outcome == "inconclusive"


def test_the_cpu_signature_names_the_cpu_and_its_flags() -> None:
    signature = kernel_check.cpu_signature()
    assert "machine" in signature
    if Path("/proc/cpuinfo").exists():
        assert "flags" in signature and "model name" in signature
