"""Settings ↔ command-line flags: one flag per settings field, settings built from the flags.

Shared by every command (``cli.py`` and the ``cli_commands`` modules that mount theirs on it);
it lives below them so none of them imports another. A field whose type is itself a settings
class (``ServiceSettings.memory``) contributes its own fields' flags, flat.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any, TypeVar, get_args

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from gemma_service.settings_fields import field_env, field_flag

S = TypeVar("S", bound=BaseSettings)


def nested_settings(info: FieldInfo) -> type[BaseSettings] | None:
    """The settings class a field holds, when it holds one (a branch of the settings tree)."""
    annotation = info.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
        return annotation
    return None


def leaf_fields(cls: type[BaseSettings]) -> Iterator[tuple[str, FieldInfo]]:
    """(name, field) of every setting of ``cls``, branches unfolded."""
    for name, info in cls.model_fields.items():
        branch = nested_settings(info)
        if branch is None:
            yield name, info
        else:
            yield from leaf_fields(branch)


def add_settings_arguments(
    parser: argparse.ArgumentParser, cls: type[BaseSettings], only: set[str] | None = None
) -> None:
    """One flag per settings field that declares one (of the fields named in ``only``, if
    given), with its env var and default in --help."""
    for name, info in leaf_fields(cls):
        flag = field_flag(info)
        if flag is None or (only is not None and name not in only):
            continue
        env = field_env(info)
        help_text = f"{info.description} [env {env}; default: {info.default}]"
        choices = get_args(info.annotation) if "Literal" in str(info.annotation) else None
        if info.annotation is bool:
            parser.add_argument(
                flag,
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            parser.add_argument(
                flag,
                dest=name,
                default=argparse.SUPPRESS,
                help=help_text,
                choices=choices or None,
                metavar=name.upper(),
            )


def settings_from_args(cls: type[S], args: argparse.Namespace) -> S:
    """Settings with CLI flags over env vars over defaults; a bad value exits in one line."""
    names = {name for name, _ in leaf_fields(cls)}
    overrides: dict[str, Any] = {k: v for k, v in vars(args).items() if k in names}
    try:
        return cls(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][-1]) if err.get("loc") else "?"
        info = dict(leaf_fields(cls)).get(field)
        where = (field_flag(info) or field_env(info) or field) if info else field
        sys.exit(f"gemma-service: invalid {where}: {err['msg']}")
