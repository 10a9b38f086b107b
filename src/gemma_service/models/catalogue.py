"""The model catalogue: which GGUFs this server may serve, under which ids.

Entries come from three places: the default model (``GEMMA_MODEL_PATH``, else the packaged
Gemma 3 270M), every ``*.gguf`` under ``GEMMA_MODELS_DIR`` (an mmproj projector beside a model
is paired with it, not listed), and a TOML file (``GEMMA_MODELS_CONFIG``) that adds entries,
aliases and per-model settings. A request's ``model`` is resolved here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gemma_service.errors import ModelFileError, NotFoundError
from gemma_service.model_files import check_model_file

# Per-model settings a config entry may give; each replaces the server-wide setting.
ENGINE_OVERRIDES = ("context_size", "parallel", "gpu_layers", "batch_size")
_ENTRY_KEYS = {"path", "mmproj", "aliases", "pinned", "idle_s", *ENGINE_OVERRIDES}


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One servable model: its id, file, projector, aliases and own settings."""

    id: str
    path: Path
    mmproj: Path | None = None
    aliases: tuple[str, ...] = ()
    # Never unloaded to make room or when idle (only by an explicit unload).
    pinned: bool = False
    # Seconds idle before unload (None: the server's GEMMA_MODEL_IDLE_S; 0: never).
    idle_s: float | None = None
    # Server settings this model replaces (context_size, parallel, gpu_layers, batch_size).
    overrides: dict[str, int] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        """Bytes of its files: what loading it costs in memory, before the KV cache."""
        size = self.path.stat().st_size if self.path.exists() else 0
        if self.mmproj is not None and self.mmproj.exists():
            size += self.mmproj.stat().st_size
        return size

    @property
    def names(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)


class ModelCatalogue:
    """The servable models, one of them the default."""

    def __init__(self, entries: Iterable[CatalogueEntry], default_id: str) -> None:
        given = {e.id: e for e in entries}
        if default_id not in given:
            raise ModelFileError(f"the default model '{default_id}' is not in the catalogue")
        # The default first: listings show it first, and status()[0] is the default model.
        self.entries: dict[str, CatalogueEntry] = {default_id: given.pop(default_id), **given}
        self.default_id = default_id
        self._names: dict[str, str] = {}
        for entry in self.entries.values():
            for name in entry.names:
                if self._names.setdefault(name, entry.id) != entry.id:
                    raise ModelFileError(f"the model name '{name}' is given to two models")

    @property
    def ids(self) -> list[str]:
        return list(self.entries)

    def resolve(self, name: str | None) -> CatalogueEntry:
        """The entry a request's ``model`` names (None: the default). With one model in the
        catalogue any name gets it, as clients send names of their own; with several, an
        unknown name is a 404 ``model_not_found`` listing the ids."""
        if name is None or name == "" or len(self.entries) == 1:
            return self.entries[self.default_id]
        found = self.find(name)
        if found is None:
            raise self.not_found(name)
        return found

    def find(self, name: str) -> CatalogueEntry | None:
        """The entry with this id or alias, if any (no default, no any-name rule)."""
        found = self._names.get(name)
        if found is None and name.endswith(":latest"):  # Ollama's tag for "the only one"
            found = self._names.get(name.removesuffix(":latest"))
        return self.entries[found] if found is not None else None

    def not_found(self, name: str, ids: list[str] | None = None) -> NotFoundError:
        """The 404 for a model name this server does not have, listing the ones it has."""
        listed = ", ".join(ids or self.ids)
        return NotFoundError(
            f"The model '{name}' does not exist; this server has: {listed}",
            param="model",
            code="model_not_found",
        )


def load_catalogue(
    *,
    default_model: Callable[[], Path],
    default_id: str | None = None,
    models_dir: Path | None = None,
    config_file: Path | None = None,
) -> ModelCatalogue:
    """The catalogue from a models folder and a config file. ``default_model`` gives the
    default model's path (called only when the config names no default of its own)."""
    entries: dict[str, CatalogueEntry] = {}
    if models_dir is not None:
        for entry in scan_models_dir(models_dir.expanduser()):
            entries[entry.id] = entry
    config = _read_config(config_file) if config_file is not None else {}
    base = config_file.parent if config_file is not None else Path.cwd()
    for model_id, table in (config.get("models") or {}).items():
        entries[model_id] = _config_entry(model_id, table, entries.get(model_id), base)
    default = config.get("default")
    if default is None:
        path = default_model()
        same = next((e for e in entries.values() if _same_file(e.path, path)), None)
        if same is None:
            same = CatalogueEntry(default_id or path.stem, path)
            entries = {same.id: same, **entries}
        elif default_id and default_id != same.id:
            same = replace(same, aliases=(*same.aliases, default_id))
            entries[same.id] = same
        default = same.id
    elif not isinstance(default, str) or default not in entries:
        raise ModelFileError(f"{config_file}: default model '{default}' has no entry")
    return ModelCatalogue(entries.values(), default)


def scan_models_dir(folder: Path) -> list[CatalogueEntry]:
    """Every model GGUF under ``folder``; projectors (``mmproj*``) pair with the models beside
    them: ``mmproj-<stem>*.gguf`` with its model, else a folder's only projector with all."""
    if not folder.is_dir():
        raise ModelFileError(f"models folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*.gguf") if p.is_file())
    projectors = [p for p in files if "mmproj" in p.name.lower()]
    models = [p for p in files if p not in projectors]
    stems = [p.stem for p in models]
    entries = []
    for path in models:
        check_model_file(path)
        # Two files with one stem in different folders: the relative path tells them apart.
        model_id = path.stem if stems.count(path.stem) == 1 else _relative_id(path, folder)
        entries.append(CatalogueEntry(model_id, path, _projector_for(path, projectors)))
    return entries


def _projector_for(model: Path, projectors: list[Path]) -> Path | None:
    beside = [p for p in projectors if p.parent == model.parent]
    named = [p for p in beside if model.stem.lower() in p.name.lower()]
    if named:
        return named[0]
    return beside[0] if len(beside) == 1 else None


def _relative_id(path: Path, folder: Path) -> str:
    return path.relative_to(folder).with_suffix("").as_posix()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with path.expanduser().open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as exc:
        raise ModelFileError(f"models config not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ModelFileError(f"models config {path} is not valid TOML: {exc}") from exc


def _config_entry(
    model_id: str, table: Any, scanned: CatalogueEntry | None, base: Path
) -> CatalogueEntry:
    """A config file's ``[models.<id>]`` table, over the scanned entry of that id if any."""
    where = f"models config: [models.{model_id}]"
    if not isinstance(table, dict):
        raise ModelFileError(f"{where} must be a table")
    unknown = set(table) - _ENTRY_KEYS
    if unknown:
        raise ModelFileError(f"{where}: unknown keys {sorted(unknown)}")
    if "path" in table:
        path = (base / Path(table["path"]).expanduser()).resolve()
    elif scanned is not None:
        path = scanned.path
    else:
        raise ModelFileError(f"{where} needs a path (no such model in the models folder)")
    check_model_file(path)
    mmproj = scanned.mmproj if scanned is not None else None
    if "mmproj" in table:
        mmproj = (base / Path(table["mmproj"]).expanduser()).resolve()
        check_model_file(mmproj)
    overrides = {k: _engine_int(where, k, table[k]) for k in ENGINE_OVERRIDES if k in table}
    aliases = table.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise ModelFileError(f"{where}: aliases must be a list of strings")
    idle = table.get("idle_s")
    if idle is not None and (not isinstance(idle, int | float) or idle < 0):
        raise ModelFileError(f"{where}: idle_s must be a number of seconds >= 0")
    return CatalogueEntry(
        model_id,
        path,
        mmproj,
        tuple(aliases),
        pinned=bool(table.get("pinned", False)),
        idle_s=None if idle is None else float(idle),
        overrides=overrides,
    )


def _engine_int(where: str, key: str, value: Any) -> int:
    lowest = -1 if key == "gpu_layers" else 1  # gpu_layers -1: every layer
    if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
        raise ModelFileError(f"{where}: {key} must be an integer >= {lowest}")
    return value
