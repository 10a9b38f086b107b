"""How a setting is declared: one field names its env var, its CLI flag and its help line."""

from __future__ import annotations

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
