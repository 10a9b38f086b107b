"""Runs the HTTP server: resolves the model, builds the engine and app, runs uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from gemma_service.api.app import create_app
from gemma_service.config import ServiceSettings
from gemma_service.engine.factory import build_llama_engine
from gemma_service.model_files import default_model_id, resolve_model_path

log = logging.getLogger(__name__)


def serve(settings: ServiceSettings) -> int:
    """Serve until stopped; returns the process exit code (1 if the model failed to load)."""
    model_path = resolve_model_path(settings.model_path, settings.model_cache_dir)
    model_id = settings.model_alias or default_model_id(model_path)
    engine = build_llama_engine(settings, model_path, model_id)
    fatal: list[str] = []
    server: uvicorn.Server | None = None

    def on_fatal(message: str) -> None:
        fatal.append(message)
        if server is not None:
            server.should_exit = True

    app = create_app(settings, engine, on_fatal=on_fatal)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    server = uvicorn.Server(config)
    log.info(
        "gemma-service listening on http://%s:%d (model %s)",
        settings.host,
        settings.port,
        model_path,
    )
    server.run()
    if fatal:
        log.error("exiting: %s", fatal[0])
        return 1
    return 0
