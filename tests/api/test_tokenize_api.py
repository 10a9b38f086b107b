"""POST /tokenize and /detokenize in llama-server's shapes, with the served model's tokenizer."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_tokenize_and_detokenize_round_trip(client: TestClient) -> None:
    tokens = client.post("/tokenize", json={"content": "héllo"}).json()["tokens"]
    assert tokens == list("héllo".encode())  # the fake model's vocabulary is bytes
    assert client.post("/detokenize", json={"tokens": tokens}).json() == {"content": "héllo"}


def test_special_tokens_and_pieces(client: TestClient) -> None:
    with_bos = client.post("/tokenize", json={"content": "hi", "add_special": True}).json()
    assert len(with_bos["tokens"]) == 3
    special = client.post("/tokenize", json={"content": "<eos>"}).json()["tokens"]
    literal = client.post("/tokenize", json={"content": "<eos>", "parse_special": False})
    assert len(special) == 1 and len(literal.json()["tokens"]) == 5
    pieces = client.post("/tokenize", json={"content": "ab", "with_pieces": True}).json()
    assert pieces == {"tokens": [{"id": 97, "piece": "a"}, {"id": 98, "piece": "b"}]}


def test_bad_input_is_a_400(client: TestClient) -> None:
    bad = client.post("/detokenize", json={"tokens": [1, 99999]})
    assert bad.status_code == 400 and "vocabulary" in bad.json()["error"]["message"]
    assert client.post("/tokenize", json={"content": 5}).status_code == 400
    assert client.post("/detokenize", json={"tokens": "x"}).status_code == 400
