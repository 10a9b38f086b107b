"""How a setting is declared: one field names its env var, its CLI flag and its help line.

Also the default directories settings point into. Every settings class of every layer uses
this module, so it imports nothing of the project.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field
from pydantic.fields import FieldInfo


def setting(default: Any, env: str, help: str, flag: str | None = None, **kwargs: Any) -> Any:
    """Declare a setting read from ``env`` (and from ``--flag`` on the CLI)."""
    extra: dict[str, Any] = {"env": env}
    if flag:
        extra["flag"] = flag
    return Field(
        default,
        validation_alias=AliasChoices(env, env.lower()),
        description=help,
        json_schema_extra=extra,
        **kwargs,
    )


def field_env(info: FieldInfo) -> str | None:
    extra = info.json_schema_extra
    if isinstance(extra, dict):
        env = extra.get("env")
        return env if isinstance(env, str) else None
    return None


def field_flag(info: FieldInfo) -> str | None:
    extra = info.json_schema_extra
    if isinstance(extra, dict):
        flag = extra.get("flag")
        return flag if isinstance(flag, str) else None
    return None


def default_data_dir() -> Path:
    """Where the service keeps its data (``$XDG_DATA_HOME/gemma-service``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gemma-service"


def default_cache_dir() -> Path:
    """Where rebuildable files go (``$XDG_CACHE_HOME/gemma-service``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gemma-service"
