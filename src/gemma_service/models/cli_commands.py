"""Mounts `gemma-service models list|show`: the catalogue as the server would build it, with
sizes, families, quantizations, contexts and modalities read from the GGUF headers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Protocol, cast

from pydantic_settings import BaseSettings

from gemma_service.errors import ModelFileError
from gemma_service.model_files import resolve_model_path
from gemma_service.models.catalogue import CatalogueEntry, ModelCatalogue, load_catalogue
from gemma_service.models.gguf_header import GgufHeader, read_gguf_header
from gemma_service.settings_args import add_settings_arguments, settings_from_args

# The settings the catalogue is built from (flags and env vars as `serve` reads them).
CATALOGUE_FIELDS = {"model_path", "model_alias", "model_cache_dir", "models_dir", "models_config"}


class CatalogueSettings(Protocol):
    model_path: Path | None
    model_alias: str | None
    model_cache_dir: Path
    models_dir: Path | None
    models_config: Path | None


def catalogue_from(settings: CatalogueSettings) -> ModelCatalogue:
    return load_catalogue(
        default_model=lambda: resolve_model_path(settings.model_path, settings.model_cache_dir),
        default_id=settings.model_alias,
        models_dir=settings.models_dir,
        config_file=settings.models_config,
    )


def describe(entry: CatalogueEntry, default: bool) -> dict[str, Any]:
    """What the headers say about one catalogue model."""
    header = read_gguf_header(entry.path)
    projector = read_gguf_header(entry.mmproj) if entry.mmproj is not None else None
    return {
        "id": entry.id,
        "default": default,
        "aliases": list(entry.aliases),
        "path": str(entry.path),
        "mmproj": str(entry.mmproj) if entry.mmproj is not None else None,
        "size_bytes": entry.size_bytes,
        "family": header.architecture,
        "name": header.name,
        "parameters": header.size_label,
        "quantization": header.quantization,
        "context_length": header.context_length,
        "modalities": modalities(projector),
        "chat_template": "tokenizer.chat_template" in header.metadata,
        "pinned": entry.pinned,
        "idle_s": entry.idle_s,
        "settings": dict(entry.overrides),
    }


def modalities(projector: GgufHeader | None) -> list[str]:
    """Text always; images and audio when a projector that encodes them is paired."""
    found = ["text"]
    if projector is not None:
        # A projector that does not say is a vision one (the older mmproj files).
        if projector.has_vision or not projector.has_audio:
            found.append("image")
        if projector.has_audio:
            found.append("audio")
    return found


def cmd_list(args: argparse.Namespace, settings_cls: type[BaseSettings]) -> int:
    try:
        catalogue = catalogue_from(cast(CatalogueSettings, settings_from_args(settings_cls, args)))
        rows = [describe(e, e.id == catalogue.default_id) for e in catalogue.entries.values()]
    except ModelFileError as exc:
        print(f"gemma-service: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(_table(rows))
    return 0


def cmd_show(args: argparse.Namespace, settings_cls: type[BaseSettings]) -> int:
    try:
        catalogue = catalogue_from(cast(CatalogueSettings, settings_from_args(settings_cls, args)))
        entry = catalogue.find(args.model)
        if entry is None:
            print(f"gemma-service: error: {catalogue.not_found(args.model)}", file=sys.stderr)
            return 1
        row = describe(entry, entry.id == catalogue.default_id)
        metadata = read_gguf_header(entry.path).metadata
    except ModelFileError as exc:
        print(f"gemma-service: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({**row, "metadata": _printable(metadata)}, indent=2))
        return 0
    for key, value in row.items():
        print(f"{key + ':':16} {_cell(value)}")
    print("metadata:")
    for key, value in _printable(metadata).items():
        print(f"  {key} = {value}")
    return 0


def _table(rows: list[dict[str, Any]]) -> str:
    columns = ("id", "parameters", "family", "quantization", "size", "context", "modalities")
    lines = [[c.upper() for c in columns]]
    for r in rows:
        cells = {
            **r,
            "id": ("* " if r["default"] else "  ") + r["id"],
            "size": _size(r["size_bytes"]),
            "context": r["context_length"],
        }
        lines.append([_cell(cells[c]) for c in columns])
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    text = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines
    ]
    return "\n".join(t.rstrip() for t in text) + "\n(* the default model)"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return str(n)


def _printable(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata as `show` prints it: long strings (chat templates) cut short."""
    return {
        k: (v[:80] + "…" if isinstance(v, str) and len(v) > 80 else v) for k, v in metadata.items()
    }


def register(sub: argparse._SubParsersAction[Any], settings_cls: type[BaseSettings]) -> None:
    """Mount `models list` and `models show` (flags as `serve` reads them)."""
    models = sub.add_parser("models", help="list the models this server would serve")
    actions = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every catalogue model, from its GGUF header")
    show = actions.add_parser("show", help="one model's header and settings")
    show.add_argument("model", help="model id or alias")
    for parser, handler in ((listing, cmd_list), (show, cmd_show)):
        add_settings_arguments(parser, settings_cls, only=CATALOGUE_FIELDS)
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(func=lambda args, h=handler: h(args, settings_cls))
