"""Benchmark: drives OpenAI-compatible servers with concurrent clients and compares them."""
