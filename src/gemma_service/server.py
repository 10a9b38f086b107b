"""Runs the HTTP server: builds the model catalogue and pool, the app, and runs uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from gemma_service.api.app import create_app, model_budget
from gemma_service.api.drain import DrainingServer, request_drain
from gemma_service.api.security.startup import startup_problem
from gemma_service.config import ServiceSettings
from gemma_service.engine.factory import build_llama_engine
from gemma_service.engine.protocol import EngineClient
from gemma_service.engine.remote.remote_engine import RemoteConfig, RemoteEngine
from gemma_service.model_files import resolve_model_path
from gemma_service.models.catalogue import CatalogueEntry, load_catalogue
from gemma_service.models.pool import ModelPool

log = logging.getLogger(__name__)


def serve(settings: ServiceSettings) -> int:
    """Serve until stopped; returns the exit code: 1 if the model failed to load, 2 if unsafe."""
    problem = startup_problem(settings)
    if problem is not None:
        log.error("not starting: %s", problem)
        return 2
    remote = settings.engine == "remote"
    if remote and not settings.upstream.url_list:
        log.error("not starting: GEMMA_ENGINE=remote needs GEMMA_UPSTREAM_URLS")
        return 2
    catalogue = load_catalogue(
        default_model=lambda: resolve_model_path(settings.model_path, settings.model_cache_dir),
        # Remote: the one model is the upstreams'; its GGUF only supplies the tokenizer.
        default_id=settings.model_alias or (settings.upstream.upstream_model if remote else None),
        models_dir=None if remote else settings.models_dir,
        config_file=None if remote else settings.models_config,
    )
    models = ModelPool(
        catalogue,
        lambda entry: _engine_for(settings, entry, entry.id == catalogue.default_id),
        model_budget(settings),
    )
    fatal: list[str] = []
    server: uvicorn.Server | None = None

    def on_fatal(message: str) -> None:
        fatal.append(message)
        if server is not None:
            server.should_exit = True

    app = create_app(settings, models=models, on_fatal=on_fatal)
    server = http_server(app, settings)
    log.info(
        "gemma-service listening on http://%s:%d (models: %s; default %s)",
        settings.host,
        settings.port,
        ", ".join(catalogue.ids),
        catalogue.entries[catalogue.default_id].path,
    )
    server.run()
    if fatal:
        log.error("exiting: %s", fatal[0])
        return 1
    return 0


def remote_config(settings: ServiceSettings, model_path: Path, model_id: str) -> RemoteConfig:
    """The remote engine's settings: its upstreams, and the GGUF whose tokenizer it uses."""
    up = settings.upstream
    key = up.upstream_api_key
    return RemoteConfig(
        urls=settings.upstream.url_list,
        vocabulary_path=model_path,
        model_id=model_id,
        kind=up.upstream_kind,
        api_key=key.get_secret_value() if key is not None else None,
        upstream_model=up.upstream_model,
        context_size=up.upstream_context_size,
        max_in_flight=up.upstream_max_in_flight,
        read_timeout_s=up.upstream_read_timeout_s,
        health_interval_s=up.upstream_health_interval_s,
    )


def _engine_for(settings: ServiceSettings, entry: CatalogueEntry, default: bool) -> EngineClient:
    """A llama.cpp engine for one catalogue model, its own settings over the server's (with
    GEMMA_ENGINE=remote: the remote engine, the model's GGUF as its tokenizer)."""
    if settings.engine == "remote":
        return RemoteEngine(remote_config(settings, entry.path, entry.id))
    update: dict[str, object] = dict(entry.overrides)
    # Each model has its own projector (or none): only the default model may take the
    # server-wide one (GEMMA_MMPROJ_PATH, in builds that have it).
    if "mmproj_path" in ServiceSettings.model_fields and (entry.mmproj or not default):
        update["mmproj_path"] = entry.mmproj
    own = settings.model_copy(update=update) if update else settings
    return build_llama_engine(own, entry.path, entry.id)


def http_server(app: FastAPI, settings: ServiceSettings) -> DrainingServer:
    """uvicorn for ``app``: bounded request heads, and a drain on SIGTERM before shutdown."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        # h11 bounds the request head it buffers (httptools does not): huge headers cannot
        # exhaust memory.
        http="h11",
        h11_max_incomplete_event_size=settings.max_header_bytes,
        # The drain has already let requests finish; this only bounds the stragglers.
        timeout_graceful_shutdown=2,
    )
    return DrainingServer(config, request_drain(app))
