"""The body each kind of upstream is sent, and the logprob shapes read back."""

from __future__ import annotations

import pytest

from gemma_service.engine.protocol import GenerationRequest, SamplingParams
from gemma_service.engine.remote.dialect import chunk_logprobs, completion_body
from gemma_service.errors import InvalidRequestError


def _request(**sampling: object) -> GenerationRequest:
    return GenerationRequest("r1", [2, 10, 11], SamplingParams(**sampling))  # type: ignore[arg-type]


def test_llama_server_gets_its_own_names_and_the_grammar() -> None:
    body = completion_body(
        _request(top_k=40, repetition_penalty=1.1, grammar='root ::= "a"', seed=7, stop=["x"]),
        "llama-server",
        None,
    )
    assert body["prompt"] == [2, 10, 11] and body["stream"] is True
    assert body["repeat_penalty"] == 1.1 and body["top_k"] == 40 and body["seed"] == 7
    assert body["grammar"] == 'root ::= "a"' and body["stop"] == ["x"]
    assert "model" not in body


def test_vllm_and_sglang_take_the_grammar_in_their_own_fields() -> None:
    vllm = completion_body(_request(grammar="g"), "vllm", "google/gemma-3-1b-it")
    assert vllm["structured_outputs"] == {"grammar": "g"} and vllm["top_k"] == -1
    assert vllm["model"] == "google/gemma-3-1b-it" and vllm["repetition_penalty"] == 1.0
    assert completion_body(_request(grammar="g"), "sglang", "m")["ebnf"] == "g"


def test_a_plain_openai_upstream_refuses_a_grammar_with_a_400() -> None:
    body = completion_body(_request(top_k=5), "openai", "m")
    assert "top_k" not in body and "min_p" not in body
    with pytest.raises(InvalidRequestError, match="take no grammar"):
        completion_body(_request(grammar="g"), "openai", "m")


def test_logprobs_ask_for_at_least_one_alternative_and_logit_bias_is_keyed_by_string() -> None:
    body = completion_body(_request(logprobs=True, logit_bias={5: -100.0}), "llama-server", None)
    assert body["logprobs"] == 1 and body["logit_bias"] == {"5": -100.0}


def test_both_logprob_shapes_are_read() -> None:
    llama = {
        "logprobs": {
            "content": [
                {
                    "token": "Hi",
                    "logprob": -0.5,
                    "bytes": [72, 105],
                    "top_logprobs": [
                        {"token": "Hi", "logprob": -0.5},
                        {"token": "Yo", "logprob": -1.5},
                    ],
                }
            ]
        }
    }
    (one,) = chunk_logprobs(llama, 1) or []
    assert (one.token, one.logprob, one.bytes) == ("Hi", -0.5, [72, 105])
    assert [t.token for t in one.top_logprobs] == ["Hi"]
    legacy = {
        "logprobs": {
            "tokens": ["Hi"],
            "token_logprobs": [-0.5],
            "top_logprobs": [{"Yo": -1.5, "Hi": -0.5}],
        }
    }
    (two,) = chunk_logprobs(legacy, 2) or []
    assert [t.token for t in two.top_logprobs] == ["Hi", "Yo"]
    assert chunk_logprobs({"logprobs": None}, 1) is None
