"""The kernel self-check's child: load a model with the given CPU kernels and decode a few tokens.

Run by ``kernel_check.py`` as ``python -m gemma_service.llama.kernel_probe --model PATH
[--variant NAME] --repack on|off``. Exit status 0: the kernels ran. Death by a signal (SIGILL on a
host that advertises instructions it traps on): they did not. Any other status: the model could not
be loaded for another reason, which the server reports itself when it loads the model.

``GEMMA_KERNEL_PROBE_FAULT=<signal>`` makes the probe kill itself with that signal whenever it
would repack weights: the test hook that simulates such a host.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys


def _simulated_fault(repack: bool) -> None:
    name = os.environ.get("GEMMA_KERNEL_PROBE_FAULT")
    if name and repack:
        os.kill(os.getpid(), signal.Signals[name.upper()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", required=True)
    parser.add_argument("--variant", default=None)
    parser.add_argument("--repack", choices=("on", "off"), default="on")
    args = parser.parse_args(argv)
    repack = args.repack == "on"
    _simulated_fault(repack)

    import llama_cpp as lc

    from gemma_service.llama import runtime as llama_runtime

    llama_runtime.ensure_started(args.variant, repack=repack)
    model = lc.llama_model_load_from_file(args.model.encode(), llama_runtime.model_params(0))
    if not model:
        print(f"could not load {args.model}", file=sys.stderr)
        return 2
    params = lc.llama_context_default_params()
    params.n_ctx = params.n_batch = params.n_ubatch = 64
    params.n_threads = params.n_threads_batch = min(2, os.cpu_count() or 1)
    ctx = lc.llama_init_from_model(model, params)
    if not ctx:
        print("could not create a context", file=sys.stderr)
        return 2
    vocab = lc.llama_model_get_vocab(model)
    tokens = (lc.llama_token * 16)()
    n = lc.llama_tokenize(vocab, b"The quick brown fox", 19, tokens, 16, True, False)
    # A prompt batch (matrix-matrix kernels), then single tokens (matrix-vector kernels).
    if n <= 0 or lc.llama_decode(ctx, lc.llama_batch_get_one(tokens, n)) != 0:
        print("the prompt did not decode", file=sys.stderr)
        return 2
    one = (lc.llama_token * 1)(tokens[n - 1])
    for _ in range(2):
        if lc.llama_decode(ctx, lc.llama_batch_get_one(one, 1)) != 0:
            print("a token did not decode", file=sys.stderr)
            return 2
    lc.llama_free(ctx)
    lc.llama_model_free(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
