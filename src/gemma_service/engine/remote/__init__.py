"""The remote engine: ``EngineClient`` over OpenAI-compatible upstream servers (vLLM, SGLang,
llama-server, other gemma-service replicas), with affinity, health checks and retries."""
