"""Build every tiny model ahead of a test run: ``python -m tests.tiny_models``."""

from __future__ import annotations

import sys

from tests.tiny_models import SPECS, TinyModelUnavailable, tiny_model


def main() -> int:
    for name in SPECS:
        try:
            model = tiny_model(name)
        except TinyModelUnavailable as exc:
            print(exc, file=sys.stderr)
            return 1
        print(name, model.model_path, model.mmproj_path or "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
