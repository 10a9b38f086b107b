"""Choosing the next token: the batched sampler over a step's logits, its numerics (truncation,
penalties and biases, the draw), llama.cpp's own chain and grammar for what it does better, and
log-probabilities."""
