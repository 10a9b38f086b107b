"""Log-probabilities from a row of logits, against a float64 log-softmax."""

from __future__ import annotations

import numpy as np

from gemma_service.engine.sampling.logprobs import token_logprobs


def test_logprobs_match_a_float64_log_softmax_and_list_the_best_tokens_in_order() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 3.0, 262_144).astype(np.float32)
    logits[[7, 99, 123]] = [20.0, 19.0, 18.5]
    exact = logits.astype(np.float64) - np.logaddexp.reduce(logits.astype(np.float64))
    lp = token_logprobs(logits, 99, 3, lambda t: f"<{t}>".encode())
    assert lp.token == "<99>" and lp.bytes == list(b"<99>")
    assert abs(lp.logprob - exact[99]) < 1e-5
    assert [t.token for t in lp.top_logprobs] == ["<7>", "<99>", "<123>"]
    assert [round(t.logprob, 5) for t in lp.top_logprobs] == [
        round(float(exact[t]), 5) for t in (7, 99, 123)
    ]
    assert token_logprobs(logits, 5, 0, lambda t: b"x").top_logprobs == []
