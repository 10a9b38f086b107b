"""`gemma-service memory import FILE.jsonl` and `gemma-service memory search QUERY`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gemma_service.cli import main


@pytest.fixture(autouse=True)
def words_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep these CLI tests fast: no embedding model is loaded."""
    monkeypatch.setattr(
        "gemma_service.memory.embedder.sentence_transformers_installed", lambda: False
    )
    monkeypatch.delenv("RAG_SERVICE_URL", raising=False)
    monkeypatch.delenv("GEMMA_MEMORY_URL", raising=False)


def test_import_then_search_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        {"text": "Sarah: the report is due Friday", "speaker": "Sarah", "emotion": "stressed"},
        {"text": "Tom: the report looks good", "speaker": "Tom"},
    ]
    memories = tmp_path / "memories.jsonl"
    memories.write_text("\n".join(json.dumps(line) for line in lines))
    data = ["--data-dir", str(tmp_path / "data")]

    assert main(["memory", "import", str(memories), "--quiet", *data]) == 0
    assert "stored 2 memory item(s)" in capsys.readouterr().out

    assert main(["memory", "search", "report", "--speaker", "Sarah", *data]) == 0
    output = capsys.readouterr().out
    assert output.startswith("1 result(s)")
    assert "Sarah (stressed)" in output and "due Friday" in output


def test_a_bad_file_is_one_error_line_and_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    memories = tmp_path / "bad.jsonl"
    memories.write_text('{"text": "ok"}\n{"kind": "note"}\n')

    code = main(["memory", "import", str(memories), "--data-dir", str(tmp_path / "d")])

    assert code == 1
    assert "bad.jsonl:2: text" in capsys.readouterr().err
