"""`gemma-service memory eval` on a small set file (words only, no embedding model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gemma_service.cli import main


@pytest.fixture(autouse=True)
def words_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "gemma_service.memory.embedder.sentence_transformers_installed", lambda: False
    )
    monkeypatch.delenv("GEMMA_MEMORY_URL", raising=False)


def write_set(path: Path) -> Path:
    memory = {"kind": "transcript", "timestamp": "2025-03-03T10:00:00Z"}
    data = {
        "name": "tiny",
        "now": "2025-03-10T12:00:00Z",
        "memories": [
            {**memory, "key": "boiler", "text": "The boiler broke again.", "speaker": "Sam"},
            {**memory, "key": "agreed", "text": "Agreed.", "speaker": "Ann"},
            {**memory, "key": "kitten", "text": "We adopted a grey kitten.", "speaker": "Ann"},
        ],
        "questions": [
            {"id": "q1", "type": "who", "question": "Who said the boiler broke?",
             "relevant": ["boiler"], "filters": {"speaker": "Sam"}},
            {"id": "q2", "type": "paraphrase", "question": "Any new pets?",
             "relevant": ["kitten"]},
        ],
    }  # fmt: skip
    path.write_text(json.dumps(data))
    return path


def test_eval_prints_the_table_per_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_set(tmp_path / "tiny.json")

    assert main(["memory", "eval", "--set", str(path), "--misses"]) == 0

    out = capsys.readouterr().out
    assert "set tiny: 3 memories, 2 questions; store sqlite, embedder none" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line[:1].isalpha()}
    # Words find the boiler (recall, hit and MRR 1); no word of "Any new pets?" is stored.
    assert rows["who"][-6:] == ["1.00"] * 6
    assert rows["paraphrase"][-6:] == ["0.00"] * 6
    assert rows["overall"][-6:-3] == ["0.50", "0.50", "0.50"]
    assert "q2 [paraphrase] Any new pets?" in out


def test_a_file_that_is_not_a_set_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "memories": [{"text": "no key"}]}')
    assert main(["memory", "eval", "--set", str(bad)]) == 1
    assert "not a development set" in capsys.readouterr().err
